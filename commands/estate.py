"""aupctl estate list | audit"""

from __future__ import annotations

from typing import Any

import click

from .context import Ctx, pass_ctx
from .output import exit_with, note, render, render_findings
from .schools import all_schools_option, run_all_schools

LIST_COLUMNS = ["name", "os", "version", "release", "support", "last_seen", "enabled", "laptop", "ou"]
JSON_COLUMNS = [
    "name",
    "os",
    "version",
    "release",
    "support",
    "supported_until",
    "last_seen",
    "not_seen_days",
    "stale",
    "enabled",
    "password_age_days",
    "laps_expires",
    "laptop",
    "ou",
    "dn",
]


@click.group("estate")
def cli() -> None:
    """Every computer the directory knows: supported OS, last seen, LAPS, updates (policy 1.4, 6.7).

    AD computer objects, or on OpenLDAP the entries of [estate] object_class (default device), joined
    with the laptop register by serial number or name. See docs/estate.md.
    """


@cli.command("list", short_help="List the directory's computers, their OS and when last seen.")
@click.option("--os", "os_glob", metavar="GLOB", help='Only computers whose OS matches, e.g. "Windows 10*".')
@click.option("--stale", is_flag=True, help="Only enabled computers not seen for [estate] stale_days.")
@pass_ctx
def list_cmd(ctx: Ctx, os_glob: str | None, stale: bool) -> None:
    """List every computer under [estate] base: its OS and release, whether that release still gets
    security updates, when it last logged on (AD's lastLogonTimestamp, up to 14 days late), whether it
    is enabled and which laptop in the register it is. Read-only."""
    from aupctl.estate.audit import listing

    rows = listing(ctx.config, ctx.directory, ctx.state, os_glob=os_glob, stale_only=stale)
    note(ctx, f"{len(rows)} computer(s)")
    render(ctx, rows, LIST_COLUMNS, data_columns=JSON_COLUMNS, empty="no computers found")


def _connector(ctx: Ctx) -> Any:
    from aupctl.laptops.ssh import Connector

    connector = Connector(ctx.config.laptops)
    connector.key()  # a bad key is one config error, not one per laptop
    return connector


@cli.command("audit", short_help="Audit every computer (for cron); exit 1 on findings.")
@click.option(
    "--stale-days",
    type=click.IntRange(1, 3650),
    metavar="N",
    help="Enabled computers not seen for N days are stale ([estate] stale_days, default 90).",
)
@click.option("--no-probe", is_flag=True, help="Skip the SSH probe of enrolled laptops (the 14-day patch rule).")
@all_schools_option
@pass_ctx
def audit(ctx: Ctx, stale_days: int | None, no_probe: bool, all_schools: bool) -> None:
    """Audit the directory's computers, read-only: an OS out of support (os-unsupported), enabled but not
    seen (stale-computer), LAPS missing or not rotated, or not in use at all; and, over SSH, laptops
    enrolled in the register whose security updates are more than 14 days late (updates-overdue, or
    updates-unknown when nothing could be read). Exit 0 clean, 1 findings. With --all-schools (a trust's
    config): every school's computers in one result with a school column."""
    from aupctl.estate.audit import audit as run
    from aupctl.laptops import inventory

    if all_schools:

        def one(sub: Ctx) -> tuple[list, int]:
            probe = not no_probe and bool(inventory.devices(sub.state))
            found = run(
                sub.config,
                sub.directory,
                sub.state,
                stale_days=stale_days,
                connector=_connector(sub) if probe else None,
            )
            return found.findings, len(found.computers)

        run_all_schools(ctx, one, clean="no findings", snapshot="estate-audit")
        return
    connector = None
    if not no_probe and inventory.devices(ctx.state):
        connector = _connector(ctx)
    report = run(ctx.config, ctx.directory, ctx.state, stale_days=stale_days, connector=connector)
    note(ctx, f"{len(report.computers)} computer(s) audited, {len(report.probed)} laptop(s) probed")
    data = {
        "findings": [f.as_row() for f in report.findings],
        "computers": [{c: r.get(c) for c in JSON_COLUMNS} for r in report.computers],
        "probed": report.probed,
        "laps_attributes": report.laps,
    }
    exit_with(
        render_findings(
            ctx,
            report.findings,
            clean="no findings",
            json_obj=data,
            snapshot="estate-audit",
            subjects=len(report.computers),
        )
    )
