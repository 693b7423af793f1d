"""aupctl notify: the day's reminders by email (docs/notify.md)."""

from __future__ import annotations

import click

from .context import Ctx, pass_ctx
from .output import changing, exit_for_findings, render_findings, run_plan


@click.command("notify", short_help="Send the day's reminders by email (laptops, AUP, leaver tasks).")
@changing
@pass_ctx
def cli(ctx: Ctx, dry_run: bool, yes: bool) -> None:
    """Send the day's reminders by email, each once per stage (one cron line, once a day).

    Laptops: to the person a laptop is assigned to, [notify] laptop_days_before days before its
    check-in is due, on the day, and weekly after, copied to [notify] technician (policy 1.4). AUP:
    new starters whose grants wait for their signature, weekly (9.1). Leaver tasks open longer than
    [notify] task_days: to the technician, weekly (1.3). Recertification: approvers who have not
    decided, before the due date (1.3).

    A re-run the same day sends nothing. A letter is recorded (audit log, and the notices table) only
    once the mail server took it; if the server cannot be reached or refuses (exit 3), a re-run sends
    what is left. Someone with no mail address in the directory is reported (exit 1).
    """
    from aupctl.credentials import mail_password
    from aupctl.notify import Outbox, build, check_letters
    from aupctl.state import today

    cfg = ctx.config
    outbox = Outbox(cfg)
    result = build(cfg, ctx.state, ctx.directory, outbox, today=today())
    if not dry_run and not result.plan.empty:
        m = cfg.mail  # no server, no sender or no password: exit 2 here, before the plan is shown
        outbox.ready(mail_password(m.host, m.username, m.password_file) if m.host and m.username else None)
    if not dry_run or cfg.mail.from_:
        check_letters(cfg, result.reminders)  # a broken template stops here (exit 2), before the first letter
    try:
        run_plan(ctx, result.plan, dry_run=dry_run, yes=yes, done=f"{len(result.plan.changes)} letter(s) sent")
    finally:
        outbox.close()
    if result.findings:
        exit_for_findings(render_findings(ctx, result.findings))
