"""aupctl log [--since DATE] [--user USER] | log verify | log checkpoint | log repair"""

from __future__ import annotations

import datetime as dt
import sys

import click

from aupctl.dates import parse_date as read_date
from aupctl.errors import EXIT_FINDINGS

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import message, reconcile_open, render, set_json, wants_json


def parse_date(value: str | None, option: str) -> dt.date | None:
    return None if value is None else read_date(value, option)  # aupctl.dates: ISO 8601 or DD/MM/YYYY


@click.group("log", invoke_without_command=True)
@click.option("--since", metavar="DATE", help="Entries on or after this date (YYYY-MM-DD).")
@click.option("--user", metavar="USER", shell_complete=complete_user, help="Entries about this account.")
@click.pass_context
def cli(click_ctx: click.Context, since: str | None, user: str | None) -> None:
    """The audit log: every change aupctl made, who made it and when."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Ctx = click_ctx.obj
    day = parse_date(since, "--since")
    entries = ctx.state.audit_entries(since=day.isoformat() if day else None, target=user)
    rows = [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": e.details,
        }
        for e in entries
    ]
    columns = ["id", "at", "actor", "action", "target", "details"]
    render(ctx, rows, columns, json_text=["details"], empty="the audit log has no such entries")


@cli.command("verify")
@click.option(
    "--checkpoints",
    "checkpoints_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Check against this checkpoints file (e.g. lines copied from the syslog server) instead of "
    "[state] checkpoints.",
)
@pass_ctx
def verify(ctx: Ctx, checkpoints_file: str | None) -> None:
    """Check the audit log: the keyed hash chain, its append-only triggers, and the signed checkpoints
    (a log shorter than, or different from, its last checkpoint). Exit 1 naming what was found; exit 2
    if the audit key is missing."""
    from pathlib import Path

    from aupctl import auditlog

    path = Path(checkpoints_file) if checkpoints_file else auditlog.checkpoints_path(ctx.config, ctx.state)
    result = auditlog.verify(ctx.state, path)
    if not result.intact:
        for line in result.findings():
            message(f"audit log {line}")
        message(f"({result.entries} entries read; checkpoints: {path})")
        sys.exit(EXIT_FINDINGS)
    message(f"audit log {result.summary()}")


@cli.command("checkpoint")
@pass_ctx
def checkpoint(ctx: Ctx) -> None:
    """Verify the audit log, then sign its entry count and head hash into the checkpoints file and syslog.

    No arguments: run it from cron (docs/security.md). Prints one line on stdout; if the log does not
    verify, signs nothing and exits 1 naming what was found."""
    from aupctl import auditlog

    path = auditlog.checkpoints_path(ctx.config, ctx.state)
    result = auditlog.take_checkpoint(ctx.state, path)
    if result.checkpoint is None:
        for line in result.verification.findings():
            message(f"audit log {line}")
        message("no checkpoint taken: a broken log is not signed")
        sys.exit(EXIT_FINDINGS)
    cp = result.checkpoint
    where = f"{path}" + (" and syslog" if result.syslog else " (no syslog here)")
    if wants_json(ctx):
        set_json(ctx, data={"seq": cp.seq, "entries": cp.entries, "head": cp.head, "at": cp.at, "written_to": where})
        return
    click.echo(f"checkpoint {cp.seq}: {cp.entries} entries, head {cp.head[:16]}, at {cp.at}, written to {where}")


@cli.command("repair")
@pass_ctx
def repair(ctx: Ctx) -> None:
    """Record the changes a stopped run made but did not record.

    Every change is journalled as intended before it is made. When a run stops before recording one
    (the state store locked or its disk full, the process killed), this checks the directory for
    each change left open, records what happened (an audit entry `reconciled`, outcome done / not
    done / unknown) exactly once, and lists them. Any changing command does the same first. Exit 1
    if the outcome of any could not be told: check those by hand.
    """
    from aupctl.plan import UNKNOWN

    reconciled = reconcile_open(ctx, keep_going=False)
    rows = [r.row() for r in reconciled]
    render(
        ctx,
        rows,
        ["id", "intended_at", "action", "target", "outcome", "description", "why"],
        empty="nothing to repair: every change begun has been recorded",
    )
    unknown = [r for r in reconciled if r.outcome == UNKNOWN]
    if unknown:
        message(f"{len(unknown)} change(s) of unknown outcome: check them in the directory by hand")
        sys.exit(EXIT_FINDINGS)
