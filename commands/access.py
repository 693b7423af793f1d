"""aupctl access systems | grant | revoke | list | review | adopt (policy 1.3)"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .completion import complete_system, complete_user
from .context import Ctx, pass_ctx
from .output import (
    bulk,
    changing,
    exit_for_findings,
    exit_with,
    note,
    plan_json,
    progress,
    render,
    render_findings,
    run_plan,
    set_json,
    wants_json,
    warn,
)
from .schools import all_schools_option, run_all_schools

if TYPE_CHECKING:
    pass


@click.group("access")
def cli() -> None:
    """Access to restricted systems (SIMS, SAP, Target Tracker, RAISE Online, Schoolcomms, the county
    intranet): only nominated staff, only with an approval on record (policy 1.3), only after they
    signed the current AUP (policy 9.1).

    SYSTEM is a key of a [systems.KEY] table in the config (`aupctl access systems` lists them).
    Exit codes: 0 done/clean, 1 findings (review), 2 refused or bad input (nothing changed),
    3 directory unreachable, 4 a change failed part-way (run the same command again).
    """


@cli.command("systems", short_help="Each system: group or by hand, eligible roles, approvers, members.")
@pass_ctx
def systems(ctx: Ctx) -> None:
    """Each system: name, group (or "by hand"), eligible roles, approvers, members and approvals."""
    from aupctl.access.listing import systems_rows

    rows = systems_rows(ctx.config, ctx.directory, ctx.state)
    render(ctx, rows, ["system", "name", "group", "roles", "approvers", "members", "approved", "review_days"])


@cli.command("grant", short_help="Give USER access to SYSTEM, recording who approved it.")
@click.argument("user", shell_complete=complete_user)
@click.argument("system", shell_complete=complete_system)
@click.option(
    "--approved-by",
    "approver",
    required=True,
    metavar="NAME",
    help="Who approved it: one of the system's approvers (a unique start of the name is enough).",
)
@click.option("--reason", default="", metavar="TEXT", help="Why they need it (kept with the approval).")
@click.option(
    "--until", metavar="DATE", help="YYYY-MM-DD or DD/MM/YYYY: the approval ends then (access review reports it)."
)
@changing
@pass_ctx
def grant(
    ctx: Ctx, user: str, system: str, approver: str, reason: str, until: str | None, dry_run: bool, yes: bool
) -> None:
    """Give USER access to SYSTEM, recording who approved it.

    Refused (exit 2, nothing changed) when the account does not exist, is disabled or a leaver, their
    role may not be nominated for the system, they have not signed the current AUP, or NAME is not one
    of the system's approvers. A system with a group: USER is added to it. A system managed by hand: a
    task is opened (`aupctl tasks list`).

    \b
    Example:
      aupctl access grant sobrien sims --approved-by "Mrs A Patel" --reason "new SENCo"
    """
    from aupctl.access.grant import grant_plan

    system = ctx.config.system_key(system)  # case-insensitive; an unknown key names the closest
    plan = grant_plan(ctx.config, ctx.directory, ctx.state, user, system, approver, reason, until)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("revoke", short_help="Take SYSTEM away from USER (approval ended; a task if by hand).")
@click.argument("user", shell_complete=complete_user)
@click.argument("system", shell_complete=complete_system)
@click.option("--reason", required=True, metavar="TEXT", help="Why access is withdrawn (kept in the record).")
@changing
@pass_ctx
def revoke(ctx: Ctx, user: str, system: str, reason: str, dry_run: bool, yes: bool) -> None:
    """Take SYSTEM away from USER: out of the group, approval ended; a task for by-hand systems."""
    from aupctl.access.grant import revoke_plan

    system = ctx.config.system_key(system)
    plan = revoke_plan(ctx.config, ctx.directory, ctx.state, user, system, reason)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("list", short_help="Approvals on record: who has what, approved by whom and when.")
@click.argument("system", required=False, shell_complete=complete_system)
@pass_ctx
def list_(ctx: Ctx, system: str | None) -> None:
    """Who has what on record: approvals (active, and waiting for an AUP signature), who approved them
    and when. Membership itself is checked by `access review`."""
    from aupctl.access.listing import list_rows

    system = ctx.config.system_key(system) if system else None
    rows = list_rows(ctx.config, ctx.state, system)
    cols = ["username", "system", "status", "approver", "granted_at", "until", "reason", "source"]
    render(
        ctx,
        rows,
        cols,
        data_columns=cols + ["system_name", "granted_by", "id"],
        empty="no approvals on record",
    )


@cli.command("review", short_help="Members against approvals: findings (exit 1); --fix removes.")
@click.argument("system", required=False, shell_complete=complete_system)
@click.option(
    "--fix",
    is_flag=True,
    help="Also build one plan removing the members who should not be there (tasks for by-hand systems).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --fix: run a plan that removes people from a system with no approvals ever recorded, or more "
    "than access.max_removal_share of its members (read it first with --dry-run).",
)
@all_schools_option
@changing(when=lambda kw: kw["fix"])
@bulk("access review --fix", when=lambda kw: kw["fix"])
@pass_ctx
def review(ctx: Ctx, system: str | None, fix: bool, force: bool, all_schools: bool, dry_run: bool, yes: bool) -> None:
    """Compare each system's members (nested groups count on AD) with the approvals.

    Reports, each citing its AUP clause: a member with no approval (granted outside aupctl); an
    approval past --until (expired) or older than review_days (overdue); a member who is disabled or
    in the leavers OU; a member whose role is not eligible; a member without a current AUP signature;
    an approval on record for someone not in the group (drift).

    With --fix: one plan, shown first and applied on confirmation, removes from the group every member
    who should not be there (their approval ended; put back to waiting when only the AUP signature is
    missing) and opens tasks for by-hand systems. Overdue approvals and drift are left for a decision.

    Safe first contact: a plan that removes people from a system for which no approval was ever recorded
    (run `access adopt` first), or more than access.max_removal_share of a system's members (default 25 %),
    is refused with exit 2 and nothing changed unless --force is given; --dry-run shows it either way.

    Exit 1 if anything was found (also with --fix), 0 if clean, 2 if the plan was refused.

    With --all-schools (a trust's config): every school's review in one result with a school column.
    """
    if all_schools:
        if fix:
            raise click.UsageError("--all-schools only reads: --fix changes one school at a time (--school KEY)")
        kind = "access-review" if system is None else None  # one system's review is no trend point
        run_all_schools(ctx, lambda sub: _review_one(sub, system), clean="no findings", snapshot=kind)
        return
    from aupctl.access.review import first_contact_refusal, fix_plan
    from aupctl.access.review import review as run_review
    from aupctl.errors import RefusedError

    system = ctx.config.system_key(system) if system else None
    from aupctl.access.review import REVIEW_STEPS

    with progress(ctx, "reading the directory", REVIEW_STEPS) as step:
        result = run_review(ctx.config, ctx.directory, ctx.state, system, progress=step)
    findings = result.findings
    for key, dn in result.missing_groups.items():
        warn(f"{key}: its group {dn} (systems.{key}.group) does not exist, so it was not reviewed")
    plan, refusal = None, None
    if fix:
        plan = fix_plan(ctx.config, ctx.directory, ctx.state, result)
        refusal = None if force else first_contact_refusal(ctx.config, ctx.state, result, plan)
    # a review of every system is a point on the termly report's trend; one system's is not
    kind, subjects = ("access-review" if system is None else None), sum(result.checked.values())
    if plan is not None and wants_json(ctx):  # the findings and the plan in one JSON envelope
        render_findings(ctx, findings, snapshot=kind, subjects=subjects)
        set_json(ctx, plan=plan_json(plan))
        if refusal and not dry_run:
            raise RefusedError(refusal)
        if refusal:
            warn(refusal)
        if not dry_run and not plan.empty:
            run_plan(ctx, plan, dry_run=False, yes=yes, show=False)
        exit_for_findings(findings)
        return
    code = render_findings(
        ctx,
        findings,
        clean="no findings: every member is approved, eligible and signed",
        snapshot=kind,
        subjects=subjects,
    )
    checked = ", ".join(f"{k} {n}" for k, n in result.checked.items())
    note(ctx, f"checked: {checked}" if checked else "no systems checked")
    if plan is not None:
        if refusal and not dry_run:
            raise RefusedError(refusal)
        run_plan(ctx, plan, dry_run=dry_run, yes=yes)
        if refusal:
            warn(refusal)
    exit_with(code)


def _review_one(ctx: Ctx, system: str | None) -> tuple[list, int]:
    """One school's review for --all-schools: its findings and members checked (missing groups as warnings)."""
    from aupctl.access.review import review as run_review

    key = ctx.config.system_key(system) if system else None
    result = run_review(ctx.config, ctx.directory, ctx.state, key)
    for name, dn in result.missing_groups.items():
        warn(f"school {ctx.config.school_key}: {name}: its group {dn} (systems.{name}.group) does not exist")
    return result.findings, sum(result.checked.values())


@cli.command("adopt", short_help="Record today's group members as approved (once, when starting).")
@click.argument("system", required=False, shell_complete=complete_system)
@click.option(
    "--approved-by",
    "approver",
    required=True,
    metavar="NAME",
    help="Who stands behind the access held today: one of each adopted system's approvers, as for grant.",
)
@click.option(
    "--reason",
    default="",
    metavar="TEXT",
    help='Kept with each approval (default "access held when aupctl was adopted").',
)
@changing
@pass_ctx
def adopt(ctx: Ctx, system: str | None, approver: str, reason: str, dry_run: bool, yes: bool) -> None:
    """Record the current members of SYSTEM's group (all systems by default) as approved by NAME.

    Run once when a school starts using aupctl, so the first review reports real problems instead of
    every member. Members who already have an approval are left alone; disabled, leaver, ineligible
    and unsigned members are still reported by `access review`.
    """
    from aupctl.access.adopt import adopt_plan

    plan = adopt_plan(ctx.config, ctx.directory, ctx.state, approver, system, reason)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


from .access_recertify import recertify  # noqa: E402 - the subgroup registers after the group it joins

cli.add_command(recertify)
