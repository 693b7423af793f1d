"""`leaver restore`: undo a withdrawal (a suspension lifted, or HR got the date wrong).

Puts back, step by step (STEPS), what the snapshot holds: the OU, the groups, the approvals still within their system's
review period, the description and (AD) accountExpires; enables the account with a new generated
password, written only to a new 0600 file, that must be changed at the next logon; closes the
leaver's tasks that no longer apply. Computed from what the directory holds now, so a re-run after
a crash does only what is left.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ldap3

from .. import checks, credfile, passphrase
from ..access.shared import account_of_another_school, not_ours
from ..config import Config
from ..credfile import CredentialsFile, require_new
from ..directory import Account, Directory, as_text, first_rdn, group_name, normalise_dn, parent_dn, same_dn
from ..errors import InputError, NotFoundError, RefusedError
from ..plan import Change, Plan
from ..records import approvals, tasks
from ..records import leavers as records
from ..records.leavers import DONE, RESTORED, SCHEDULED, WITHDRAWING
from ..state import State


def check_credentials_path(path: str | None) -> Path:
    """The file the new password goes to: required, and never an existing file (it is not overwritten)."""
    if not path:
        raise InputError(
            "restore sets a new password and needs --credentials-out FILE to write it to (a new file, mode 0600)"
        )
    return require_new(path)


def write_credentials(path: Path, rows: list[dict[str, str]]) -> None:
    creds = CredentialsFile(path, credfile.RESET_COLUMNS)
    try:
        creds.write([[r["username"], r["name"], r["password"], "yes"] for r in rows])
    finally:
        creds.close()


def _approval_still_good(cfg: Config, approval: dict[str, Any], today: dt.date) -> tuple[bool, str]:
    system = cfg.systems.get(approval["system"])
    if system is None:
        return False, f"system {approval['system']!r} is no longer in the config"
    granted = dt.date.fromisoformat(str(approval["granted_at"])[:10])
    due = granted + dt.timedelta(days=system.review_days)
    if today > due:
        return False, f"granted {granted}, past its review period of {system.review_days} days ({due})"
    if approval.get("until") and str(approval["until"])[:10] < today.isoformat():
        return False, f"it ran until {approval['until']}"
    return True, ""


@dataclass
class Restoring:
    """One restore as the steps see it: the account now, its snapshot, and what earlier steps decided."""

    cfg: Config
    directory: Directory
    state: State
    acct: Account
    row: dict[str, Any]
    snap: dict[str, Any]
    today: dt.date
    creds: Path | None
    target: str = ""  # where the account is going back to
    keep_systems: set[str] = field(default_factory=set)  # approvals still within their review period
    restore_approvals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def user(self) -> str:
        return self.acct.username


def restore(
    cfg: Config,
    directory: Directory,
    state: State,
    username: str,
    *,
    credentials_out: str | None,
    today: dt.date,
    dry_run: bool = False,
) -> Plan:
    row = records.latest(state, username)
    if row is None and directory.flavour.find_user(directory, username) is None:
        held = account_of_another_school(cfg, directory, username)
        if held is not None:  # a person of two schools: their account is the other school's to restore
            raise RefusedError(not_ours(cfg, username.strip(), held))
    if row is None or row["status"] not in (WITHDRAWING, DONE) or not row["snapshot"]:
        _refuse(username, row)
    assert row is not None
    creds = check_credentials_path(credentials_out) if not dry_run or credentials_out else None
    acct = directory.flavour.find_user(directory, row["username"])
    if acct is None:
        raise NotFoundError(
            f"no account {row['username']!r} in {cfg.directory.base_dn}: it was deleted outside aupctl, so there "
            "is nothing to restore it into",
            hint="the snapshot is still in the state store (aupctl leaver list --format json)",
        )
    r = Restoring(cfg, directory, state, acct, row, json.loads(row["snapshot"]), today, creds)
    plan = Plan(f"restore {acct.username}")
    for step in STEPS:
        plan.extend(step(r))
    plan.notes.extend(r.notes)
    return plan


def move_back(r: Restoring) -> list[Change]:
    """Back where it was."""
    user, directory = r.user, r.directory
    home = parent_dn(r.snap["dn"])
    r.target = target = f"{first_rdn(r.acct.dn)},{home}"
    if same_dn(r.acct.dn, target):
        return []
    if not directory.exists(home):
        raise RefusedError(
            f"{user} came from {home}, which no longer exists; nothing was changed",
            hint="create that OU again (or move the account by hand), then run restore again",
        )
    if directory.exists(target):
        raise RefusedError(f"cannot move {user} back: {target} already exists; nothing was changed")
    src = r.acct.dn
    return [
        Change(
            "move",
            user,
            f"{user}: move back to {home}",
            lambda: {"result": directory.move(src, home)},
            {"from": src, "to": target},
            check=checks.moved(src, target),
        )
    ]


def new_password(r: Restoring) -> list[Change]:
    """A new password, written down before it is set, to be changed at the next logon."""
    user, flavour, target, creds = r.user, r.directory.flavour, r.target, r.creds
    if creds is None:  # a dry run without --credentials-out still shows the step; applying it needs the file

        def no_file() -> None:
            raise InputError("restore needs --credentials-out FILE for the new password")

        return [Change("set-password", user, f"{user}: set a new generated password (--credentials-out)", no_file)]
    secret: dict[str, str] = {}

    def write() -> dict[str, Any]:
        secret["password"] = passphrase.generate()
        write_credentials(creds, [{"username": user, "name": r.acct.name, "password": secret["password"]}])
        return {"file": str(creds)}

    def set_pw() -> None:
        flavour.set_password(r.directory, target, secret["password"])

    return [
        Change("write-credentials", user, f"{user}: write a new password to {creds} (0600)", write),
        Change("set-password", user, f"{user}: set the new password", set_pw),
        Change(
            "force-change",
            user,
            f"{user}: must change the password at next logon",
            lambda: flavour.force_change(r.directory, target),
        ),
    ]


def enable(r: Restoring) -> list[Change]:
    if not r.acct.disabled:
        return []
    mods = r.directory.flavour.enable_changes(r.acct)
    return [
        Change(
            "enable",
            r.user,
            f"{r.user}: enable the account",
            lambda: _modify(r.directory, r.target, mods),
            check=checks.attributes(r.target, mods),
        )
    ]


def groups_back(r: Restoring) -> list[Change]:
    """Approvals still within their review period, and the groups that go with them."""
    cfg, snap, user, target = r.cfg, r.snap, r.user, r.target
    live_now = {a["system"] for a in approvals.live(r.state, username=user)}
    for a in snap.get("approvals", []):
        ok, why = _approval_still_good(cfg, a, r.today)
        if ok:
            r.keep_systems.add(a["system"])
            if a["system"] not in live_now:
                r.restore_approvals.append(a)
        else:
            r.notes.append(f"approval for {a['system']} not restored: {why}; ask for a new grant")
    dropped_groups = {
        normalise_dn(cfg.group_dn(s.group))
        for key, s in cfg.systems.items()
        if s.group and key not in r.keep_systems and any(a["system"] == key for a in snap.get("approvals", []))
    }
    have = {normalise_dn(g) for g in r.acct.groups} if same_dn(r.acct.dn, target) else set()
    changes = []
    for group in snap.get("groups", []):
        key = normalise_dn(group)
        if key in have:
            continue
        if key in dropped_groups:
            r.notes.append(f"not back in {group_name(group)}: its approval is not restored")
            continue
        if not r.directory.exists(group):
            r.notes.append(f"not back in {group_name(group)}: the group no longer exists")
            continue
        changes.append(
            Change(
                "add-member",
                user,
                f"{user}: back into {group_name(group)}",
                partial(_add_member, r.directory, group, target, user),
                {"group": group},
                check=checks.member(group, target, True),
            )
        )
    return changes


def attributes_back(r: Restoring) -> list[Change]:
    """The attributes withdrawal stamped, as they were."""
    flavour, user = r.directory.flavour, r.user
    current = r.directory.read(r.acct.dn, flavour.restorable_attributes, raw=True) or {}
    lowered = {k.lower(): [as_text(v) for v in vals] for k, vals in current.items()}
    changes = []
    for attr in flavour.restorable_attributes:
        before = r.snap.get("attributes", {}).get(attr, [])
        if lowered.get(attr.lower(), []) == before:
            continue
        mods_a = {attr: [(ldap3.MODIFY_REPLACE, list(before))]}
        shown = ", ".join(before) if before else "(none)"
        changes.append(
            Change(
                "restore-attribute",
                user,
                f"{user}: {attr} back to {shown}",
                partial(_modify, r.directory, r.target, mods_a),
                {"attribute": attr, "value": before},
                check=checks.attributes(r.target, mods_a),
            )
        )
    return changes


def approvals_back(r: Restoring) -> list[Change]:
    user, state = r.user, r.state
    changes = []
    for a in r.restore_approvals:

        def rerecord(a: dict[str, Any] = a) -> dict[str, Any]:
            new_id = approvals.record(
                state,
                username=user,
                system=a["system"],
                approver=a["approver"],
                reason=a["reason"],
                until=a.get("until"),
                source="restore",
                status=a["status"],
            )
            # The review clock keeps running from the original grant, not from the restore.
            approvals.keep_granted(state, new_id, a["granted_at"], a["granted_by"])
            return {"approval": new_id, "granted_at": a["granted_at"]}

        changes.append(
            Change(
                "restore-approval",
                user,
                f"{user}: approval for {a['system']} again (approved by {a['approver']}, {str(a['granted_at'])[:10]})",
                rerecord,
                {"system": a["system"]},
            )
        )
    return changes


def tasks_back(r: Restoring) -> list[Change]:
    """A laptop or mailbox to deal with no longer applies; a by-hand system comes back (a grant task again
    where the removal was done by hand, or where the withdrawal closed a grant not yet done)."""
    cfg, state, user, row = r.cfg, r.state, r.user, r.row
    keep = r.keep_systems
    regrant = {key for key in r.snap.get("pending_grants", []) if key in keep and cfg.systems[key].group is None}
    changes = []
    for t in records.tasks_of(state, row["id"]):
        system = t["system"]
        if t["closed_at"] is None:
            if t["kind"] == "revoke" and system not in keep:
                continue  # the approval is not restored, so access still has to go
            changes.append(
                Change(
                    "close-task",
                    user,
                    f"{user}: close task {t['id']} ({t['text'][:60]})",
                    partial(_close_task, state, t["id"], "leaver restored"),
                )
            )
        elif t["kind"] == "revoke" and system in keep:
            regrant.add(system)
    for system in sorted(regrant):
        name = cfg.systems[system].name
        ref = f"leaver:{row['id']}:regrant:{system}"
        if any(x["ref"] == ref for x in records.tasks_of(state, row["id"])):
            continue
        how = f" ({cfg.systems[system].instructions})" if cfg.systems[system].instructions else ""
        text = f"Give {r.acct.name} ({user}) access to {name} again: the withdrawal was undone{how}"
        changes.append(
            Change(
                "open-task",
                user,
                f"{user}: task: {text}",
                partial(_open_grant_task, state, text, user, system, ref),
                {"kind": "grant", "system": system},
            )
        )
    return changes


def record_restored(r: Restoring) -> list[Change]:
    row, target = r.row, r.target

    def finish() -> dict[str, Any]:
        records.mark_restored(r.state, row["id"], target)
        return {"leaver_id": row["id"]}

    return [Change("leaver-restored", r.user, f"{r.user}: record the restore", finish, {"dn": target})]


# In this order: the account is back in its OU before anything else is written to it, and the groups
# step decides which approvals come back (approvals_back, tasks_back read that).
STEPS: list[Callable[[Restoring], list[Change]]] = [
    move_back,
    new_password,
    enable,
    groups_back,
    attributes_back,
    approvals_back,
    tasks_back,
    record_restored,
]


def _refuse(username: str, row: dict[str, Any] | None) -> None:
    if row is None:
        raise RefusedError(
            f"no snapshot of {username!r}: aupctl has not withdrawn this account, so it has nothing to put back",
            hint="restore by hand, or check the username (aupctl leaver list)",
        )
    if row["status"] == SCHEDULED:
        raise RefusedError(
            f"{row['username']}'s withdrawal is only scheduled (for {row['leave_on']}); nothing has been withdrawn",
            hint=f"aupctl leaver cancel {row['username']}",
        )
    if row["status"] == RESTORED:
        raise RefusedError(
            f"{row['username']} was already restored on {row['restored_at']}; there is no newer snapshot"
        )
    raise RefusedError(
        f"no snapshot of {row['username']}: the last withdrawal was {row['status']}, nothing was withdrawn"
    )


def _modify(directory: Directory, dn: str, mods: dict[str, list[tuple[str, list[Any]]]]) -> dict[str, Any]:
    directory.modify(dn, mods)
    return {"attributes": sorted(mods)}


def _add_member(directory: Directory, group: str, dn: str, user: str) -> dict[str, Any]:
    return {"changed": directory.flavour.add_member(directory, group, dn, user)}


def _close_task(state: State, task_id: int, note: str) -> dict[str, Any]:
    return {"task": tasks.close_task(state, task_id, note=note)["id"]}


def _open_grant_task(state: State, text: str, user: str, system: str, ref: str) -> dict[str, Any]:
    return {"task": tasks.open_task(state, kind="grant", text=text, username=user, system=system, ref=ref)}
