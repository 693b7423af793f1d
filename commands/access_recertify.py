"""aupctl access recertify start | status | decide | apply | close (policy 1.3): the approvers' termly review."""

from __future__ import annotations

import click

from aupctl.errors import AupctlError

from .completion import complete_system, complete_user
from .context import Ctx, pass_ctx
from .output import (
    bulk,
    changing,
    exit_for_findings,
    note,
    plan_json,
    render,
    render_findings,
    run_plan,
    set_json,
    wants_json,
    warn,
)

CAMPAIGN_HELP = "The campaign's number or code (default: the open one)."


@click.group("recertify")
def recertify() -> None:
    """Termly recertification (policy 1.3): each system's approvers say, for every member, keep or remove.

    \b
    The term's round:
      aupctl access recertify start --due 2026-12-18      # one decisions file per approver
      (send each approver their file; they fill in decision: keep / remove, and a note)
      aupctl access recertify apply returned.csv          # checked first, then one plan
      aupctl access recertify status                      # decided / undecided per approver
      aupctl access recertify close                       # at the due date: undecided reported (exit 1)

    Exit codes: 0 done, 1 members nobody decided about (close), 2 refused or bad input (nothing changed),
    3 directory unreachable, 4 a change failed part-way (run the same command again).
    """


@recertify.command("start", short_help="Open a campaign: one decisions file per approver.")
@click.option(
    "--system",
    "systems",
    multiple=True,
    metavar="KEY",
    shell_complete=complete_system,
    help="Only this system (repeat for more; default every [systems.*]).",
)
@click.option("--due", metavar="DATE", help="When decisions are due (default today + access.recertify_days).")
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    help="Where the files go (default access.recertify_dir, else a folder beside the state store).",
)
@changing
@pass_ctx
def start(ctx: Ctx, systems: tuple[str, ...], due: str | None, out_dir: str | None, dry_run: bool, yes: bool) -> None:
    """Open a campaign: for each system, its members as the directory shows them now (name, role, how
    they got access, approval date and approver, last logon, AUP signed), and for each approver a CSV
    of their systems' members with empty `decision` and `note` columns.

    Refused (exit 2) while an open campaign covers one of the systems. Systems managed by hand are
    asked about the people with an approval on record. With [mail] host set, each approver is mailed
    their file (an approver written without an address is reported, exit 1); if the mail server cannot
    be reached (exit 3) the campaign stays open and `aupctl notify --yes` sends the letters left.
    Without mail, send the files yourself.
    """
    from aupctl.access.recertify.campaign import out_folder, start_plan
    from aupctl.credentials import mail_password

    m = ctx.config.mail
    secret = None
    if m.host and m.username and not dry_run:  # a missing mail password stops here, before the campaign
        secret = mail_password(m.host, m.username, m.password_file)
    plan = start_plan(ctx.config, ctx.directory, ctx.state, list(systems) or None, due, out_dir)
    result = run_plan(ctx, plan, dry_run=dry_run, yes=yes)
    if dry_run and m.host:
        note(ctx, f"each approver would be mailed their file through {m.host}")
    if result is not None and result.done:
        note(ctx, f"the approvers' files are in {out_folder(ctx.config, ctx.state, out_dir)}")
        if m.host:
            _mail_letters(ctx, secret)


def _mail_letters(ctx: Ctx, secret: str | None) -> None:
    """Mail each approver the campaign's opening letter with their file: each a change of its own (audit
    log, once per approver), so a re-run of `aupctl notify` sends only what the server did not take."""
    from aupctl.notify import Outbox, check_letters
    from aupctl.notify.engine import campaign_letters, plan_of
    from aupctl.state import today

    cfg = ctx.config
    outbox = Outbox(cfg)
    run = plan_of(cfg, ctx.state, campaign_letters(cfg, ctx.state, today()), outbox)
    run.plan.title = "mail each approver their decisions file"
    as_json = wants_json(ctx)  # the envelope's plan stays the campaign's; the letters go under data
    try:
        if not run.plan.empty:
            outbox.ready(secret)
            check_letters(cfg, run.reminders)
            # the technician confirmed the campaign; its letters are part of it
            n = len(run.plan.changes)
            run_plan(ctx, run.plan, dry_run=False, yes=True, show=not as_json, done=f"{n} letter(s) sent")
        if as_json:
            sent = [
                {"to": list(r.letter.to), "subject": r.letter.subject, "files": [a[0] for a in r.letter.attachments]}
                for r in run.reminders
            ]
            set_json(ctx, data={"letters": sent})
    except AupctlError:
        warn("the campaign is open, but not every approver was mailed: `aupctl notify --yes` sends the rest")
        raise
    finally:
        outbox.close()
    if run.findings:
        exit_for_findings(render_findings(ctx, run.findings))


