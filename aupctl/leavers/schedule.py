"""Scheduling leavers (policy 4.2): waves from CSV, the one plan for a wave (future dates scheduled,
today's withdrawn now by leavers.withdraw), run what is due, cancel, list. The rows live in
records.leavers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .. import csvfile
from ..access.shared import account_of_another_school, not_ours
from ..config import Config
from ..dates import parse_date as read_date
from ..directory import Account, Directory, normalise_dn
from ..errors import ConfigError, InputError, NotFoundError, RefusedError
from ..plan import Change, Plan
from ..records import leavers as records
from ..records.leavers import DONE, SCHEDULED, WITHDRAWING
from ..state import State
from ..text import problem as unsafe_problem
from ..text import refuse_unsafe
from .withdraw import leaver_tasks, person_changes

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
    """A leaving date as a person wrote it (aupctl.dates: ISO 8601 or DD/MM/YYYY)."""
    return read_date(text, what)


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


def resolve(
    directory: Directory, requests: list[Request], known: dict[str, Account] | None = None
) -> list[tuple[Request, Account]]:
    """Every request to its account, all before anything changes: an unknown person refuses the lot.
    known: accounts (with their groups) the caller has read already, by lower-cased username."""
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
            acct = (known or {}).get(req.who.lower()) or flavour.find_user(directory, req.who)
        if acct is None:
            held = account_of_another_school(directory.cfg, directory, req.who) if req.by == "username" else None
            if held is not None:  # a person of two schools: the account is the other school's to withdraw
                problems.append(f"{req.label}: {not_ours(directory.cfg, req.who, held)}")
            else:
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


def list_leavers(state: State, *, status: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for r in records.rows(state, status=status):
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


def withdraw(
    cfg: Config,
    directory: Directory,
    state: State,
    requests: list[Request],
    *,
    today: dt.date,
    known: dict[str, Account] | None = None,
) -> Plan:
    """One plan for everyone asked: future dates are scheduled, today or earlier withdrawn now. known: as
    resolve's (`staff sync` has read every person already)."""
    for req in requests:  # the reason goes on the account's description and into the store
        refuse_unsafe(req.reason, f"line {req.line}: reason" if req.line else "--reason")
    resolved = resolve(directory, requests, known)
    plan = Plan(f"withdraw {len(resolved)} leaver(s)" if len(resolved) != 1 else f"withdraw {resolved[0][1].username}")
    leavers_dn = _leavers_dn(cfg, directory)
    scheduled = withdrawn = 0
    targets: dict[str, str] = {}  # normalised new DN -> username, to catch two leavers with one RDN
    for req, acct in resolved:
        row = records.current(state, acct.username)
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
    requests = [
        Request(who=r["username"], leave_on=dt.date.fromisoformat(r["leave_on"]), reason=r["reason"])
        for r in records.due(state, today.isoformat())
    ]
    if not requests:
        plan = Plan("withdraw the leavers due")
        plan.notes.append(f"no withdrawal is due on or before {today}")
        return plan
    plan = withdraw(cfg, directory, state, requests, today=today)
    plan.title = f"withdraw the {len(requests)} leaver(s) due on or before {today}"
    return plan


def cancel(state: State, username: str) -> Plan:
    row = records.current(state, username)
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
        records.cancel(state, row["id"])
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
            records.reschedule(state, row["id"], when.isoformat(), reason or row["reason"])
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
        leaver_id = records.schedule(state, acct.username, acct.dn, when.isoformat(), reason)
        return {"leaver_id": leaver_id}

    return Change(
        "leaver-schedule",
        acct.username,
        f"schedule the withdrawal of {acct.username} ({acct.name}) on {when}" + (f": {reason}" if reason else ""),
        schedule,
        {"leave_on": when.isoformat(), "reason": reason, "dn": acct.dn},
    )
