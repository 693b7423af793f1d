"""Withdrawing one leaver (policy 4.2, 9.2, 1.4, 7.2.3): a list of small named steps.

Person by person, in this order (STEPS): snapshot (taken once, the first time, never overwritten),
disable, an unusable password, out of every group, approvals ended, moved to leavers_ou, description
stamped, (AD) accountExpires set, grant tasks no longer wanted closed; then the tasks a person does by
hand and the row marked done. Each step is computed from what the directory and the state store hold
now, so an account already disabled, moved or stripped is carried on from where it is, and a re-run
after a crash does only what is left. Nothing is deleted from the directory. Scheduling and waves:
leavers.schedule; `leaver restore`: leavers.restore; the rows: records.leavers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ldap3

from .. import checks, passphrase
from ..config import Config
from ..directory import Account, Directory, as_text, first_rdn, group_name, is_under, normalise_dn
from ..errors import RefusedError
from ..plan import Change
from ..records import approvals, devices, tasks
from ..records import leavers as records
from ..records.leavers import DONE, SCHEDULED
from ..state import State, actor, now_iso


def current_row(state: State, username: str) -> dict[str, Any] | None:
    """The live withdrawal of a person (scheduled, under way or done), if any."""
    return records.current(state, username)


def latest_row(state: State, username: str) -> dict[str, Any] | None:
    return records.latest(state, username)


def leaver_tasks(state: State, leaver_id: int) -> list[dict[str, Any]]:
    """Tasks a withdrawal opened: ref 'leaver:ID' (mailbox) or 'leaver:ID:KIND:ITEM'."""
    return records.tasks_of(state, leaver_id)


def stamp(leave_on: dt.date, reason: str) -> str:
    return f"Left {leave_on.isoformat()}: {reason}" if reason else f"Left {leave_on.isoformat()}"


def take_snapshot(directory: Directory, state: State, acct: Account) -> dict[str, Any]:
    """What withdrawal is about to change, read now; saved by the plan's first step for this person."""
    flavour = directory.flavour
    raw = directory.read(acct.dn, flavour.withdrawal_attributes, raw=True) or {}
    lowered = {k.lower(): v for k, v in raw.items()}
    attributes = {a: [as_text(v) for v in lowered.get(a.lower(), [])] for a in flavour.withdrawal_attributes}
    return {
        "dn": acct.dn,
        "ou": acct.ou,
        "groups": list(acct.groups),
        "attributes": attributes,
        "disabled": acct.disabled,
        "approvals": approvals.live(state, username=acct.username),
        # by-hand grants not yet carried out: closed by the withdrawal, opened again by a restore
        "pending_grants": sorted({t["system"] for t in _pending_grants(state, acct.username) if t["system"]}),
        "flavour": flavour.name,
    }


def _pending_grants(state: State, username: str) -> list[dict[str, Any]]:
    return [
        t
        for t in tasks.list_tasks(state, open_only=True, username=username, kind="grant")
        if not str(t["ref"] or "").startswith("leaver:")
    ]


def _password_replaced(state: State, username: str, leaver_id: int | None) -> bool:
    """Did an earlier run of this withdrawal already replace the password? The audit log says so (the
    directory's pwdChangedTime cannot: its clock need not agree with ours)."""
    return leaver_id is not None and records.password_replaced(state, username, leaver_id)


@dataclass
class Withdrawal:
    """One person's withdrawal as the steps see it: who, when, why, and what earlier steps decided."""

    cfg: Config
    directory: Directory
    state: State
    acct: Account
    row: dict[str, Any] | None
    leave_on: dt.date
    reason: str
    leavers_dn: str
    targets: dict[str, str] | None
    holder: dict[str, Any] = field(default_factory=dict)  # {"id": the leavers row, once there is one}
    snap: dict[str, Any] = field(default_factory=dict)
    new_dn: str = ""  # where the account is after the move step

    @property
    def user(self) -> str:
        return self.acct.username

    @property
    def fresh(self) -> bool:
        """No snapshot yet: this run takes it (and replaces the password without asking the audit log)."""
        return self.row is None or self.row["status"] == SCHEDULED or not self.row.get("snapshot")

    def modify(self, dn: str, mods: dict[str, list[tuple[str, list[Any]]]]) -> Callable[[], dict[str, Any]]:
        return lambda: _modify(self.directory, dn, mods)


def person_changes(
    cfg: Config,
    directory: Directory,
    state: State,
    acct: Account,
    row: dict[str, Any] | None,
    leave_on: dt.date,
    reason: str,
    leavers_dn: str,
    targets: dict[str, str] | None = None,
) -> list[Change]:
    """The withdrawal of one person, from where their account is now: STEPS in order."""
    w = Withdrawal(cfg, directory, state, acct, row, leave_on, reason, leavers_dn, targets)
    w.holder["id"] = row["id"] if row else None
    w.new_dn = acct.dn
    changes: list[Change] = []
    for step in STEPS:
        changes.extend(step(w))
    return changes


