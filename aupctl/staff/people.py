"""Reading staff accounts for `staff list` and `staff show`."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..directory import Account, Directory, group_name, require_account
from ..eligibility import is_leaver
from ..plan import Change, Plan
from ..records.approvals import live
from ..records.roles import recorded_roles, set_role
from ..records.signatures import latest_signatures, signature
from ..roles import RoleInfo, role_of
from ..state import State


def list_staff(
    cfg: Config, directory: Directory, state: State, *, role: str | None = None, include_disabled: bool = False
) -> list[dict[str, Any]]:
    if role is not None:
        cfg.role(role)  # refuses an unknown role with the known ones
    recorded = recorded_roles(state)
    rows = []
    for acct in directory.flavour.iter_accounts(directory):
        if acct.disabled and not include_disabled:
            continue
        info = role_of(cfg, acct, recorded)
        if role is not None and info.role != role:
            continue
        rows.append(account_row(acct, info))
    rows.sort(key=lambda r: (r["surname"].lower(), r["given_name"].lower(), r["username"]))
    return rows


def account_row(acct: Account, info: RoleInfo) -> dict[str, Any]:
    return {
        "username": acct.username,
        "name": acct.name,
        "given_name": acct.given_name,
        "surname": acct.surname,
        "role": info.role,
        "email": acct.email,
        "staff_code": acct.staff_code,
        "enabled": not acct.disabled,
        "dn": acct.dn,
    }


def show(cfg: Config, directory: Directory, state: State, username: str) -> dict[str, Any]:
    acct = require_account(directory, username)
    info = role_of(cfg, acct, state=state)
    return {
        **account_row(acct, info),
        "role_reason": info.why,
        "leaver": is_leaver(cfg, acct),
        "description": acct.description,
        "groups": sorted(group_name(g) for g in acct.groups),
        "created": acct.created,
        "password_changed": acct.password_changed,
        "must_change_password": acct.must_change,
        "last_logon": acct.last_logon,
        **_access_and_aup(cfg, state, acct.username),
    }


def _access_and_aup(cfg: Config, state: State, username: str) -> dict[str, Any]:
    """The approvals on record and the AUP signature, for `staff show`."""
    current = signature(state, username, cfg.school.aup_version)
    last = current or latest_signatures(state).get(username.lower())
    approvals = [
        f"{a['system']}: {a['status']}, approved by {a['approver']} on {a['granted_at'][:10]}"
        + (f" until {a['until']}" if a["until"] else "")
        for a in live(state, username=username)
    ]
    return {
        "approvals": approvals,
        "aup_signed": current is not None,
        "aup_signature": (
            f"version {last['version']} signed on {last['signed_on']} (recorded by {last['recorded_by']})"
            if last
            else f"none (current version {cfg.school.aup_version})"
        ),
    }


def set_role_plan(cfg: Config, directory: Directory, state: State, username: str, role: str) -> Plan:
    """`staff set-role`: record a person's role by hand (it decides which systems they may be nominated for)."""
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
