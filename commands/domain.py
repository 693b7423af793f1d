"""aupctl domain audit (policy 6.2 and 6.1)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .context import Ctx, pass_ctx
from .output import exit_with, note, render_findings, warn
from .schools import all_schools_option, run_all_schools

if TYPE_CHECKING:
    from aupctl.domain.audit import DomainAuditResult
    from aupctl.state import State


@click.group("domain")
def cli() -> None:
    """The directory's own settings and admin accounts (policy 6.2, 6.1).

    Cyber Essentials and the DfE cyber security standards ask concrete questions of the domain:
    lockout after at most 10 failed logons, a minimum length of 12 (8 with a deny list), no forced
    expiry, admin accounts used only for admin work. `domain audit` answers them from cron.
    """


@cli.command("audit", short_help="Password policy, admin accounts, Kerberos weaknesses; exit 1 on findings.")
@all_schools_option
@pass_ctx
def audit(ctx: Ctx, all_schools: bool) -> None:
    """Audit the directory's password and lockout policies and its admin accounts; exit 1 on findings.

    Policies: AD's domain policy and fine-grained password policies, or OpenLDAP's ppolicy entries,
    against [passwords] min_length, [domain] max_lockout_attempts and deny_list, and Cyber Essentials.
    Admin accounts: the members (through nested groups) of AD's privileged groups, found by their
    well-known SIDs (Domain, Enterprise and Schema Admins, Administrators, Account, Backup and Server
    Operators), and of [directory] privileged_groups: an admin account with a mailbox, one that is its
    owner's only account, one whose password never expires. On AD also: accounts that need no Kerberos
    pre-authentication, user accounts with a service principal name.

    The number of admin accounts is recorded in the state store on each run and compared with the
    last run's: accounts that gained admin rights since are a finding. Read-only towards the directory.

    Output: one row per finding (severity, subject, check, clause, detail); a summary on stderr.
    --format json: the findings, and under "data" the policies, privileged groups, admin accounts
    and the admin count. Exit codes: 0 no findings, 1 findings, 2 bad config, 3 directory unreachable.
    With --all-schools (a trust's config): every school's directory in one result with a school column.
    """
    from aupctl.domain.audit import audit as run_audit

    if all_schools:

        def one(sub: Ctx) -> tuple[list, int]:
            found = run_audit(sub.config, sub.directory, _state_or_none(sub))
            for line in found.warnings:  # e.g. a count not recorded: said per school, as a single run says it
                warn(f"school {sub.config.school_key}: {line}")
            return found.findings, len(found.admins)

        run_all_schools(ctx, one, clean="no findings", snapshot="domain-audit")
        return

    result = run_audit(ctx.config, ctx.directory, _state_or_none(ctx))
    for line in result.warnings:
        note(ctx, line, warning=True)
    for line in result.notes:
        note(ctx, line)
    _summary(ctx, result)
    exit_with(
        render_findings(
            ctx,
            result.findings,
            clean="no findings: the domain's policies and admin accounts pass",
            json_obj=result.data(),
            snapshot="domain-audit",
            subjects=len(result.admins),
        )
    )


def _state_or_none(ctx: Ctx) -> State | None:
    """The store only keeps the count: one that cannot be opened (read-only and not yet migrated, damaged)
    costs the comparison, not the audit."""
    from aupctl.errors import AupctlError

    try:
        return ctx.state
    except AupctlError as exc:
        warn(f"the state store cannot be opened ({exc.message}): the admin count is not compared or recorded")
        return None


def _policy_text(row: dict[str, Any]) -> str:
    lockout = f"after {row['lockout_threshold']}" if row["lockout_threshold"] else "never"
    minutes = row["lockout_minutes"]
    if row["lockout_threshold"] and minutes is not None:
        lockout += " for " + (f"{minutes} min" if minutes else "good (until unlocked)")
    age = f"{row['max_age_days']} days" if row["max_age_days"] else "never"
    complexity = ", complexity on" if row["complexity"] else ""
    return (
        f"{row['name']}: minimum length {row['min_length']}{complexity}, lockout {lockout}, expiry {age}; "
        f"applies to {row['applies_to']}"
    )


def _summary(ctx: Ctx, result: DomainAuditResult) -> None:
    data = result.data()
    for row in data["policies"]:
        note(ctx, "policy " + _policy_text(row))
    groups = ", ".join(g.name or g.label for g in result.groups) or "none found"
    note(ctx, f"privileged groups: {groups}")
    count = result.count
    change = ""
    if count.previous is not None:
        diff = count.now - count.previous
        since = (count.previous_at or "")[:10]
        change = f" ({'+' if diff > 0 else ''}{diff} since {since}" if diff else f" (no change since {since}"
        if count.added:
            change += f"; added: {', '.join(count.added)}"
        if count.removed:
            change += f"; removed: {', '.join(count.removed)}"
        change += ")"
    elif count.recorded:
        change = " (first count recorded)"
    names = [a.username for a in result.admins if a.enabled and a.kind in ("user", "computer")]
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    note(ctx, f"admin accounts: {count.now}{change}" + (f": {shown}" if shown else ""))
