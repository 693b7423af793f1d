"""Access to restricted systems (policy 1.3): grant and revoke.

The approval is the record: every grant names an approver from the system's `approvers`, and a
grant is refused (nothing changed) unless eligibility.py says the account may hold the system (live,
a role that may be nominated for it, the current AUP signed). Systems without a directory group are
"managed by hand": a grant or revoke records the approval and opens a task that stays open until
`tasks done`. Every function here builds Changes; plan.apply does them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .. import checks
from ..config import Config, System
from ..dates import parse_date
from ..directory import Account, Directory, group_name, same_dn
from ..eligibility import refusal_for
from ..errors import InputError, NotFoundError, RefusedError
from ..plan import Change, Plan
from ..records import approvals, tasks
from ..state import State
from ..text import refuse_unsafe
from .shared import account_here, shared_account
from .tasks import task_change

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
    # an approver written `Name <address>` is named by either; the record keeps the config's spelling
    exact = [a for a in system.approvers if wanted in (" ".join(a.split()).casefold(), _display_name(a))]
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


def _display_name(approver: str) -> str:
    from ..mail import parse_address

    try:
        return " ".join(parse_address(approver).name.split()).casefold()
    except ValueError:
        return ""


def parse_until(value: str | dt.date | None) -> str | None:
    """--until: a date (dates.py's forms) that has not passed, as YYYY-MM-DD; None for no end."""
    if value is None or value == "":
        return None
    return parse_date(value, "--until", future=True).isoformat()


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
    acct = acct or account_here(cfg, directory, state, username, changing=True)
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
    if acct is None and username:  # a person of two schools: the account another school holds
        acct = shared_account(cfg, directory, state, username)
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
                    run=_close_task(state, tid, f"not needed: access revoked ({reason})"),
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


def _close_task(state: State, task_id: int, note: str) -> Callable[[], Any]:
    return lambda: {"task": tasks.close_task(state, task_id, note)["id"]}


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