def keep_snapshot(w: Withdrawal) -> list[Change]:
    """The first time only: what withdrawal changes, read now, kept for restore."""
    if not w.fresh:
        assert w.row is not None
        w.snap = json.loads(w.row["snapshot"])
        return []
    acct, user = w.acct, w.user
    snap = w.snap = take_snapshot(w.directory, w.state, acct)

    def save() -> dict[str, Any]:
        body = dict(snap, taken_at=now_iso(), taken_by=actor())
        w.holder["id"] = records.start_withdrawal(
            w.state,
            w.holder["id"],
            username=user,
            dn=acct.dn,
            leave_on=w.leave_on.isoformat(),
            reason=w.reason,
            snapshot=body,
        )
        return {"leaver_id": w.holder["id"]}

    return [
        Change(
            "leaver-snapshot",
            user,
            f"{user}: keep a snapshot for restore ({acct.ou}, {len(acct.groups)} group(s), "
            f"{len(snap['approvals'])} approval(s))",
            save,
            {"dn": acct.dn, "groups": acct.groups, "approvals": [a["system"] for a in snap["approvals"]]},
        )
    ]


def disable_and_scramble(w: Withdrawal) -> list[Change]:
    """Disabled before the password is replaced, and again after it where setting a password unlocks
    (OpenLDAP ppolicy), so the account is never open in between."""
    flavour, user, dn = w.directory.flavour, w.user, w.acct.dn
    changes: list[Change] = []
    if not w.acct.disabled:
        mods = flavour.disable_changes(w.acct)
        changes.append(
            Change(
                "disable", user, f"{user}: disable the account", w.modify(dn, mods), check=checks.attributes(dn, mods)
            )
        )
    if not (w.fresh or not _password_replaced(w.state, user, w.holder["id"])):
        return changes

    def scramble() -> dict[str, Any]:
        flavour.set_password(w.directory, dn, passphrase.unusable())  # nobody is shown it, nobody needs it
        return {"leaver_id": w.holder["id"]}

    changes.append(Change("set-password", user, f"{user}: replace the password with one nobody knows", scramble))
    if flavour.password_change_unlocks:
        relock = flavour.disable_changes(w.acct)
        changes.append(
            Change(
                "disable",
                user,
                f"{user}: disable the account again (setting a password unlocks it)",
                w.modify(dn, relock),
                check=checks.attributes(dn, relock),
            )
        )
    return changes


def leave_groups(w: Withdrawal) -> list[Change]:
    user, dn = w.user, w.acct.dn
    return [
        Change(
            "remove-member",
            user,
            f"{user}: remove from {group_name(group)}",
            partial(_remove_member, w.directory, group, dn, user),
            {"group": group, "member": dn},
            check=checks.member(group, dn, False),
        )
        for group in w.acct.groups
    ]


def end_approvals(w: Withdrawal) -> list[Change]:
    user = w.user
    live = approvals.live(w.state, username=user)
    if not live:
        return []
    why = f"left {w.leave_on}" + (f": {w.reason}" if w.reason else "")

    def end() -> dict[str, Any]:
        return {"ended": [a["system"] for a in approvals.end(w.state, username=user, reason=why)]}

    systems = ", ".join(sorted({a["system"] for a in live}))
    return [Change("end-approvals", user, f"{user}: end approval(s) for {systems}", end, {"reason": why})]


def move_to_leavers(w: Withdrawal) -> list[Change]:
    dn, user = w.acct.dn, w.user
    if is_under(dn, w.leavers_dn):
        return []
    w.new_dn = new_dn = f"{first_rdn(dn)},{w.leavers_dn}"
    _check_free(w.directory, new_dn, user, w.targets)
    return [
        Change(
            "move",
            user,
            f"{user}: move to {w.leavers_dn}",
            lambda: {"result": w.directory.move(dn, w.leavers_dn)},
            {"from": dn, "to": new_dn},
            check=checks.moved(dn, new_dn),
        )
    ]


def stamp_description(w: Withdrawal) -> list[Change]:
    text = stamp(w.leave_on, w.reason)
    if w.acct.description == text:
        return []
    mods = {"description": [(ldap3.MODIFY_REPLACE, [text])]}
    return [
        Change(
            "describe",
            w.user,
            f"{w.user}: description {text!r}",
            w.modify(w.new_dn, mods),
            {"text": text},
            check=checks.attributes(w.new_dn, mods),
        )
    ]


def set_expiry(w: Withdrawal) -> list[Change]:
    """(AD) accountExpires at the end of the leaving day."""
    expires = w.directory.flavour.expiry_changes(_raw_first(w.directory, w.acct.dn, "accountExpires"), w.leave_on)
    if not expires:
        return []
    return [
        Change(
            "set-expiry",
            w.user,
            f"{w.user}: account expires at the end of {w.leave_on}",
            w.modify(w.new_dn, expires),
            {"on": w.leave_on.isoformat()},
            check=checks.attributes(w.new_dn, expires),
        )
    ]


