"""Staff leavers (policy 4.2, 9.2, 1.4, 7.2.3): schedule, withdraw, run what is due, list, cancel.

A withdrawal is one Plan per wave, person by person in this order: snapshot (taken once, the first
time, never overwritten), disable, an unusable password, out of every group, approvals ended, moved
to leavers_ou, description stamped, (AD) accountExpires set; then the tasks a person does by hand.
Each step is computed from what the directory and the state store hold now, so an account already
disabled, moved or stripped is carried on from where it is, and a re-run after a crash does only
what is left. Nothing is deleted from the directory. `leaver restore` lives in leaver_restore.py.

The leavers table: one row per withdrawal, status 'scheduled' -> 'withdrawing' (snapshot taken)
-> 'done', or 'cancelled'; 'restored' after `leaver restore`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import ldap3

from . import checks, csvfile, passphrase
from .config import Config
from .directory import Account, Directory, as_text, first_rdn, group_name, is_under, normalise_dn
from .errors import ConfigError, InputError, NotFoundError, RefusedError
from .plan import Change, Plan
from .records import approvals, tasks
from .state import State, actor, now_iso
from .text import problem as unsafe_problem
from .text import refuse_unsafe

SCHEDULED, WITHDRAWING, DONE, CANCELLED, RESTORED = "scheduled", "withdrawing", "done", "cancelled", "restored"
OPEN_STATUSES = (SCHEDULED, WITHDRAWING, DONE)

WAVE_REQUIRED = ["leaving_date"]
# username or staff_code names the person; the name columns HR often adds are read and ignored.
WAVE_OPTIONAL = ["username", "staff_code", "reason", "name", "first_name", "last_name", "notes"]
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Request:
    """One person to withdraw: named by username or staff code, on a date (None: today)."""

    who: str
    leave_on: dt.date | None = None
    reason: str = ""
    by: str = "username"  # or "staff_code"
    line: int | None = None  # CSV line, for messages

    @property
    def label(self) -> str:
        what = f"staff code {self.who!r}" if self.by == "staff_code" else repr(self.who)
        return f"line {self.line}: {what}" if self.line else what


# -- input --


def parse_date(text: str, what: str = "date") -> dt.date:
    """YYYY-MM-DD, or DD/MM/YYYY as a UK spreadsheet writes it."""
    value = text.strip()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return dt.datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a date (expected YYYY-MM-DD or DD/MM/YYYY)") from None


def read_wave(path: str, cfg: Config | None = None) -> list[Request]:
    """The leavers CSV: every row checked before anything else happens; all bad rows named in one error."""
    known = set(WAVE_REQUIRED + WAVE_OPTIONAL)
    mapping = {k: v for k, v in (cfg.import_.columns if cfg else {}).items() if k in known}
    limit = cfg.import_.max_bytes if cfg else csvfile.MAX_BYTES
    table = csvfile.read(path, required=WAVE_REQUIRED, optional=WAVE_OPTIONAL, mapping=mapping, max_bytes=limit)
    if "username" not in table.columns and "staff_code" not in table.columns:
        raise InputError(f"{path}: line 1: needs a username or a staff_code column to say who is leaving")
    errors: list[str] = []
    out: list[Request] = []
    seen: dict[str, int] = {}
    for row in table.rows:
        username, code = row.get("username"), row.get("staff_code")
        if not username and not code:
            errors.append(f"line {row.line}: no username and no staff_code")
            continue
        key = f"u:{username.lower()}" if username else f"s:{code.lower()}"
        if key in seen:
            errors.append(f"line {row.line}: {username or code!r} is already on line {seen[key]}")
            continue
        seen[key] = row.line
        if not row.get("leaving_date"):
            errors.append(f"line {row.line}: leaving_date is empty")
            continue
        try:
            when = parse_date(row.get("leaving_date"), "leaving_date")
        except InputError as exc:
            errors.append(f"line {row.line}: {exc.message}")
            continue
        bad_text = [f"line {row.line}: {c}: {why}" for c in ("reason", "notes") if (why := unsafe_problem(row.get(c)))]
        if bad_text:
            errors.extend(bad_text)
            continue
        by, who = ("username", username) if username else ("staff_code", code)
        out.append(Request(who=who, leave_on=when, reason=row.get("reason"), by=by, line=row.line))
    if errors:
        raise _many(InputError, f"{path}: {len(errors)} bad row(s); nothing was changed", errors)
    if not out:
        raise InputError(f"{path}: no leavers in the file")
    return out


def _many(kind: type[InputError | NotFoundError], head: str, lines: list[str]) -> Exception:
    shown = lines[:MAX_ERRORS_SHOWN]
    more = len(lines) - len(shown)
    text = head + "\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
    return kind(text)


def resolve(directory: Directory, requests: list[Request]) -> list[tuple[Request, Account]]:
    """Every request to its account, all before anything changes: an unknown person refuses the lot."""
    flavour = directory.flavour
    problems: list[str] = []
    out: list[tuple[Request, Account]] = []
    by_dn: dict[str, Request] = {}
    for req in requests:
        if req.by == "staff_code":
            found = flavour.find_by_staff_code(directory, req.who)
            if len(found) > 1:
                problems.append(
                    f"{req.label}: {len(found)} accounts have this staff code ({', '.join(a.username for a in found)})"
                )
                continue
            acct = found[0] if found else None
        else:
            acct = flavour.find_user(directory, req.who)
        if acct is None:
            problems.append(f"{req.label}: no such account in {directory.cfg.directory.base_dn}")
            continue
        key = normalise_dn(acct.dn)
        if key in by_dn:
            problems.append(f"{req.label}: the same account ({acct.username}) as {by_dn[key].label}")
            continue
        by_dn[key] = req
        out.append((req, acct))
    if problems:
        raise _many(NotFoundError, f"{len(problems)} leaver(s) refused; nothing was changed", problems)
    return out


# -- the leavers table --


def current_row(state: State, username: str) -> dict[str, Any] | None:
    """The live withdrawal of a person (scheduled, under way or done), if any."""
    rows = state.query(
        f"SELECT * FROM leavers WHERE username = ? AND status IN ({','.join('?' * len(OPEN_STATUSES))}) "
        "ORDER BY id DESC LIMIT 1",
        (username, *OPEN_STATUSES),
    )
    return dict(rows[0]) if rows else None


def latest_row(state: State, username: str) -> dict[str, Any] | None:
    rows = state.query("SELECT * FROM leavers WHERE username = ? ORDER BY id DESC LIMIT 1", (username,))
    return dict(rows[0]) if rows else None


def leaver_tasks(state: State, leaver_id: int) -> list[dict[str, Any]]:
    """Tasks a withdrawal opened: ref 'leaver:ID' (mailbox) or 'leaver:ID:KIND:ITEM'."""
    ref = f"leaver:{leaver_id}"
    return [
        dict(r)
        for r in state.query(
            "SELECT * FROM tasks WHERE ref = ? OR substr(ref, 1, ?) = ? ORDER BY id", (ref, len(ref) + 1, ref + ":")
        )
    ]


def list_leavers(state: State, *, status: str | None = None) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM leavers", []
    if status:
        sql += " WHERE status = ?"
        params.append(status)
    rows = []
    for r in state.query(sql + " ORDER BY leave_on, id", tuple(params)):
        open_tasks = sum(1 for t in leaver_tasks(state, r["id"]) if t["closed_at"] is None)
        rows.append(
            {
                "id": r["id"],
                "username": r["username"],
                "status": r["status"],
                "leave_on": r["leave_on"],
                "reason": r["reason"],
                "dn": r["dn"],
                "scheduled_at": r["scheduled_at"],
                "scheduled_by": r["scheduled_by"],
                "done_at": r["done_at"],
                "restored_at": r["restored_at"],
                "open_tasks": open_tasks,
            }
        )
    return rows


# -- plans --


def stamp(leave_on: dt.date, reason: str) -> str:
    return f"Left {leave_on.isoformat()}: {reason}" if reason else f"Left {leave_on.isoformat()}"


def withdraw(cfg: Config, directory: Directory, state: State, requests: list[Request], *, today: dt.date) -> Plan:
    """One plan for everyone asked: future dates are scheduled, today or earlier withdrawn now."""
    for req in requests:  # the reason goes on the account's description and into the store
        refuse_unsafe(req.reason, f"line {req.line}: reason" if req.line else "--reason")
    resolved = resolve(directory, requests)
    plan = Plan(f"withdraw {len(resolved)} leaver(s)" if len(resolved) != 1 else f"withdraw {resolved[0][1].username}")
    leavers_dn = _leavers_dn(cfg, directory)
    scheduled = withdrawn = 0
    targets: dict[str, str] = {}  # normalised new DN -> username, to catch two leavers with one RDN
    for req, acct in resolved:
        row = current_row(state, acct.username)
        when = req.leave_on or today
        if when > today and not (row and row["status"] == WITHDRAWING):  # a half-done one is always finished
            if row and row["status"] == DONE:
                plan.notes.append(
                    f"{acct.username}: already withdrawn ({row['status']}) on {row['leave_on']}; not scheduled"
                )
                continue
            change = _schedule_change(state, acct, row, when, req.reason)
            if change is None:
                plan.notes.append(f"{acct.username}: already scheduled for {when}")
            else:
                plan.add(change)
                scheduled += 1
            continue
        reason = req.reason or (row["reason"] if row else "")
        if row and row["status"] in (WITHDRAWING, DONE):
            # Carry on the withdrawal already under way, with its own date and reason.
            when, reason = dt.date.fromisoformat(row["leave_on"]), row["reason"]
        changes = person_changes(cfg, directory, state, acct, row, when, reason, leavers_dn, targets)
        if not changes:
            plan.notes.append(f"{acct.username}: already withdrawn on {row['leave_on'] if row else when}")
        else:
            withdrawn += 1
        plan.extend(changes)
    # A groupOfNames must keep a member: refuse here, not half-way, when no placeholder_member may stand in.
    directory.flavour.groups.check_removals(
        directory,
        [(c.details["group"], c.details.get("member", "")) for c in plan.changes if c.action == "remove-member"],
    )
    plan.summary = {"withdrawn": withdrawn, "scheduled": scheduled}
    return plan


def run_due(cfg: Config, directory: Directory, state: State, *, today: dt.date) -> Plan:
    """Everyone scheduled for today or earlier, and any withdrawal a crash left half done."""
    rows = state.query(
        "SELECT * FROM leavers WHERE (status = ? AND leave_on <= ?) OR status = ? ORDER BY leave_on, id",
        (SCHEDULED, today.isoformat(), WITHDRAWING),
    )
    requests = [
        Request(who=r["username"], leave_on=dt.date.fromisoformat(r["leave_on"]), reason=r["reason"]) for r in rows
    ]
    if not requests:
        plan = Plan("withdraw the leavers due")
        plan.notes.append(f"no withdrawal is due on or before {today}")
        return plan
    plan = withdraw(cfg, directory, state, requests, today=today)
    plan.title = f"withdraw the {len(requests)} leaver(s) due on or before {today}"
    return plan


def cancel(state: State, username: str) -> Plan:
    row = current_row(state, username)
    if row is None or row["status"] != SCHEDULED:
        if row is None:
            raise NotFoundError(f"{username!r} has no scheduled withdrawal")
        raise RefusedError(
            f"{row['username']}'s withdrawal is {row['status']} (since {row['done_at'] or row['leave_on']}), "
            "not scheduled: there is nothing to cancel",
            hint=f"to undo it, use `aupctl leaver restore {row['username']} --credentials-out FILE`",
        )
    plan = Plan(f"cancel the withdrawal of {row['username']}")

    def run() -> dict[str, Any]:
        state.execute("UPDATE leavers SET status = ? WHERE id = ? AND status = ?", (CANCELLED, row["id"], SCHEDULED))
        return {"leaver_id": row["id"]}

    plan.add(
        Change(
            "leaver-cancel",
            row["username"],
            f"cancel the withdrawal of {row['username']} scheduled for {row['leave_on']}",
            run,
            {"leave_on": row["leave_on"], "reason": row["reason"]},
        )
    )
    return plan


def _leavers_dn(cfg: Config, directory: Directory) -> str:
    dn = cfg.dn(cfg.directory.leavers_ou)
    if not directory.exists(dn):
        raise ConfigError(
            f"{cfg.source}: directory.leavers_ou {dn!r} does not exist in the directory",
            hint="create that OU (leavers are moved there, never deleted) or correct directory.leavers_ou",
        )
    return dn


def _schedule_change(
    state: State, acct: Account, row: dict[str, Any] | None, when: dt.date, reason: str
) -> Change | None:
    if row and row["status"] == SCHEDULED:
        if row["leave_on"] == when.isoformat() and (not reason or reason == row["reason"]):
            return None

        def reschedule() -> dict[str, Any]:
            state.execute(
                "UPDATE leavers SET leave_on = ?, reason = ? WHERE id = ?",
                (when.isoformat(), reason or row["reason"], row["id"]),
            )
            return {"leaver_id": row["id"], "was": row["leave_on"]}

        what = (
            f"move the withdrawal of {acct.username} from {row['leave_on']} to {when}"
            if row["leave_on"] != when.isoformat()
            else f"change the reason for the withdrawal of {acct.username} on {when} to {reason!r}"
        )
        return Change(
            "leaver-reschedule",
            acct.username,
            what,
            reschedule,
            {"leave_on": when.isoformat(), "reason": reason},
        )

    def schedule() -> dict[str, Any]:
        leaver_id = state.execute(
            "INSERT INTO leavers (username, dn, status, leave_on, reason, scheduled_at, scheduled_by) "
            "VALUES (?,?,?,?,?,?,?)",
            (acct.username, acct.dn, SCHEDULED, when.isoformat(), reason, now_iso(), actor()),
        )
        return {"leaver_id": leaver_id}

    return Change(
        "leaver-schedule",
        acct.username,
        f"schedule the withdrawal of {acct.username} ({acct.name}) on {when}" + (f": {reason}" if reason else ""),
        schedule,
        {"leave_on": when.isoformat(), "reason": reason, "dn": acct.dn},
    )


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
    if leaver_id is None:
        return False
    rows = state.query(
        "SELECT 1 FROM audit WHERE action = 'set-password' AND target = ? COLLATE NOCASE "
        "AND json_extract(details, '$.leaver_id') = ? LIMIT 1",
        (username, leaver_id),
    )
    return bool(rows)


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
    """The withdrawal of one person, from where their account is now."""
    flavour = directory.flavour
    user = acct.username
    holder: dict[str, Any] = {"id": row["id"] if row else None}
    changes: list[Change] = []
    fresh = row is None or row["status"] == SCHEDULED or not row.get("snapshot")
    done_before = row is not None and row["status"] == DONE

    if fresh:
        snap = take_snapshot(directory, state, acct)

        def save() -> dict[str, Any]:
            body = dict(snap, taken_at=now_iso(), taken_by=actor())
            with state.transaction() as db:
                if holder["id"] is not None:
                    db.execute(
                        "UPDATE leavers SET status = ?, dn = ?, snapshot = ?, leave_on = ?, reason = ? WHERE id = ?",
                        (WITHDRAWING, acct.dn, json.dumps(body), leave_on.isoformat(), reason, holder["id"]),
                    )
                else:
                    cur = db.execute(
                        "INSERT INTO leavers (username, dn, status, leave_on, reason, snapshot, scheduled_at, "
                        "scheduled_by) VALUES (?,?,?,?,?,?,?,?)",
                        (
                            user,
                            acct.dn,
                            WITHDRAWING,
                            leave_on.isoformat(),
                            reason,
                            json.dumps(body),
                            now_iso(),
                            actor(),
                        ),
                    )
                    holder["id"] = cur.lastrowid
            return {"leaver_id": holder["id"]}

        changes.append(
            Change(
                "leaver-snapshot",
                user,
                f"{user}: keep a snapshot for restore ({acct.ou}, {len(acct.groups)} group(s), "
                f"{len(snap['approvals'])} approval(s))",
                save,
                {"dn": acct.dn, "groups": acct.groups, "approvals": [a["system"] for a in snap["approvals"]]},
            )
        )
    else:
        assert row is not None
        snap = json.loads(row["snapshot"])

    dn = acct.dn
    new_password = fresh or not _password_replaced(state, user, holder["id"])
    # Disabled before the password is replaced, and again after it where setting a password unlocks
    # (OpenLDAP ppolicy), so the account is never open in between.
    if not acct.disabled:
        mods = flavour.disable_changes(acct)
        changes.append(
            Change(
                "disable",
                user,
                f"{user}: disable the account",
                lambda: _modify(directory, dn, mods),
                check=checks.attributes(dn, mods),
            )
        )
    if new_password:

        def scramble() -> dict[str, Any]:
            flavour.set_password(directory, dn, passphrase.unusable())  # nobody is shown it, nobody needs it
            return {"leaver_id": holder["id"]}

        changes.append(Change("set-password", user, f"{user}: replace the password with one nobody knows", scramble))
        if flavour.password_change_unlocks:
            relock = flavour.disable_changes(acct)
            changes.append(
                Change(
                    "disable",
                    user,
                    f"{user}: disable the account again (setting a password unlocks it)",
                    lambda: _modify(directory, dn, relock),
                    check=checks.attributes(dn, relock),
                )
            )

    for group in acct.groups:
        changes.append(
            Change(
                "remove-member",
                user,
                f"{user}: remove from {group_name(group)}",
                lambda g=group: {"changed": flavour.remove_member(directory, g, dn, user)},
                {"group": group, "member": dn},
                check=checks.member(group, dn, False),
            )
        )

    live = approvals.live(state, username=user)
    if live:
        why = f"left {leave_on}" + (f": {reason}" if reason else "")

        def end() -> dict[str, Any]:
            return {"ended": [a["system"] for a in approvals.end(state, username=user, reason=why)]}

        systems = ", ".join(sorted({a["system"] for a in live}))
        changes.append(Change("end-approvals", user, f"{user}: end approval(s) for {systems}", end, {"reason": why}))

    new_dn = dn
    if not is_under(dn, leavers_dn):
        new_dn = f"{first_rdn(dn)},{leavers_dn}"
        _check_free(directory, new_dn, user, targets)
        changes.append(
            Change(
                "move",
                user,
                f"{user}: move to {leavers_dn}",
                lambda: {"result": directory.move(dn, leavers_dn)},
                {"from": dn, "to": new_dn},
                check=checks.moved(dn, new_dn),
            )
        )

    text = stamp(leave_on, reason)
    if acct.description != text:
        mods_d = {"description": [(ldap3.MODIFY_REPLACE, [text])]}
        changes.append(
            Change(
                "describe",
                user,
                f"{user}: description {text!r}",
                lambda: _modify(directory, new_dn, mods_d),
                {"text": text},
                check=checks.attributes(new_dn, mods_d),
            )
        )

    expires = flavour.expiry_changes(_raw_first(directory, dn, "accountExpires"), leave_on)
    if expires:
        changes.append(
            Change(
                "set-expiry",
                user,
                f"{user}: account expires at the end of {leave_on}",
                lambda: _modify(directory, new_dn, expires),
                {"on": leave_on.isoformat()},
                check=checks.attributes(new_dn, expires),
            )
        )

    for t in _pending_grants(state, user):
        changes.append(
            Change(
                "close-task",
                user,
                f"{user}: close task {t['id']}, no longer wanted ({t['text'][:50]})",
                lambda tid=t["id"]: {"task": tasks.close_task(state, tid, note="access withdrawn (leaver)")["id"]},
                {"task": t["id"]},
            )
        )

    if not done_before:
        changes.extend(_task_changes(cfg, state, acct, snap, holder))

        def finish() -> dict[str, Any]:
            state.execute(
                "UPDATE leavers SET status = ?, done_at = ?, dn = ? WHERE id = ?",
                (DONE, now_iso(), new_dn, holder["id"]),
            )
            return {"leaver_id": holder["id"]}

        changes.append(Change("leaver-done", user, f"{user}: record the withdrawal as done", finish, {"dn": new_dn}))
    return changes


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
    for r in state.query("SELECT tag FROM devices WHERE assigned_to = ? AND status = 'active' ORDER BY tag", (user,)):
        wanted.append(
            ("collect-laptop", None, f"Collect laptop {r['tag']} from {name} ({user})", f":laptop:{r['tag']}")
        )
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
