"""`access adopt`: the school's current members become the starting record (policy 1.3).

Run once when aupctl meets a school's directory: everyone in a system's group today gets an approval in
the name of the person who stands behind that access, so the first `access review --fix` removes only
what changes after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Config
from ..directory import Directory, group_name
from ..errors import InputError, RefusedError
from ..plan import Change, Plan
from ..records import approvals
from ..state import State
from ..text import refuse_unsafe
from .grant import canonical_approver
from .members import read_memberships, read_people


def adopt_plan(
    cfg: Config, directory: Directory, state: State, approver: str, system_key: str | None = None, reason: str = ""
) -> Plan:
    approver = " ".join((refuse_unsafe(approver, "--approved-by") or "").split())
    if not approver:
        raise InputError("--approved-by is empty: name who stands behind the access held today")
    reason = refuse_unsafe(reason.strip(), "--reason") or "access held when aupctl was adopted"
    keys = [system_key] if system_key else list(cfg.systems)
    keys = [cfg.system_key(k) for k in keys]
    # checked like grant's: the approver must be one of each adopted system's approvers (as the config spells it)
    named: dict[str, str] = {}
    refused: list[str] = []
    for k in keys:
        if not cfg.system(k).group:
            continue
        try:
            named[k] = canonical_approver(cfg, k, approver)
        except RefusedError:
            refused.append(k)
    if refused:
        listed = "; ".join(f"{cfg.system(k).name} ({', '.join(cfg.system(k).approvers) or 'none'})" for k in refused)
        raise RefusedError(
            f"{approver!r} is not an approver for {listed}; nothing was changed",
            hint="adopt one system at a time (`aupctl access adopt SYSTEM --approved-by NAME`) with one of its "
            "approvers, or add them to [systems.KEY] approvers",
        )
    plan = Plan("adopt current members as approved" + (f" ({system_key})" if system_key else ""))
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
            approver = named[key]
            via_text = f" (through {group_name(via)})" if via else ""
            plan.add(
                Change(
                    "approve",
                    acct.username,
                    f"record {system.name} for {acct.username} ({acct.name}){via_text} as approved by {approver}",
                    run=_record(state, acct.username, key, approver, reason),
                    details={"system": key, "approver": approver, "reason": reason, "source": "adopt"},
                )
            )
        if already:
            plan.notes.append(f"{system.name}: {already} member(s) already have an approval on record")
    plan.summary = {"approvals": len(plan.changes)}
    return plan


def _record(state: State, username: str, system: str, approver: str, reason: str) -> Callable[[], Any]:
    return lambda: {
        "approval": approvals.record(
            state, username=username, system=system, approver=approver, reason=reason, source="adopt"
        )
    }
