"""`access review`: each system's effective membership against the approvals (policy 1.3, 9.1).

Reads each system group and each person once (members.py), then compares in memory, asking
eligibility.py's rule of each member. `fix_plan` turns the findings into one Plan: members who should
not be there leave the group; by-hand systems get tasks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import checks as check_kinds
from ..config import Config
from ..directory import Account, Directory, group_name
from ..eligibility import ineligible
from ..findings import Finding, sort_findings
from ..plan import Change, Plan
from ..records import approvals
from ..records.signatures import signed_users
from ..roles import RoleInfo
from ..state import State, today
from .members import People, read_memberships, read_people, read_staff, roles_for
from .tasks import task_change

# check -> (clause, severity, removed by --fix)
CHECKS: dict[str, tuple[str, str, bool]] = {
    "no-approval": ("1.3", "high", True),
    "leaver-member": ("1.3", "high", True),
    "disabled-member": ("1.3", "high", True),
    "role-not-eligible": ("1.3", "high", True),
    "approval-expired": ("1.3", "high", True),
    "aup-unsigned": ("9.1", "medium", True),
    "approval-overdue": ("1.3", "medium", False),
    "not-a-member": ("1.3", "low", False),
}


@dataclass
class Problem:
    """A finding plus what --fix needs to act on it."""

    finding: Finding
    system: str
    username: str | None
    member_dn: str | None = None
    via: str | None = None
    approval: dict[str, Any] | None = None


@dataclass
class Review:
    problems: list[Problem]
    checked: dict[str, int]  # system -> members (or approvals, for by-hand systems) looked at
    missing_groups: dict[str, str] = field(default_factory=dict)  # system -> group DN not in the directory

    @property
    def findings(self) -> list[Finding]:
        return sort_findings([p.finding for p in self.problems])


def _finding(check: str, subject: str, system: str, detail: str) -> Finding:
    clause, severity, _ = CHECKS[check]
    return Finding(subject=subject, check=check, clause=clause, severity=severity, detail=detail, system=system)  # type: ignore[arg-type]


def _age_days(when: str, on: dt.date) -> int:
    try:
        day = dt.datetime.fromisoformat(when).date()
    except ValueError:
        return 0
    return (on - day).days


def _reviewed_at(appr: dict[str, Any]) -> str:
    """When the approval was last looked at: granted, or kept by an approver in a recertification."""
    return max(appr["granted_at"], appr.get("recertified_at") or "")


# What the review and fix_plan read of an approval (not all its columns: a review reads thousands).
APPROVAL_COLUMNS = ("id", "username", "system", "approver", "status", "granted_at", "until", "recertified_at")


REVIEW_STEPS = 4  # staff, groups, people, roles and signatures: what progress counts up to before judging


def review(
    cfg: Config,
    directory: Directory,
    state: State,
    system_key: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Review:
    """progress(n): called after each of the REVIEW_STEPS reads (a big directory's take seconds each)."""
    step = progress or (lambda n: None)
    keys = [system_key] if system_key else list(cfg.systems)
    for k in keys:
        cfg.system(k)
    staff = read_staff(cfg, directory)  # first: a posixGroup's usernames are then found without a search
    step(1)
    memberships = read_memberships(cfg, directory, keys, staff)
    step(2)
    live = [r for r in approvals.live(state, columns=APPROVAL_COLUMNS) if r["system"] in keys]
    member_dns = {dn for m in memberships.values() if m for dn in m}
    people = read_people(cfg, directory, member_dns, {r["username"] for r in live}, staff, state)
    step(3)
    judge = _Judge(cfg, people, roles_for(cfg, directory, state, people), signed_users(state, cfg.school.aup_version))
    step(4)
    by_system: dict[str, dict[str, dict[str, Any]]] = {}
    for r in live:
        by_system.setdefault(r["system"], {})[r["username"].lower()] = r
    for key in keys:
        approved = by_system.get(key, {})
        group = cfg.systems[key].group
        if not group:
            judge.by_hand(key, approved)
        elif memberships.get(key) is None:
            judge.missing_groups[key] = cfg.group_dn(group)
        else:
            judge.group(key, memberships[key] or {}, approved)
    return Review(judge.problems, judge.checked, judge.missing_groups)


class _Judge:
    """The review's findings, system by system, from what was read once for all of them."""

    def __init__(self, cfg: Config, people: People, roles: dict[str, RoleInfo], signed: set[str]) -> None:
        self.cfg = cfg
        self.people = people
        self.roles = roles
        self.signed = signed
        self.on = today()
        self.on_iso = self.on.isoformat()
        self.problems: list[Problem] = []
        self.checked: dict[str, int] = {}  # system -> members (or approvals, for by-hand systems) looked at
        self.missing_groups: dict[str, str] = {}

    def person(
        self, key: str, acct: Account, user: str, where: str, appr: dict[str, Any] | None
    ) -> list[tuple[str, str]]:
        """(check, detail) of each finding about one person's access to one system."""
        system = self.cfg.systems[key]
        # The one eligibility rule (eligibility.py), asked with the roles and signatures read once for all.
        role = self.roles.get(user) or RoleInfo(None, "no role")
        found = [
            (p.check, f"{p.reason}; still {where}") for p in ineligible(self.cfg, acct, key, role, user in self.signed)
        ]
        if appr and appr["status"] == "active":
            if appr["until"] and appr["until"] < self.on_iso:
                found.append(
                    ("approval-expired", f"approval by {appr['approver']} ended on {appr['until']}; still {where}")
                )
            elif _age_days(_reviewed_at(appr), self.on) > system.review_days:
                found.append(
                    (
                        "approval-overdue",
                        f"approval by {appr['approver']} on {_reviewed_at(appr)[:10]} is older than "
                        f"{system.review_days} days: renew it (access grant, access recertify) or revoke it",
                    )
                )
        return found

    def group(self, key: str, members: dict[str, str | None], approved: dict[str, dict[str, Any]]) -> None:
        """A system with a directory group: each effective member against the approvals, then approvals
        of people who are not members."""
        system = self.cfg.systems[key]
        self.checked[key] = len(members)
        seen_users: set[str] = set()
        direct = f"in {system.group}"
        for dn, via in members.items():
            acct = self.people.find(dn)
            where = f"{direct} through {group_name(via)}" if via else direct
            username = user = None
            appr: dict[str, Any] | None = None
            if acct is None:
                found = [("no-approval", f"{dn} is {where} but is not a person account aupctl can see")]
            else:
                username = acct.username
                user = username.lower()
                appr = approved.get(user)
                seen_users.add(user)
                found = self._approval_state(acct, where, appr) + self.person(key, acct, user, where, appr)
            for check, detail in found:
                self.problems.append(
                    Problem(_finding(check, username or dn, key, detail), key, username, dn, via, appr)
                )
        for user, appr in approved.items():
            if user in seen_users or appr["status"] != "active":
                continue
            state_text = "" if self.people.by_user.get(user) else " (no such account any more)"
            detail = (
                f"approved by {appr['approver']} on {appr['granted_at'][:10]} but not in "
                f"{system.group}{state_text}: re-grant or revoke to make the record true"
            )
            finding = _finding("not-a-member", appr["username"], key, detail)
            self.problems.append(Problem(finding, key, appr["username"], approval=appr))

    @staticmethod
    def _approval_state(acct: Account, where: str, appr: dict[str, Any] | None) -> list[tuple[str, str]]:
        if appr is None:
            return [("no-approval", f"{acct.name} is {where} with no approval on record (granted outside aupctl)")]
        if appr["status"] == "waiting":
            return [
                (
                    "no-approval",
                    f"{acct.name} is {where} but the approval by {appr['approver']} is still waiting for "
                    "the AUP signature",
                )
            ]
        return []

    def by_hand(self, key: str, approved: dict[str, dict[str, Any]]) -> None:
        """A system managed by hand: the active approvals are all there is to check."""
        system = self.cfg.systems[key]
        self.checked[key] = sum(1 for a in approved.values() if a["status"] == "active")
        where = f"approved for {system.name} (managed by hand)"
        for user, appr in approved.items():
            if appr["status"] != "active":
                continue
            acct = self.people.by_user.get(user)
            if acct is None:
                found = [("leaver-member", f"{user} has no account any more but is still {where}")]
            else:
                found = self.person(key, acct, user, where, appr)
            for check, detail in found:
                finding = _finding(check, appr["username"], key, detail)
                self.problems.append(Problem(finding, key, appr["username"], approval=appr))


def fix_plan(cfg: Config, directory: Directory, state: State, result: Review) -> Plan:
    """One plan: members who should not be there leave the group (their approval ended, or put back to
    waiting when only the AUP signature is missing); by-hand systems get a task to remove access."""
    plan = Plan("access review: remove access that should not be there")
    done: set[tuple[str, str]] = set()
    by_target: dict[tuple[str, str], list[Problem]] = {}
    for p in result.problems:
        if CHECKS[p.finding.check][2]:
            by_target.setdefault((p.system, p.member_dn or p.username or ""), []).append(p)
    overdue = sum(1 for p in result.problems if p.finding.check == "approval-overdue")
    if overdue:
        plan.notes.append(f"{overdue} approval(s) past review_days are left for a decision: renew or revoke")
    for (key, target), found in sorted(by_target.items()):
        system = cfg.systems[key]
        first = found[0]
        checks = sorted({p.finding.check for p in found})
        why = ", ".join(checks)
        user = first.username or target
        appr = next((p.approval for p in found if p.approval), None)
        if system.group:
            gdn = cfg.group_dn(system.group)
            if first.via:
                plan.notes.append(
                    f"{user} has {system.name} through the nested group {group_name(first.via)} ({why}): "
                    f"remove them from {group_name(first.via)} by hand, or unnest it"
                )
                continue
            if (key, target) in done:
                continue
            done.add((key, target))
            dn = first.member_dn or ""
            plan.add(
                Change(
                    "remove-member",
                    user,
                    f"remove {user} from {group_name(gdn)} ({system.name}): {why}",
                    run=_remove_member(directory, gdn, dn, first.username),
                    details={"system": key, "group": gdn, "member": dn, "checks": checks, "by": "access review"},
                    check=check_kinds.member(gdn, dn, False),
                )
            )
        else:
            acct_name = user
            text = f"Remove {acct_name}'s access to {system.name} ({why})" + (
                f" — {system.instructions}" if system.instructions else ""
            )
            plan.add(task_change(state, "revoke", user, key, text))
        if appr and appr["status"] == "active":
            plan.add(_approval_change(state, appr, checks, system.name))
    # A groupOfNames must keep a member: refused here, before anything changes, without a placeholder_member.
    # (No directory: a plan made from findings alone, as the unit tests do; nothing to read.)
    if directory is not None:
        directory.flavour.groups.check_removals(
            directory, [(c.details["group"], c.details["member"]) for c in plan.changes if c.action == "remove-member"]
        )
    plan.summary = {"changes": len(plan.changes)}
    return plan


def _remove_member(directory: Directory, group_dn: str, member_dn: str, username: str | None) -> Callable[[], Any]:
    return lambda: {"changed": directory.flavour.remove_member(directory, group_dn, member_dn, username)}


def first_contact_refusal(cfg: Config, state: State, result: Review, plan: Plan) -> str | None:
    """Why this --fix plan must not run without --force (None if it may): it removes people from a system for
    which no approval was ever recorded (aupctl meeting a school's directory before `access adopt`), or more
    than [access] max_removal_share of a system's members (more than one person)."""
    share = cfg.access.max_removal_share
    removals: dict[str, int] = {}
    for c in plan.changes:
        if c.action == "remove-member":
            removals[c.details["system"]] = removals.get(c.details["system"], 0) + 1
    reasons = []
    for key, n in sorted(removals.items()):
        members = result.checked.get(key, 0)
        name = f"{cfg.systems[key].name} ({key})"
        if not approvals.ever_recorded(state, key):
            reasons.append(
                f"{name}: no approval was ever recorded, and the plan removes {n} of its {members} member(s)"
            )
        elif n > 1 and members and n > share * members:
            reasons.append(
                f"{name}: the plan removes {n} of its {members} members ({n / members:.0%}), more than "
                f"access.max_removal_share ({share:.0%})"
            )
    if not reasons:
        return None
    return (
        "access review --fix refused; nothing was changed:\n  "
        + "\n  ".join(reasons)
        + "\nIf today's members are approved, record them first: aupctl access adopt --approved-by NAME. "
        "Otherwise read the plan (access review --fix --dry-run) and run it again with --force."
    )


def _approval_change(state: State, appr: dict[str, Any], checks: list[str], system_name: str) -> Change:
    user, aid = appr["username"], int(appr["id"])
    if checks == ["aup-unsigned"]:
        # Only the signature is missing: the approval waits for it, and `aup sign` gives the access back.
        return Change(
            "approval-waiting",
            user,
            f"keep {user}'s approval of {system_name} waiting for their AUP signature",
            run=lambda: {"rows": approvals.set_waiting(state, aid)},
            details={"system": appr["system"], "approval": aid, "checks": checks},
        )
    reason = "access review: " + ", ".join(checks)
    return Change(
        "end-approval",
        user,
        f"end {user}'s approval of {system_name} ({', '.join(checks)})",
        run=lambda: {
            "ended": [r["id"] for r in approvals.end(state, username=user, system=appr["system"], reason=reason)]
        },
        details={"system": appr["system"], "approval": aid, "checks": checks},
    )
