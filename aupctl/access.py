"""Access to restricted systems (policy 1.3): grant, revoke, adopt, list.

The approval is the record: every grant names an approver from the system's `approvers`, and a
grant is refused (nothing changed) unless the account is live, its role may be nominated for the
system and the person has signed the current AUP. Systems without a directory group are "managed by
hand": a grant or revoke records the approval and opens a task that stays open until `tasks done`.
Every function here builds Changes; plan.apply does them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import approvals, checks, tasks
from .aup import is_signed
from .config import Config, System
from .directory import Account, Directory, require_account, same_dn
from .errors import InputError, NotFoundError, RefusedError
from .plan import Change, Plan
from .roles import role_of
from .staff import group_name, is_leaver
from .state import State, today
from .text import refuse_unsafe

# -- small helpers --


def system_label(cfg: Config, key: str) -> str:
    return f"{cfg.system(key).name} ({key})"


def group_dn_of(cfg: Config, system: System) -> str | None:
    return cfg.group_dn(system.group) if system.group else None


def canonical_approver(cfg: Config, system_key: str, given: str) -> str:
    """The approver as the config spells it; a unique prefix is enough ("Mrs A Patel")."""
    system = cfg.system(system_key)
    wanted = " ".join(given.split()).casefold()
    if not wanted:
        raise InputError("--approved-by is empty: name who approved this (one of the system's approvers)")
    exact = [a for a in system.approvers if " ".join(a.split()).casefold() == wanted]
    if exact:
        return exact[0]
    prefix = (
        [a for a in system.approvers if " ".join(a.split()).casefold().startswith(wanted)] if len(wanted) >= 3 else []
    )
    if len(prefix) == 1:
        return prefix[0]
    known = "; ".join(system.approvers) or f"none: add approvers to [systems.{system_key}]"
    raise RefusedError(
        f"{given!r} is not an approver for {system.name} (systems.{system_key}.approvers: {known}); nothing was changed"
    )


def parse_until(value: str | dt.date | None) -> str | None:
    """--until: a YYYY-MM-DD date that has not passed."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        day = value
    else:
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"--until: {value!r} is not a date (expected YYYY-MM-DD)") from None
    if day < today():
        raise InputError(f"--until: {day.isoformat()} has already passed")
    return day.isoformat()


def refusal_for(cfg: Config, state: State, acct: Account, system_key: str, *, check_aup: bool = True) -> str | None:
    """Why this account may not be given the system, or None. Shared by grant and by the intake."""
    system = cfg.system(system_key)
    if is_leaver(cfg, acct):
        return f"{acct.username} ({acct.name}) is a leaver (in {cfg.dn(cfg.directory.leavers_ou)})"
    if acct.disabled:
        return f"{acct.username} ({acct.name}) is disabled"
    info = role_of(cfg, acct, state=state)
    if info.role is None:
        return (
            f"{acct.username} has no role ({info.why}), so cannot be nominated for {system.name}; see `staff set-role`"
        )
    if system_key not in cfg.roles[info.role].systems:
        allowed = ", ".join(cfg.roles[info.role].systems) or "none"
        return (
            f"{acct.username}'s role {info.role!r} ({info.why}) may not be nominated for {system.name} "
            f"(roles.{info.role}.systems: {allowed})"
        )
    if check_aup and not is_signed(cfg, state, acct.username):
        return (
            f"{acct.username} has not signed the current AUP (version {cfg.school.aup_version}); "
            f"record it first with `aupctl aup sign {acct.username}`"
        )
    return None


# -- grant and revoke --


