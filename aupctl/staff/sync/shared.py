"""`staff sync` for a person whose account another school of the trust holds (found by MIS id in the same
directory, access/shared.py): no second account; this school's role groups and role record, and when they
leave this school only this school's groups and approvals go. The account itself is the other school's."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from ... import checks
from ...access.grant import revoke_changes
from ...access.shared import holder
from ...config import Config
from ...directory import Account, Directory, same_dn
from ...eligibility import ROLE, ineligible
from ...plan import Change, Plan
from ...records import approvals
from ...records.roles import clear_role, set_role
from ...roles import RoleInfo
from ...state import State


def _member(directory: Directory, group: str, dn: str, user: str, add: bool) -> dict[str, Any]:
    fl = directory.flavour
    return {"changed": (fl.add_member if add else fl.remove_member)(directory, group, dn, user)}


def _membership(directory: Directory, acct: Account, group: str, add: bool, why: str) -> Change:
    user, dn = acct.username, acct.dn
    return Change(
        "add-member" if add else "remove-member",
        user,
        f"{'add' if add else 'remove'} {user} {'to' if add else 'from'} {group} ({why})",
        run=partial(_member, directory, group, dn, user, add),
        details={"group": group, "member": dn},
        check=checks.member(group, dn, add),
    )


def plan_shared(
    cfg: Config,
    directory: Directory,
    state: State,
    plan: Plan,
    acct: Account,
    r: Any,  # engine.MisRow
    recorded: tuple[str, str] | None,
    row: Any,
    today: dt.date,
) -> int:
    """The changes for one row whose MIS id another school's account carries; a row only when there are any.
    Returns how many rows wait for a person (1: the account is disabled there)."""
    user = acct.username
    key = holder(cfg, acct.dn)
    other = f"works at {key} too" if key else "works elsewhere in the directory too"
    role_groups = list(dict.fromkeys(cfg.group_dn(g) for role in cfg.roles.values() for g in role.groups))

    def holds(g: str) -> bool:
        return any(same_dn(g, h) for h in acct.groups)

    if r.end_date and r.end_date <= today:  # left this school: its access goes, the account stays the other's
        system_groups = [cfg.group_dn(s.group) for s in cfg.systems.values() if s.group]
        out = [g for g in dict.fromkeys(role_groups + system_groups) if holds(g)]
        live = sorted({a["system"] for a in approvals.live(state, username=user)})
        if not out and not live and recorded is None:
            return 0  # gone from here already (or never arrived)
        why = f"left this school on {r.end_date} (MIS); the account stays {key or 'elsewhere'}'s"
        plan.extend([_membership(directory, acct, g, False, why) for g in out])
        for system in live:
            plan.extend(
                [
                    c
                    for c in revoke_changes(cfg, directory, state, user, system, f"left this school on {r.end_date}")
                    if c.action != "remove-member"  # made above, with the account found outside this school's base
                ]
            )
        if recorded is not None:
            plan.add(
                Change("clear-role", user, f"forget {user}'s role here ({why})", run=lambda: clear_role(state, user))
            )
        row("left", r, user, f"{other}: left this school (its groups and approvals only; the account stays enabled)")
        return 0
    if r.start_date and (r.start_date - today).days > cfg.mis.create_days_before:
        row("joining", r, user, f"{other}: joining this school on {r.start_date}")
        return 0
    if acct.disabled:  # withdrawn by the school that holds it: a second account would be the wrong fix
        row("error", r, user, f"{other}, but that account is disabled ({acct.dn}): ask its school, then run again")
        return 1
    was = recorded[0] if recorded else None
    new = [cfg.group_dn(g) for g in cfg.roles[r.role].groups]
    old = [g for g in role_groups if holds(g) and not any(same_dn(g, n) for n in new) and was and was != r.role]
    add = [g for g in new if not holds(g)]
    if not add and not old and was == r.role:
        return 0  # nothing to do
    plan.extend([_membership(directory, acct, g, False, f"role {was} -> {r.role} here, AUP 1.3") for g in old])
    plan.extend([_membership(directory, acct, g, True, f"role {r.role} here, AUP 1.3") for g in add])
    ended: list[str] = []
    if was and was != r.role:  # a role change here: this school's approvals the new role may not hold end
        for a in approvals.live(state, username=user):
            if any(i.check == ROLE for i in ineligible(cfg, acct, a["system"], RoleInfo(r.role, "the MIS"), None)):
                ended.append(a["system"])
                why = f"role moved from {was} to {r.role} in this school's MIS (AUP 1.3)"
                plan.extend(revoke_changes(cfg, directory, state, user, a["system"], why))
    if was != r.role:
        role = r.role
        plan.add(
            Change(
                "set-role",
                user,
                f"record {user}'s role here as {role} (was {was or 'none'}; the MIS; {other})",
                run=lambda: set_role(state, user, role, "set"),
                details={"role": role, "was": was},
            )
        )
    if was and was != r.role:
        lost = f"; access ended: {', '.join(ended)}" if ended else ""
        row("shared", r, user, f"{other}: role {was} -> {r.role} in this school's groups{lost}")
    else:
        row("shared", r, user, f"{other}: joins this school's role groups ({r.role})")
    return 0
