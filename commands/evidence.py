"""aupctl evidence record | list (the termly report's evidence)"""

from __future__ import annotations

import click

from aupctl.records.evidence import KINDS

from .context import Ctx, pass_ctx
from .output import changing, for_people, message, render, run_plan

RECORD_HELP = (
    "Record evidence of KIND that happened on DATE (recorded in the audit log).\n\n\b\nKIND is one of:\n"
    + "\n".join(f"  {k}: {what}" for k, (what, _) in KINDS.items())
    + "\n\nExit 2 (nothing recorded) for an unknown kind, a bad or future date, or a file that cannot be read."
)


@click.group("evidence")
def cli() -> None:
    """Evidence no tool can check, for the termly report (DfE cyber security standards).

    Kinds: backup-tested, cyber-training, governor-training, risk-assessment, incident, cyberalarm,
    response-plan. A file given with --file is hashed (SHA-256) and its path recorded; it is not copied.
    """


@cli.command("record", help=RECORD_HELP, short_help="Record evidence of KIND on a day, with a note and a file.")
@click.argument("kind", metavar="KIND")
@click.option("--on", "on", required=True, metavar="DATE", help="The day it happened, YYYY-MM-DD or DD/MM/YYYY.")
@click.option("--note", metavar="TEXT", help="What was done (plain words; shown in the report).")
@click.option("--file", "file", metavar="PATH", help="A document that shows it: hashed and its path kept.")
@changing
@pass_ctx
def record(ctx: Ctx, kind: str, on: str, note: str | None, file: str | None, dry_run: bool, yes: bool) -> None:
    from aupctl.report.evidence import record_plan

    plan = record_plan(ctx.state, kind, on, note, file)
    result = run_plan(ctx, plan, dry_run=dry_run, yes=yes, show=for_people(ctx) or dry_run)
    if result is not None and result.done and not for_people(ctx):
        from aupctl.report.evidence import list_rows

        new_id = (result.results[0] or {}).get("evidence")
        render(ctx, [r for r in list_rows(ctx.state) if r["id"] == new_id])


@cli.command("list", short_help="The evidence on record, newest first.")
@click.option("--kind", metavar="KIND", help="Only this kind.")
@pass_ctx
def list_(ctx: Ctx, kind: str | None) -> None:
    """The evidence on record, newest first (the report marks what is missing or out of date)."""
    from aupctl.report.evidence import list_rows

    rows = list_rows(ctx.state, kind)
    render(
        ctx,
        rows,
        ["id", "kind", "on", "note", "file", "recorded_by"],
        data_columns=["id", "kind", "on", "note", "file", "sha256", "recorded_by", "recorded_at"],
        empty="no evidence recorded yet (`aupctl evidence record --help`)",
        wrap={"note": 40, "file": 30},
    )
    if for_people(ctx) and rows:
        message(f"{len(rows)} record(s)")