def close_grant_tasks(w: Withdrawal) -> list[Change]:
    """By-hand grants not yet carried out are no longer wanted (the snapshot keeps them for restore)."""
    user = w.user
    return [
        Change(
            "close-task",
            user,
            f"{user}: close task {t['id']}, no longer wanted ({t['text'][:50]})",
            partial(_close_task, w.state, t["id"], "access withdrawn (leaver)"),
            {"task": t["id"]},
        )
        for t in _pending_grants(w.state, user)
    ]


def open_tasks_and_finish(w: Withdrawal) -> list[Change]:
    """The tasks done by hand, then the row marked done (once: a finished withdrawal re-run adds neither)."""
    if w.row is not None and w.row["status"] == DONE:
        return []
    changes = _task_changes(w.cfg, w.state, w.acct, w.snap, w.holder)
    new_dn = w.new_dn

    def finish() -> dict[str, Any]:
        records.finish_withdrawal(w.state, w.holder["id"], new_dn)
        return {"leaver_id": w.holder["id"]}

    changes.append(Change("leaver-done", w.user, f"{w.user}: record the withdrawal as done", finish, {"dn": new_dn}))
    return changes


STEPS: list[Callable[[Withdrawal], list[Change]]] = [
    keep_snapshot,
    disable_and_scramble,
    leave_groups,
    end_approvals,
    move_to_leavers,
    stamp_description,
    set_expiry,
    close_grant_tasks,
    open_tasks_and_finish,
]


def _task_changes(
    cfg: Config, state: State, acct: Account, snap: dict[str, Any], holder: dict[str, Any]
) -> list[Change]:
    """One task per by-hand system, per laptop assigned, and one for the mailbox and files (7.2.3)."""
    user, name = acct.username, acct.name
    wanted: list[tuple[str, str | None, str, str]] = []  # (kind, system, text, ref suffix)
    for key in sorted({a["system"] for a in snap.get("approvals", [])}):
        system = cfg.systems.get(key)
        if system is None or system.group is not None:
            continue  # directory-group systems went with the groups; unknown keys have no instructions
        how = f" ({system.instructions})" if system.instructions else ""
        wanted.append(
            ("revoke", key, f"Remove {name} ({user}) from {system.name}: access withdrawn{how}", f":system:{key}")
        )
    for tag in devices.assigned_to(state, user):
        wanted.append(("collect-laptop", None, f"Collect laptop {tag} from {name} ({user})", f":laptop:{tag}"))
    wanted.append(
        (
            "mailbox",
            None,
            f"Decide on access to {name}'s ({user}) mailbox and files (policy 7.2.3): who may read them, "
            "for how long, and when they are deleted",
            "",
        )
    )
    existing = {t["ref"] for t in leaver_tasks(state, holder["id"])} if holder["id"] is not None else set()
    out = []
    for kind, system_key, text, suffix in wanted:
        if holder["id"] is not None and f"leaver:{holder['id']}{suffix}" in existing:
            continue  # opened by an earlier run (and perhaps already done): never open it twice

        def run(kind: str = kind, system_key: str | None = system_key, text: str = text, suffix: str = suffix) -> dict:
            ref = f"leaver:{holder['id']}{suffix}"
            task_id = tasks.open_task(state, kind=kind, text=text, username=user, system=system_key, ref=ref)
            return {"task": task_id, "ref": ref}

        out.append(Change("open-task", user, f"{user}: task: {text}", run, {"kind": kind, "system": system_key}))
    return out


def _modify(directory: Directory, dn: str, mods: dict[str, list[tuple[str, list[Any]]]]) -> dict[str, Any]:
    directory.modify(dn, mods)
    return {"attributes": sorted(mods)}


def _raw_first(directory: Directory, dn: str, attr: str) -> str | None:
    if attr.lower() not in (a.lower() for a in directory.flavour.withdrawal_attributes):
        return None
    raw = directory.read(dn, [attr], raw=True) or {}
    for key, vals in raw.items():
        if key.lower() == attr.lower() and vals:
            return as_text(vals[0])
    return None


def _check_free(directory: Directory, new_dn: str, user: str, targets: dict[str, str] | None) -> None:
    """Keeping the RDN in another OU can clash with someone already there: refuse before anything changes."""
    key = normalise_dn(new_dn)
    if targets is not None:
        if key in targets:
            raise RefusedError(
                f"{user} and {targets[key]} would both be moved to {new_dn}; nothing was changed",
                hint="withdraw one of them first and rename the entry in the leavers OU",
            )
        targets[key] = user
    if directory.exists(new_dn):
        raise RefusedError(
            f"cannot move {user} to the leavers OU: {new_dn} already exists (an earlier leaver with the same name?); "
            "nothing was changed",
            hint="rename the entry already in the leavers OU (e.g. add the year to its name), then run this again",
        )


def _remove_member(directory: Directory, group: str, dn: str, user: str) -> dict[str, Any]:
    return {"changed": directory.flavour.remove_member(directory, group, dn, user)}


def _close_task(state: State, task_id: int, note: str) -> dict[str, Any]:
    return {"task": tasks.close_task(state, task_id, note=note)["id"]}
