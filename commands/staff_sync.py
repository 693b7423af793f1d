"""aupctl staff sync: joiners, movers and leavers from the MIS staff export (registered in commands/staff.py)."""

from __future__ import annotations

import sys

import click

from aupctl.errors import EXIT_FINDINGS
from aupctl.text import shown as escaped

from .context import Ctx, pass_ctx
from .output import bulk, changing, for_people, message, render, run_plan

COLUMNS = ["kind", "line", "username", "name", "detail"]


@click.command("sync")
@click.argument("export", type=click.Path(dir_okay=False, path_type=str))
@click.option("--profile", metavar="NAME", help="The export's headers: sims, arbor, bromcom, wonde ([mis] profile).")
@click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    default=86400,
    show_default=True,
    metavar="SECONDS",
    help="Refuse an export older than this: by its export date column if it has one, else by the file's time.",
)
@click.option("--accept-headers", is_flag=True, help="Accept an export whose columns differ from last time.")
@click.option(
    "--credentials-out",
    metavar="FILE",
    help="New file for the joiners' first passwords (CSV, readable only by you). Required when accounts are created.",
)
@changing
@bulk("staff sync")
@pass_ctx
def sync(
    ctx: Ctx,
    export: str,
    profile: str | None,
    max_age: float,
    accept_headers: bool,
    credentials_out: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Joiners, movers and leavers from the MIS's staff EXPORT (docs/mis-sync.md).

    \b
    Joiners are created as `staff import` creates them once their start date is within
    [mis] create_days_before; movers change role groups (ending approvals the new role may not
    hold) and OU (where the new role has one), or names (with [mis] rename = true, the username
    too); an end date schedules the withdrawal (past: withdrawn now). Someone missing from the
    export is listed, never disabled. Refused, nothing changed (exit 2): an empty or stale
    export, changed columns, more leavers than [mis] max_leavers. Exit 1 when something waits
    for a person (an ambiguous match, someone not in the MIS, a rename or move that clashes).
    """
    from aupctl.staff import sync as engine
    from aupctl.state import today

    cfg = ctx.config
    exp = engine.read_export(cfg, export, profile, max_age=max_age)
    s = engine.plan_sync(
        cfg,
        ctx.directory,
        ctx.state,
        exp,
        today=today(),
        credentials_out=credentials_out,
        accept_headers=accept_headers,
    )
    try:
        if for_people(ctx):
            click.echo(escaped(f"Plan: {s.plan.title}"))
        render(
            ctx,
            s.people,
            COLUMNS,
            json_obj={"applied": not dry_run and not s.plan.empty, "summary": s.counts(), "people": s.people},
            empty="nothing to do: the directory matches the export",
        )
        if not dry_run and not s.plan.empty:
            s.intake.check_ready()
        run_plan(ctx, s.plan, dry_run=dry_run, yes=yes, show=False)
        if dry_run:
            pass
        elif s.plan.empty:
            message("nothing to do: the directory already matches the export")
    finally:
        s.close()
    if s.waiting:
        sys.exit(EXIT_FINDINGS)