def grant_changes(
    cfg: Config,
    directory: Directory,
    state: State,
    username: str,
    system_key: str,
    approver: str,
    reason: str = "",
    until: str | dt.date | None = None,
    *,
    source: str = "grant",
    acct: Account | None = None,
    assume_signed: bool = False,
) -> list[Change]:
    """The changes that give USER the system, or RefusedError/NotFoundError (nothing changed).

    assume_signed: the caller is recording the signature in the same plan (`aup sign`).
    """
    refuse_unsafe(reason, "--reason")  # kept with the approval, shown in reviews
    system = cfg.system(system_key)
    approver = canonical_approver(cfg, system_key, approver)
    until_s = parse_until(until)
    acct = acct or require_account(directory, username, changing=True)
    why = refusal_for(cfg, state, acct, system_key, check_aup=not assume_signed)
    if why:
        raise RefusedError(f"cannot grant {system.name} to {acct.username}: {why}; nothing was changed")
    user = acct.username
    changes: list[Change] = []
    details = {"system": system_key, "approver": approver, "reason": reason, "until": until_s, "source": source}
    gdn = group_dn_of(cfg, system)
    if gdn:
        members = directory.flavour.group_members(directory, gdn)
        if members is None:
            raise NotFoundError(
                f"the group {gdn} for {system.name} (systems.{system_key}.group) does not exist; nothing was changed"
            )
        if not any(same_dn(m, acct.dn) for m in members):
            fl, d, dn = directory.flavour, directory, acct.dn
            changes.append(
                Change(
                    "add-member",
                    user,
                    f"add {user} ({acct.name}) to {group_name(gdn)} for {system.name}",
                    run=lambda: {"changed": fl.add_member(d, gdn, dn, user)},
                    details={**details, "group": gdn},
                    check=checks.member(gdn, dn, True),
                )
            )
    changes.append(
        Change(
            "approve",
            user,
            f"record {system.name} for {user} as approved by {approver}"
            + (f" until {until_s}" if until_s else "")
            + (f" ({reason})" if reason else ""),
            run=lambda: {
                "approval": approvals.record(
                    state,
                    username=user,
                    system=system_key,
                    approver=approver,
                    reason=reason,
                    until=until_s,
                    source=source,
                )
            },
            details=details,
        )
    )
    if not gdn and not approvals.live(state, username=user, system=system_key, status=("active",)):
        text = f"Give {acct.name} ({user}) access to {system.name}" + (
            f" — {system.instructions}" if system.instructions else ""
        )
        changes.append(task_change(state, "grant", user, system_key, text))
    return changes


def task_change(state: State, kind: str, user: str, system_key: str, text: str) -> Change:
    ref = f"{kind}:{system_key}:{user.lower()}"
    return Change(
        "open-task",
        user,
        f"open a task: {text}",
        run=lambda: {"task": tasks.open_task(state, kind=kind, text=text, username=user, system=system_key, ref=ref)},
        details={"system": system_key, "kind": kind, "text": text},
    )


def revoke_changes(
    cfg: Config, directory: Directory, state: State, username: str, system_key: str, reason: str
) -> list[Change]:
    """The changes that take the system away: out of the group, approval ended, a task for by-hand systems."""
    system = cfg.system(system_key)
    reason = refuse_unsafe((reason or "").strip(), "--reason") or ""
    if not reason:
        raise InputError("--reason is required: say why access is being withdrawn (it goes into the record)")
    username = username.strip()
    acct = directory.flavour.find_user(directory, username) if username else None
    live = approvals.live(state, username=username, system=system_key)
    if acct is None and not live:
        raise NotFoundError(
            f"no account {username!r} in {cfg.directory.base_dn} and no approval of {system.name} on record; "
            "nothing was changed"
        )
    user = acct.username if acct else (live[0]["username"] if live else username)
    details = {"system": system_key, "reason": reason}
    changes: list[Change] = []
    gdn = group_dn_of(cfg, system)
    if gdn and acct is not None:
        members = directory.flavour.group_members(directory, gdn)
        if members is not None and any(same_dn(m, acct.dn) for m in members):
            fl, d, dn = directory.flavour, directory, acct.dn
            fl.groups.check_removals(d, [(gdn, dn)])  # the last member of a groupOfNames: refused before any change
            changes.append(
                Change(
                    "remove-member",
                    user,
                    f"remove {user} ({acct.name}) from {group_name(gdn)} ({system.name})",
                    run=lambda: {"changed": fl.remove_member(d, gdn, dn, user)},
                    details={**details, "group": gdn},
                    check=checks.member(gdn, dn, False),
                )
            )
    if live:
        changes.append(_end_change(state, user, system_key, system.name, reason))
    if not gdn and (live or acct is not None):
        pending = [
            t for t in tasks.list_tasks(state, open_only=True, username=user, kind="grant") if t["system"] == system_key
        ]
        for t in pending:
            # Access was never given: the open "give access" task is closed instead of asking for removal.
            tid = int(t["id"])
            changes.append(
                Change(
                    "close-task",
                    user,
                    f"close task {tid} (giving {system.name}): no longer wanted",
                    run=lambda tid=tid: {
                        "task": tasks.close_task(state, tid, f"not needed: access revoked ({reason})")["id"]
                    },
                    details=details,
                )
            )
        ref = f"revoke:{system_key}:{user.lower()}"
        # Without an approval on record a removal is still asked for once (access given outside aupctl).
        if not pending and (live or not tasks.list_tasks(state, kind="revoke", ref=ref)):
            name = acct.name if acct else user
            text = f"Remove {name} ({user})'s access to {system.name}" + (
                f" — {system.instructions}" if system.instructions else ""
            )
            changes.append(task_change(state, "revoke", user, system_key, text))
    return changes


