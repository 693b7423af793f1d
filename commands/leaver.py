"""aupctl leaver withdraw | run-due | list | cancel | restore"""

from __future__ import annotations

import datetime as dt

import click

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import bulk, changing, message, render, run_plan

LIST_COLUMNS = ["id", "username", "status", "leave_on", "reason", "done_at", "restored_at", "open_tasks"]


def _date(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    from aupctl.dates import parse_date

    return parse_date(value, what)


def _today(value: str | None) -> dt.date:
    from aupctl.state import today

    return _date(value, "--today") or today()


# Hidden: lets the tests (and a technician catching up after a holiday) say which day "today" is.
today_option = click.option("--today", "today_text", metavar="DATE", hidden=True, help="Act as if today were DATE.")


@click.group("leaver")
def cli() -> None:
    """Staff leavers: withdraw access, schedule, restore (policy 4.2, 9.2).

    A withdrawal disables the account, replaces its password with one nobody knows, takes it out of
    every group, ends its approvals, moves it to the leavers OU and stamps its description; it keeps
    a snapshot so `leaver restore` can undo it, and opens tasks for what must be done by hand (by-hand
    systems, the school laptop, the mailbox). Nothing is ever deleted.
    """


@cli.command("withdraw")
@click.argument("users", nargs=-1, metavar="[USER]...")
@click.option(
    "--on",
    "on",
    metavar="DATE",
    help="Leaving date (YYYY-MM-DD or DD/MM/YYYY). Today or none: now; in the future: scheduled for `run-due`.",
)
@click.option("--reason", default="", metavar="TEXT", help="Why, e.g. 'resigned' or 'suspended'; goes on the account.")
@click.option(
    "--from-csv",
    "csv_path",
    metavar="FILE",
    help="A wave from a CSV: columns username (or staff_code), leaving_date, reason.",
)
@today_option
@changing
@bulk("leaver withdraw")
@pass_ctx
def withdraw(
    ctx: Ctx,
    users: tuple[str, ...],
    on: str | None,
    reason: str,
    csv_path: str | None,
    today_text: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Withdraw leavers now, or schedule them for a date.

    \b
    Examples:
      aupctl leaver withdraw jsmith --reason "resigned"
      aupctl leaver withdraw jsmith --on 2026-07-22 --reason "end of contract"
      aupctl leaver withdraw --from-csv leavers-july.csv --dry-run

    Everyone is found first: an unknown user or a bad CSV row refuses the lot, nothing changed
    (exit 2). Killed part-way (exit 4), the same command again carries on from where it stopped.
    The tasks it opens (by-hand systems, laptops, the mailbox) are in `aupctl tasks list --open`.
    """
    from aupctl.errors import InputError
    from aupctl.leavers.schedule import Request, read_wave
    from aupctl.leavers.schedule import withdraw as build

    if csv_path and (users or on or reason):
        raise InputError("--from-csv takes the users, dates and reasons from the file: give no USER, --on or --reason")
    if not csv_path and not users:
        raise InputError("name at least one USER, or give --from-csv FILE")
    today = _today(today_text)
    if csv_path:
        requests = read_wave(csv_path, ctx.config)
    else:
        when = _date(on, "--on")
        requests = [Request(who=u, leave_on=when, reason=reason) for u in users]
    plan = build(ctx.config, ctx.directory, ctx.state, requests, today=today)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("run-due")
@today_option
@changing
@bulk("leaver run-due")
@pass_ctx
def run_due(ctx: Ctx, today_text: str | None, dry_run: bool, yes: bool) -> None:
    """Withdraw everyone whose leaving date has come (for cron).

    Does what is due today or earlier, finishes any withdrawal that was interrupted, and never does
    anything twice, so it is safe to run every day:

    \b
      15 6 * * *  /opt/aupctl/venv/bin/aupctl --quiet leaver run-due --yes

    (--quiet: nothing printed on a day with nothing due; the whole cron file: docs/cron.md)
    """
    from aupctl.leavers.schedule import run_due as build

    plan = build(ctx.config, ctx.directory, ctx.state, today=_today(today_text))
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("list", short_help="Leavers: scheduled, done, cancelled and restored.")
@click.option("--scheduled", "which", flag_value="scheduled", help="Only withdrawals still to come.")
@click.option("--done", "which", flag_value="done", help="Only withdrawals carried out (and not restored).")
@pass_ctx
def list_(ctx: Ctx, which: str | None) -> None:
    """Leavers: scheduled, done, cancelled and restored, with their open tasks."""
    from aupctl.leavers.schedule import list_leavers

    rows = list_leavers(ctx.state, status=which)
    more = LIST_COLUMNS + ["dn", "scheduled_at", "scheduled_by"]
    render(
        ctx, rows, LIST_COLUMNS, data_columns=more, empty="no leavers recorded" if not which else f"no {which} leavers"
    )


@cli.command("cancel", short_help="Cancel a scheduled withdrawal.")
@click.argument("user", shell_complete=complete_user)
@changing
@pass_ctx
def cancel(ctx: Ctx, user: str, dry_run: bool, yes: bool) -> None:
    """Cancel a scheduled withdrawal that is no longer wanted (a done one needs `restore`)."""
    from aupctl.leavers.schedule import cancel as build

    plan = build(ctx.state, user)
    if run_plan(ctx, plan, dry_run=dry_run, yes=yes) is not None:
        message(plan.changes[0].description.replace("cancel the", "cancelled the"))


@cli.command("restore")
@click.argument("user", shell_complete=complete_user)
@click.option(
    "--credentials-out",
    metavar="FILE",
    help="New file (created 0600, never overwritten) for the new password. Required.",
)
@today_option
@changing
@pass_ctx
def restore(ctx: Ctx, user: str, credentials_out: str | None, today_text: str | None, dry_run: bool, yes: bool) -> None:
    """Undo a withdrawal: put back what its snapshot holds.

    Moves the account back to its OU, puts it back in its groups, re-records the approvals still
    within their system's review period (the rest are listed), restores its description (and on AD
    accountExpires), enables it with a new password that must be changed at the next logon, and
    closes the leaver's tasks that no longer apply. The password goes only to --credentials-out.

    \b
    Example:
      aupctl leaver restore jsmith --credentials-out ~/jsmith-password.csv
    """
    from aupctl.leavers.restore import restore as build

    plan = build(
        ctx.config,
        ctx.directory,
        ctx.state,
        user,
        credentials_out=credentials_out,
        today=_today(today_text),
        dry_run=dry_run,
    )
    result = run_plan(ctx, plan, dry_run=dry_run, yes=yes)
    if result is not None and credentials_out:
        message(f"the new password is in {credentials_out} (mode 0600); hand it over in person, then delete the file")
