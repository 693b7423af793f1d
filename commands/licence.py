"""aupctl licence report"""

from __future__ import annotations

import click

from .context import Ctx, pass_ctx
from .output import exit_for_findings, exit_with, for_people, message, render, render_findings


@click.group("licence")
def cli() -> None:
    """Software licences: seats used against seats owned (policy 6.7).

    Licences are [[licences]] entries in the config (product, match globs, seats, expires). Installs are
    counted from each laptop's latest successful check-in or audit.
    """


@cli.command("report", short_help="Seats used against owned, expiring, unlicensed; exit 1 on findings.")
@pass_ctx
def report(ctx: Ctx) -> None:
    """Seats used against seats owned, licences expiring within 60 days, unlicensed software.

    Exit 0 when all is in order, 1 when there are findings (over-allocated, expiring or expired with
    installs, software in [laptops] needs_licence that no licence covers).
    """
    import datetime as dt

    from aupctl.laptops.licences import report as build

    rep = build(ctx.config, ctx.state, dt.date.today())
    data = {
        "licences": rep.rows,
        "unlicensed": rep.unlicensed,
        "findings": [f.as_row() for f in rep.findings],
        "laptops_counted": rep.laptops_counted,
        "laptops_without_facts": rep.laptops_without_facts,
    }
    columns = ["product", "seats", "used", "free", "expires", "days_left", "status"]
    # JSON: everything in one object; CSV: one table per output, the licences; the table: licences, findings
    render(ctx, rep.rows, columns, empty="no [[licences]] in the config", json_obj=data)
    if for_people(ctx):
        message(f"counted from {rep.laptops_counted} laptop(s)")
        if rep.laptops_without_facts:
            message(f"not counted (never probed): {', '.join(rep.laptops_without_facts)}")
        click.echo()
        exit_with(render_findings(ctx, rep.findings, clean="licences in order"))
    exit_for_findings(rep.findings)