def _end_change(state: State, user: str, system_key: str, system_name: str, reason: str) -> Change:
    return Change(
        "end-approval",
        user,
        f"end {user}'s approval of {system_name} ({reason})",
        run=lambda: {"ended": [r["id"] for r in approvals.end(state, username=user, system=system_key, reason=reason)]},
        details={"system": system_key, "reason": reason},
    )


def grant_plan(
    cfg: Config,
    directory: Directory,
    state: State,
    username: str,
    system_key: str,
    approver: str,
    reason: str = "",
    until: str | None = None,
) -> Plan:
    system = cfg.system(system_key)
    changes = grant_changes(cfg, directory, state, username, system_key, approver, reason, until)
    plan = Plan(f"grant {system.name} to {username}", changes)
    if not any(c.action == "add-member" for c in changes) and system.group:
        plan.notes.append(f"{username} is already in {system.group}: only the approval is recorded")
    return plan


def revoke_plan(cfg: Config, directory: Directory, state: State, username: str, system_key: str, reason: str) -> Plan:
    system = cfg.system(system_key)
    changes = revoke_changes(cfg, directory, state, username, system_key, reason)
    plan = Plan(f"revoke {system.name} from {username}", changes)
    if not changes:
        plan.notes.append(f"{username} is not in {system.name} and has no approval of it: nothing to revoke")
    elif system.group and not any(c.action == "remove-member" for c in changes):
        plan.notes.append(
            f"{username} is not a direct member of {system.group}; if a nested group gives them access, "
            "remove them from that group by hand (access review names it)"
        )
    return plan


# -- adopt: the school's current members become the starting record --


