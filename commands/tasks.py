"""aupctl tasks list | done"""

from __future__ import annotations

import click

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import changing, for_people, message, render, run_plan


@click.group("tasks")
def cli() -> None:
    """Work to do by hand: access to systems without a directory group (SAP, the county intranet),
    laptops to collect, mailboxes to decide on. A task stays open until `aupctl tasks done ID`."""


@cli.command("list", short_help="Tasks, oldest first (--open: only those not done).")
@click.option("--open", "open_only", is_flag=True, help="Only tasks not yet done.")
@click.option("--user", metavar="USER", shell_complete=complete_user, help="Only tasks about this account.")
@pass_ctx
def list_(ctx: Ctx, open_only: bool, user: str | None) -> None:
    """Tasks, oldest first: what to do, for whom, and whether it is done."""
    from aupctl.records.tasks import list_tasks

    rows = [_row(t) for t in list_tasks(ctx.state, open_only=open_only, username=user)]
    cols = ["id", "status", "username", "system", "kind", "text", "opened_at", "closed_at", "closed_by", "note"]
    render(
        ctx,
        rows,
        ["id", "status", "username", "kind", "text", "opened_at", "note"],
        data_columns=cols,
        empty="no open tasks" if open_only else "no tasks",
    )


def _row(t: dict) -> dict:
    import datetime as dt

    def when(text: str | None) -> dt.datetime | str | None:  # tables show minutes; JSON keeps ISO 8601
        try:
            return dt.datetime.fromisoformat(text) if text else None
        except ValueError:
            return text

    return {
        **t,
        "status": "done" if t["closed_at"] else "open",
        "opened_at": when(t["opened_at"]),
        "closed_at": when(t["closed_at"]),
    }


@cli.command("done", short_help="Mark task ID as done, with an optional note.")
@click.argument("task_id", metavar="ID", type=int)
@click.option("--note", metavar="TEXT", help="What was done (e.g. the service desk reference).")
@changing
@pass_ctx
def done(ctx: Ctx, task_id: int, note: str | None, dry_run: bool, yes: bool) -> None:
    """Mark task ID as done (recorded in the audit log). Exit 2 if there is no such task."""
    from aupctl.access.tasks import done_plan
    from aupctl.records.tasks import get_task

    plan = done_plan(ctx.state, task_id, note)
    if plan.empty:  # already done: said to a person on stderr, nothing to confirm
        for text in plan.notes:
            message(text)
    # a program gets one JSON document: the plan for --dry-run, else the task's row (below)
    result = run_plan(ctx, plan, dry_run=dry_run, yes=yes, show=not plan.empty and (for_people(ctx) or dry_run))
    if result is None:
        return
    row = get_task(ctx.state, task_id)
    if result.done:
        message(f"task {task_id} done: {row['text']}")
    if not for_people(ctx):  # the messages above say it to a person; programs get the task's row
        render(ctx, [_row(row)])