@recertify.command("status", short_help="Decided / undecided per system and approver.")
@click.option("--campaign", metavar="ID", help=CAMPAIGN_HELP.replace("the open one", "the open one, else the newest"))
@pass_ctx
def status(ctx: Ctx, campaign: str | None) -> None:
    """Per system and approver: members asked about, decided (by that approver) and still undecided (an
    item needs one approver's decision)."""
    from aupctl.access.recertify.status import campaign_status

    data = campaign_status(ctx.state, campaign)
    c = data["campaign"]
    if c is not None:
        note(
            ctx,
            f"campaign {c['id']} ({c['code']}), {c['status']}, due {c['due']}: {c['decided']} of {c['members']} "
            f"decided; files in {c['out_dir']}",
        )
    render(
        ctx,
        data["approvers"],
        ["system", "approver", "members", "decided", "undecided", "due"],
        json_obj=data,
        empty="no recertification campaign yet: aupctl access recertify start",
    )


@recertify.command("decide", short_help="Record one approver's decision and carry it out.")
@click.argument("user", shell_complete=complete_user)
@click.argument("system", shell_complete=complete_system)
@click.argument("decision", type=click.Choice(["keep", "remove"], case_sensitive=False))
@click.option("--by", "by", required=True, metavar="APPROVER", help="Who decided: one of the system's approvers.")
@click.option("--note", default="", metavar="TEXT", help="Their reason (kept with the decision and the approval).")
@click.option("--campaign", metavar="ID", help=CAMPAIGN_HELP)
@changing
@pass_ctx
def decide(
    ctx: Ctx,
    user: str,
    system: str,
    decision: str,
    by: str,
    note: str,
    campaign: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """USER keeps or loses SYSTEM, as APPROVER decided (an answer by email, say).

    Refused (exit 2, nothing changed) for someone the campaign did not ask about, or an APPROVER who is
    not one of the system's approvers. Remove: out of the group (a task if by hand) and the approval
    ended with the approver's name and note. Keep: the approval's review clock renewed.
    """
    from aupctl.access.recertify.decisions import decide_plan

    plan = decide_plan(ctx.config, ctx.directory, ctx.state, user, system, decision, by, note, campaign)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@recertify.command("apply", short_help="Apply a returned decisions file (checked first, then one plan).")
@click.argument("decisions_csv", metavar="DECISIONS.csv")
@changing
@bulk("access recertify apply")
@pass_ctx
def apply_(ctx: Ctx, decisions_csv: str, dry_run: bool, yes: bool) -> None:
    """Apply an approver's returned file: `decision` keep, remove or blank (not decided yet), `note`.

    Every row is checked first: an unknown person or system, another decision, a decider who is not an
    approver of that system, a member list changed since the campaign started. Any bad row: each named
    by its line, exit 2, nothing changed. Then one plan: the removed leave the group (tasks for systems
    managed by hand) and their approvals end with the approver's name and note; the kept have their
    review clock renewed. Applying the same file again changes nothing.
    """
    from aupctl.access.recertify.decisions import apply_plan

    plan = apply_plan(ctx.config, ctx.directory, ctx.state, decisions_csv)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@recertify.command("close", short_help="At the due date: report (and with unanswered=remove, remove) the undecided.")
@click.option("--campaign", metavar="ID", help=CAMPAIGN_HELP)
@changing
@bulk("access recertify close")
@pass_ctx
def close(ctx: Ctx, campaign: str | None, dry_run: bool, yes: bool) -> None:
    """Close the campaign on or after its due date (refused before, exit 2).

    Decisions not yet carried out are carried out. Members nobody decided about are reported (exit 1):
    with access.unanswered = "remove" they are removed in the same plan; by default ("keep") they keep
    their access, without a renewed review, and the report says so.
    """
    from aupctl.access.recertify.decisions import close_plan, undecided_findings

    plan, camp, undecided = close_plan(ctx.config, ctx.directory, ctx.state, campaign)
    findings = undecided_findings(camp, undecided, ctx.config.access.unanswered)
    if wants_json(ctx):
        render_findings(ctx, findings)
        set_json(ctx, plan=plan_json(plan))
        run_plan(ctx, plan, dry_run=dry_run, yes=yes, show=False)
    else:
        render_findings(ctx, findings, clean="every member was decided about")
        run_plan(ctx, plan, dry_run=dry_run, yes=yes)
    exit_for_findings(findings)
