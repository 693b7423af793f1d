"""`leaver restore`: undo a withdrawal (a suspension lifted, or HR got the date wrong).

Puts back what the snapshot holds: the OU, the groups, the approvals still within their system's
review period, the description and (AD) accountExpires; enables the account with a new generated
password, written only to a new 0600 file, that must be changed at the next logon; closes the
leaver's tasks that no longer apply. Computed from what the directory holds now, so a re-run after
a crash does only what is left.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ldap3

from . import checks, credfile, passphrase
from .config import Config
from .credfile import CredentialsFile, require_new
from .directory import Directory, as_text, first_rdn, group_name, normalise_dn, parent_dn, same_dn
from .errors import InputError, NotFoundError, RefusedError
from .leavers import DONE, RESTORED, SCHEDULED, WITHDRAWING, latest_row, leaver_tasks
from .plan import Change, Plan
from .records import approvals, tasks
from .state import State, now_iso

CREDENTIAL_COLUMNS = credfile.RESET_COLUMNS


def check_credentials_path(path: str | None) -> Path:
    """The file the new password goes to: required, and never an existing file (it is not overwritten)."""
    if not path:
        raise InputError(
            "restore sets a new password and needs --credentials-out FILE to write it to (a new file, mode 0600)"
        )
    return require_new(path)


def write_credentials(path: Path, rows: list[dict[str, str]]) -> None:
    creds = CredentialsFile(path, CREDENTIAL_COLUMNS)
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
    row = latest_row(state, username)
    if row is None or row["status"] not in (WITHDRAWING, DONE) or not row["snapshot"]:
        _refuse(username, row)
    assert row is not None
    creds = check_credentials_path(credentials_out) if not dry_run or credentials_out else None
    flavour = directory.flavour
    acct = flavour.find_user(directory, row["username"])
    if acct is None:
        raise NotFoundError(
            f"no account {row['username']!r} in {cfg.directory.base_dn}: it was deleted outside aupctl, so there "
            "is nothing to restore it into",
            hint="the snapshot is still in the state store (aupctl leaver list --format json)",
        )
    snap = json.loads(row["snapshot"])
    user = acct.username
    plan = Plan(f"restore {user}")
    changes: list[Change] = []

    # 1. Back where it was.
    home = parent_dn(snap["dn"])
    target = f"{first_rdn(acct.dn)},{home}"
    if not same_dn(acct.dn, target):
        if not directory.exists(home):
            raise RefusedError(
                f"{user} came from {home}, which no longer exists; nothing was changed",
                hint="create that OU again (or move the account by hand), then run restore again",
            )
        if directory.exists(target):
            raise RefusedError(f"cannot move {user} back: {target} already exists; nothing was changed")
        src = acct.dn
        changes.append(
            Change(
                "move",
                user,
                f"{user}: move back to {home}",
                lambda: {"result": directory.move(src, home)},
                {"from": src, "to": target},
                check=checks.moved(src, target),
            )
        )

    # 2. A new password, written down before it is set, to be changed at the next logon.
    secret: dict[str, str] = {}
    if creds is not None:

        def write() -> dict[str, Any]:
            secret["password"] = passphrase.generate()
            write_credentials(creds, [{"username": user, "name": acct.name, "password": secret["password"]}])
            return {"file": str(creds)}

        def set_pw() -> None:
            flavour.set_password(directory, target, secret["password"])

        changes.append(Change("write-credentials", user, f"{user}: write a new password to {creds} (0600)", write))
        changes.append(Change("set-password", user, f"{user}: set the new password", set_pw))
        changes.append(
            Change(
                "force-change",
                user,
                f"{user}: must change the password at next logon",
                lambda: flavour.force_change(directory, target),
            )
        )
    else:  # a dry run without --credentials-out still shows the step; applying it needs the file

        def no_file() -> None:
            raise InputError("restore needs --credentials-out FILE for the new password")

        changes.append(
            Change("set-password", user, f"{user}: set a new generated password (--credentials-out)", no_file)
        )

    # 3. Enabled.
    if acct.disabled:
        mods = flavour.enable_changes(acct)
        changes.append(
            Change(
                "enable",
                user,
                f"{user}: enable the account",
                lambda: _modify(directory, target, mods),
                check=checks.attributes(target, mods),
            )
        )

    # 4. Approvals still within their review period, and the groups that go with them.
    keep_systems, notes = set(), []
    restore_approvals = []
    live_now = {a["system"] for a in approvals.live(state, username=user)}
    for a in snap.get("approvals", []):
        ok, why = _approval_still_good(cfg, a, today)
        if ok:
            keep_systems.add(a["system"])
            if a["system"] not in live_now:
                restore_approvals.append(a)
        else:
            notes.append(f"approval for {a['system']} not restored: {why}; ask for a new grant")
    dropped_groups = {
        normalise_dn(cfg.group_dn(s.group))
        for key, s in cfg.systems.items()
        if s.group and key not in keep_systems and any(a["system"] == key for a in snap.get("approvals", []))
    }
    have = {normalise_dn(g) for g in acct.groups} if same_dn(acct.dn, target) else set()
    for group in snap.get("groups", []):
        key = normalise_dn(group)
        if key in have:
            continue
        if key in dropped_groups:
            notes.append(f"not back in {group_name(group)}: its approval is not restored")
            continue
        if not directory.exists(group):
            notes.append(f"not back in {group_name(group)}: the group no longer exists")
            continue
        changes.append(
            Change(
                "add-member",
                user,
                f"{user}: back into {group_name(group)}",
                lambda g=group: {"changed": flavour.add_member(directory, g, target, user)},
                {"group": group},
                check=checks.member(group, target, True),
            )
        )

    # 5. The attributes withdrawal stamped, as they were.
    current = directory.read(acct.dn, flavour.restorable_attributes, raw=True) or {}
    lowered = {k.lower(): [as_text(v) for v in vals] for k, vals in current.items()}
    for attr in flavour.restorable_attributes:
        before = snap.get("attributes", {}).get(attr, [])
        if lowered.get(attr.lower(), []) == before:
            continue
        mods_a = {attr: [(ldap3.MODIFY_REPLACE, list(before))]}
        shown = ", ".join(before) if before else "(none)"
        changes.append(
            Change(
                "restore-attribute",
                user,
                f"{user}: {attr} back to {shown}",
                lambda m=mods_a: _modify(directory, target, m),
                {"attribute": attr, "value": before},
                check=checks.attributes(target, mods_a),
            )
        )

    for a in restore_approvals:

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
            state.execute(
                "UPDATE approvals SET granted_at = ?, granted_by = ? WHERE id = ?",
                (a["granted_at"], a["granted_by"], new_id),
            )
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

    # 6. Tasks: a laptop or mailbox to deal with no longer applies; a by-hand system comes back (a grant
    # task again where the removal was done by hand, or where the withdrawal closed a grant not yet done).
    regrant = {key for key in snap.get("pending_grants", []) if key in keep_systems and cfg.systems[key].group is None}
    for t in leaver_tasks(state, row["id"]):
        system = t["system"]
        if t["closed_at"] is None:
            if t["kind"] == "revoke" and system not in keep_systems:
                continue  # the approval is not restored, so access still has to go
            changes.append(
                Change(
                    "close-task",
                    user,
                    f"{user}: close task {t['id']} ({t['text'][:60]})",
                    lambda tid=t["id"]: {"task": tasks.close_task(state, tid, note="leaver restored")["id"]},
                )
            )
        elif t["kind"] == "revoke" and system in keep_systems:
            regrant.add(system)
    for system in sorted(regrant):
        name = cfg.systems[system].name
        ref = f"leaver:{row['id']}:regrant:{system}"
        if any(x["ref"] == ref for x in leaver_tasks(state, row["id"])):
            continue
        how = f" ({cfg.systems[system].instructions})" if cfg.systems[system].instructions else ""
        text = f"Give {acct.name} ({user}) access to {name} again: the withdrawal was undone{how}"
        changes.append(
            Change(
                "open-task",
                user,
                f"{user}: task: {text}",
                lambda text=text, system=system, ref=ref: {
                    "task": tasks.open_task(state, kind="grant", text=text, username=user, system=system, ref=ref)
                },
                {"kind": "grant", "system": system},
            )
        )

    def finish() -> dict[str, Any]:
        state.execute(
            "UPDATE leavers SET status = ?, restored_at = ?, dn = ? WHERE id = ?",
            (RESTORED, now_iso(), target, row["id"]),
        )
        return {"leaver_id": row["id"]}

    changes.append(Change("leaver-restored", user, f"{user}: record the restore", finish, {"dn": target}))
    plan.extend(changes)
    plan.notes.extend(notes)
    return plan


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