def adopt_plan(
    cfg: Config, directory: Directory, state: State, approver: str, system_key: str | None = None, reason: str = ""
) -> Plan:
    approver = " ".join((refuse_unsafe(approver, "--approved-by") or "").split())
    if not approver:
        raise InputError("--approved-by is empty: name who stands behind the access held today")
    reason = refuse_unsafe(reason.strip(), "--reason") or "access held when aupctl was adopted"
    keys = [system_key] if system_key else list(cfg.systems)
    for k in keys:
        cfg.system(k)
    plan = Plan("adopt current members as approved" + (f" ({system_key})" if system_key else ""))
    from .access_review import read_memberships, read_people

    memberships = read_memberships(cfg, directory, keys)
    people = read_people(cfg, directory, {dn for m in memberships.values() if m for dn in m}, set())
    live = {(r["username"].lower(), r["system"]) for r in approvals.live(state)}
    for key in keys:
        system = cfg.system(key)
        members = memberships.get(key)
        if not system.group:
            plan.notes.append(f"{system.name} is managed by hand: record its users with `access grant`")
            continue
        if members is None:
            plan.notes.append(f"{system.name}: the group {system.group} does not exist; nothing to adopt")
            continue
        already = 0
        for dn, via in sorted(members.items(), key=lambda kv: kv[0].lower()):
            acct = people.find(dn)
            if acct is None:
                plan.notes.append(f"{system.name}: {dn} is not a person account; left for the review")
                continue
            if (acct.username.lower(), key) in live:
                already += 1
                continue
            live.add((acct.username.lower(), key))
            via_text = f" (through {group_name(via)})" if via else ""
            plan.add(
                Change(
                    "approve",
                    acct.username,
                    f"record {system.name} for {acct.username} ({acct.name}){via_text} as approved by {approver}",
                    run=lambda u=acct.username, k=key: {
                        "approval": approvals.record(
                            state, username=u, system=k, approver=approver, reason=reason, source="adopt"
                        )
                    },
                    details={"system": key, "approver": approver, "reason": reason, "source": "adopt"},
                )
            )
        if already:
            plan.notes.append(f"{system.name}: {already} member(s) already have an approval on record")
    plan.summary = {"approvals": len(plan.changes)}
    return plan


# -- reading --


def list_rows(cfg: Config, state: State, system_key: str | None = None) -> list[dict[str, Any]]:
    """Who has what on record, who approved it and when (active and waiting approvals)."""
    if system_key:
        cfg.system(system_key)
    rows = []
    for r in approvals.live(state, system=system_key):
        system = cfg.systems.get(r["system"])
        rows.append(
            {
                "username": r["username"],
                "system": r["system"],
                "system_name": system.name if system else r["system"],
                "status": r["status"],
                "approver": r["approver"],
                "granted_at": _when(r["granted_at"]),
                "granted_by": r["granted_by"],
                "until": r["until"],
                "reason": r["reason"],
                "source": r["source"],
                "id": r["id"],
            }
        )
    rows.sort(key=lambda r: (r["system"], r["username"].lower()))
    return rows


def _when(text: str) -> dt.datetime | str:
    """A stored timestamp as a datetime (tables show it to the minute; JSON keeps ISO 8601)."""
    try:
        return dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return text


def systems_rows(cfg: Config, directory: Directory, state: State) -> list[dict[str, Any]]:
    from .access_review import read_memberships

    memberships = read_memberships(cfg, directory, [k for k, s in cfg.systems.items() if s.group])
    counts: dict[str, int] = {}
    for r in approvals.live(state, status=("active",)):
        counts[r["system"]] = counts.get(r["system"], 0) + 1
    rows = []
    for key, system in cfg.systems.items():
        members = memberships.get(key)
        rows.append(
            {
                "system": key,
                "name": system.name,
                "group": system.group or "by hand",
                "roles": [name for name, role in cfg.roles.items() if key in role.systems],
                "approvers": system.approvers,
                "members": (len(members) if members is not None else None) if system.group else None,
                "approved": counts.get(key, 0),
                "review_days": system.review_days,
            }
        )
    return rows


def set_role_plan(cfg: Config, directory: Directory, state: State, username: str, role: str) -> Plan:
    """`staff set-role`: record a person's role by hand (it decides which systems they may be nominated for)."""
    from .roles import set_role

    cfg.role(role)  # refuses an unknown role, listing the known ones
    acct = require_account(directory, username, changing=True)
    before = role_of(cfg, acct, state=state)
    plan = Plan(f"set {acct.username}'s role to {role}")
    if before.role == role and before.why == "set by hand":
        plan.notes.append(f"{acct.username}'s role is already {role} (set by hand)")
        return plan
    plan.add(
        Change(
            "set-role",
            acct.username,
            f"record {acct.username}'s role as {role} (was {before.role or 'none'}: {before.why})",
            run=lambda: set_role(state, acct.username, role, "set"),
            details={"role": role, "was": before.role, "was_why": before.why},
        )
    )
    return plan
