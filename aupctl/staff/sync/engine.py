"""`staff sync`: one plan from the MIS export and what the directory and the store hold now. Touches
nothing; refuses (nothing changed) an export that is empty, stale, re-shaped or would make too many leavers."""

from __future__ import annotations

import datetime as dt
import fnmatch
import gc
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from ... import checks, csvfile, usernames
from ...access.grant import revoke_changes
from ...access.shared import held_elsewhere
from ...config import Config
from ...dates import read_date
from ...directory import (
    Account,
    Directory,
    as_text,
    first,
    first_rdn,
    normalise_dn,
    parent_dn,
    same_dn,
    unescape_value,
    values,
)
from ...eligibility import ROLE, ineligible
from ...errors import ConfigError, InputError, NotFoundError, RefusedError
from ...leavers import schedule
from ...plan import Change, Plan
from ...records import approvals, mis, renames
from ...records.leavers import current as current_leaver
from ...records.roles import recorded_roles, set_role
from ...roles import RoleInfo, RoleResolver
from ...state import State
from ..intake import Person, build
from ..intake.plan import Intake
from .profiles import FIELDS, PROFILES, REQUIRED
from .shared import plan_shared


@dataclass
class MisRow:
    line: int
    person_id: str
    first_name: str
    last_name: str
    preferred_name: str
    staff_code: str
    email: str
    role: str  # the aupctl role
    mis_role: str
    start_date: dt.date | None
    end_date: dt.date | None
    department: str

    @property
    def display_name(self) -> str:
        return f"{self.preferred_name or self.first_name} {self.last_name}"


@dataclass
class Export:
    path: str
    profile: str
    headers: list[str]
    rows: list[MisRow]
    made: float = 0.0  # when the export was made (epoch seconds): its export_date column, else the file's mtime
    made_by: str = ""  # which of the two, for messages


@dataclass
class Sync:
    plan: Plan
    intake: Intake  # the joiners, made as `staff import` makes them (its runner and credentials file)
    people: list[dict[str, Any]] = field(default_factory=list)  # one row per person: kind, username, detail
    waiting: int = 0  # rows that wait for a person (ambiguous, not in the MIS)

    def close(self) -> None:
        self.intake.close()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.people:
            out[p["kind"]] = out.get(p["kind"], 0) + 1
        return out


def id_attribute(cfg: Config) -> str:
    return cfg.mis.id_attribute or ("employeeID" if cfg.directory.flavour == "ad" else "employeeType")


def columns(cfg: Config, profile: str) -> dict[str, str]:
    """our field -> the export's header, the profile's overlaid with [mis.columns]."""
    if profile not in PROFILES and not all(f in cfg.mis.columns for f in REQUIRED):
        raise ConfigError(
            f"{cfg.source}: mis.profile: unknown profile {profile!r} (known: {', '.join(PROFILES)}); "
            f"a profile of your own needs [mis.columns] for {', '.join(REQUIRED)}"
        )
    for key in cfg.mis.columns:
        if key not in FIELDS:
            raise ConfigError(f"{cfg.source}: mis.columns.{key}: unknown field (expected one of: {', '.join(FIELDS)})")
    for glob, role in cfg.mis.roles.items():
        if role not in cfg.roles:
            raise ConfigError(f"{cfg.source}: mis.roles.{glob!r}: {role!r} is not a [roles.*] table")
    return {**PROFILES.get(profile, {}), **cfg.mis.columns}


def _role_for(cfg: Config, value: str) -> str | None:
    for glob, role in cfg.mis.roles.items():
        if fnmatch.fnmatchcase(value.casefold(), glob.casefold()):
            return role
    return value if value in cfg.roles else None


def read_export(cfg: Config, path: str, profile: str | None = None, *, max_age: float = 86400.0) -> Export:
    """The whole export checked (every bad row named in one InputError); stale or empty exports refused."""
    profile = profile or cfg.mis.profile
    mapping = columns(cfg, profile)
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise InputError(f"{path}: cannot read the export ({exc.strerror})") from None
    text, _ = csvfile.decode(csvfile.read_bounded(__import__("pathlib").Path(path), cfg.import_.max_bytes), path)
    first_line = text.splitlines()[0] if text.strip() else ""
    delim = csvfile.sniff_delimiter(text)
    headers = [csvfile.norm_header(h) for h in next(__import__("csv").reader([first_line], delimiter=delim), [])]
    ours = {csvfile.norm_header(v) for v in mapping.values()}
    extra = [h for h in headers if h and h not in ours]  # the export's other columns: read and ignored
    table = csvfile.read(
        path,
        required=REQUIRED,
        optional=[f for f in FIELDS if f not in REQUIRED] + extra,
        mapping=mapping,
        max_bytes=cfg.import_.max_bytes,
    )
    if not table.rows:
        raise RefusedError(f"{path}: the export holds no staff; nothing was changed")
    rows: list[MisRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    role_of: dict[str, str | None] = {}
    made: list[tuple[float, str]] = []  # (when, as written) from the export_date column
    for r in table.rows:
        values_of = r.values  # one dict lookup a field, not a method call: thousands of rows
        bad: list[str] = []
        if values_of.get("export_date", ""):
            try:
                made.append((_export_time(values_of.get("export_date", "")), values_of.get("export_date", "")))
            except ValueError as exc:
                bad.append(f"{mapping.get('export_date', 'export_date')}: {exc}")
        pid = values_of.get("person_id", "")
        if not pid:
            bad.append(f"{mapping['person_id']}: is empty")
        elif pid in seen:
            bad.append(f"{mapping['person_id']}: {pid!r} is also on line {seen[pid]}")
        seen.setdefault(pid, r.line)
        for f in ("legal_first", "legal_last"):
            if not values_of.get(f, ""):
                bad.append(f"{mapping[f]}: is empty")
        mis_role = values_of.get("role", "")
        if mis_role not in role_of:  # a few posts over thousands of rows: each value's globs tried once
            role_of[mis_role] = _role_for(cfg, mis_role)
        role = role_of[mis_role]
        if role is None:
            bad.append(f"{mapping['role']}: {mis_role!r} maps onto no aupctl role (add it to [mis.roles])")
        dates: dict[str, dt.date | None] = {}
        for f in ("start_date", "end_date"):
            dates[f] = None
            if values_of.get(f, ""):
                try:
                    dates[f] = read_date(values_of.get(f, ""))
                except ValueError as exc:
                    bad.append(f"{mapping.get(f, f)}: {exc}")
        if bad:
            problems += [f"  line {r.line}: {b}" for b in bad]
            continue
        pref_first = values_of.get("preferred_first", "")
        rows.append(
            MisRow(
                r.line,
                pid,
                values_of.get("legal_first", ""),
                values_of.get("preferred_last", "") or values_of.get("legal_last", ""),
                pref_first if pref_first != values_of.get("legal_first", "") else "",
                values_of.get("staff_code", ""),
                values_of.get("email", ""),
                role or "",
                values_of.get("role", ""),
                dates["start_date"],
                dates["end_date"],
                values_of.get("department", ""),
            )
        )
    if problems:
        raise InputError(f"{path}: {len(problems)} problem(s); nothing was changed:\n" + "\n".join(problems))
    if made:  # the oldest date the rows give: a report stitched from two runs is as old as its older half
        when, written = min(made)
        by = f"its {mapping.get('export_date', 'export_date')} column ({written})"
    else:
        when, by = mtime, "the file's modification time"
    age = time.time() - when
    if age > max_age:
        raise RefusedError(
            f"{path}: the export is {age / 3600:.0f} hour(s) old by {by}, more than {max_age / 3600:.0f}; "
            "nothing was changed",
            hint="is the MIS's scheduled export still running? (--max-age SECONDS to accept an older one)",
        )
    return Export(path, profile, sorted(h for h in headers if h), rows, when, by)


_UK_TIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def _export_time(text: str) -> float:
    """An export date as the MIS wrote it -> epoch seconds. ISO 8601 (date, or date and time, with or without
    an offset) or DD/MM/YYYY [HH:MM[:SS]]; a time without an offset is the school's (this host's) local time.
    A bare date counts as the end of that day: an export made some time yesterday is at most a day old."""
    value = text.strip()
    try:
        stamp = dt.datetime.fromisoformat(value)
        dated_only = len(value) <= 10
    except ValueError:
        m = _UK_TIME.fullmatch(value)
        if not m:
            raise ValueError(f"{text!r} is not a date (expected YYYY-MM-DD[THH:MM] or DD/MM/YYYY [HH:MM])") from None
        day, month, year = int(m[1]), int(m[2]), int(m[3]) + (2000 if len(m[3]) == 2 else 0)
        hh, mm, ss = (int(g or 0) for g in (m[4], m[5], m[6]))
        try:
            stamp = dt.datetime(year, month, day, hh, mm, ss)
        except ValueError:
            raise ValueError(f"{text!r} is not a date: there is no such day or time") from None
        dated_only = m[4] is None
    if dated_only:
        stamp = dt.datetime.combine(stamp.date() + dt.timedelta(days=1), dt.time())
    return stamp.timestamp()  # naive: local time


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _fold(s: str) -> str:
    if s.isascii():  # what usernames.fold gives an ASCII name, without its per-letter Unicode walk
        return s.lower() if s.isalnum() else _NOT_ALNUM.sub("", s.lower())
    try:
        return usernames.fold(s)
    except usernames.NotLatinError:
        return s.casefold()


def plan_sync(
    cfg: Config,
    directory: Directory,
    state: State,
    export: Export,
    *,
    today: dt.date,
    credentials_out: str | None = None,
    accept_headers: bool = False,
) -> Sync:
    fl = directory.flavour
    idattr = id_attribute(cfg)
    last = mis.last_headers(state, export.profile)
    if last is not None and last != export.headers and not accept_headers:
        gone, new = sorted(set(last) - set(export.headers)), sorted(set(export.headers) - set(last))
        raise RefusedError(
            f"{export.path}: the export's columns differ from last time (gone: {', '.join(gone) or 'none'}; "
            f"new: {', '.join(new) or 'none'}); nothing was changed",
            hint="check the MIS report, then run once with --accept-headers",
        )
    accounts = read_people(cfg, directory, idattr)
    leavers_ou = normalise_dn(cfg.dn(cfg.directory.leavers_ou))
    withdrawn = {a.dn for a in accounts if _under(a.dn, leavers_ou)}
    live_accounts = [a for a in accounts if a.dn not in withdrawn]
    by_id: dict[str, Account] = {}
    for a in accounts:
        pid = as_text(first(a.raw, idattr, ""))
        if pid:
            by_id[pid] = a
    # A person of two schools: their account is another school's (same directory), found by MIS id.
    elsewhere = held_elsewhere(cfg, directory, idattr, [r.person_id for r in export.rows if r.person_id not in by_id])
    index = _Index(accounts)  # staff code, email and name: built on the first first-contact match
    fl.fill_groups(directory, accounts)
    resolve = RoleResolver(cfg, recorded_roles(state))
    plan = Plan(f"sync {len(export.rows)} staff from {export.path}")
    people: list[dict[str, Any]] = []
    joiners: list[Person] = []
    leavers: list[schedule.Request] = []
    claimed: set[int] = set()  # id() of the accounts a row has matched
    names = _Usernames(cfg, directory, accounts)
    moves: list[_Move] = []  # renames and OU moves, planned after the rows
    waiting = 0

    def row(kind: str, r: MisRow | None, username: str, detail: str) -> None:
        people.append(
            {
                "kind": kind,
                "line": r.line if r else None,
                "person_id": r.person_id if r else "",
                "username": username,
                "name": r.display_name if r else "",
                "detail": detail,
            }
        )

    for r in export.rows:
        acct, how = by_id.get(r.person_id), "id"
        if acct is None and r.person_id in elsewhere:
            shared = elsewhere[r.person_id]
            recorded = resolve.recorded.get(shared.username.lower())
            waiting += plan_shared(cfg, directory, state, plan, shared, r, recorded, row, today)
            continue
        if acct is None:
            acct, how = _first_contact(r, index, claimed)
        if how == "ambiguous":
            waiting += 1
            row(
                "ambiguous",
                r,
                "",
                f"matches several accounts ({', '.join(a.username for a in acct or [])}): "  # type: ignore[union-attr]
                f"write {idattr}={r.person_id} on the right one",
            )
            continue
        if acct is None:
            if r.end_date and r.end_date <= today:
                continue  # left before ever arriving here
            if r.start_date and (r.start_date - today).days > cfg.mis.create_days_before:
                row("joining", r, "", f"joining on {r.start_date}")
                continue
            joiners.append(
                Person(
                    r.line,
                    r.first_name,
                    r.last_name,
                    r.role,
                    r.preferred_name,
                    r.staff_code,
                    r.email,
                    r.department,
                    r.start_date.isoformat() if r.start_date else "",
                    base=_base(cfg, r),
                )
            )
            row("joiner", r, "", f"created ({r.role})")
            continue
        assert isinstance(acct, Account)
        claimed.add(id(acct))
        if acct.dn in withdrawn:
            continue
        if as_text(first(acct.raw, idattr, "")) != r.person_id:
            plan.add(
                _modify(
                    directory,
                    acct,
                    {idattr: r.person_id},
                    f"record MIS id {r.person_id} on {acct.username} (matched by {how})",
                    "mis-id",
                )
            )
        waiting += _mover(cfg, directory, state, plan, acct, r, resolve(acct), row, names, moves)
        if r.end_date:
            held = current_leaver(state, acct.username)
            if not (held and held["leave_on"] == r.end_date.isoformat()):
                leavers.append(schedule.Request(acct.username, r.end_date, "MIS end date (AUP 4.2, 9.2)", line=r.line))
                row(
                    "leaver",
                    r,
                    acct.username,
                    f"withdrawn now (left {r.end_date})"
                    if r.end_date <= today
                    else f"withdrawal scheduled for {r.end_date}",
                )
    waiting += _plan_moves(directory, state, plan, moves, row)
    plan.extend(_unfinished_moves(directory, state))
    # People an earlier run matched (they hold an MIS id) and the export no longer holds: a truncated export.
    vanished = [a for a in live_accounts if id(a) not in claimed and as_text(first(a.raw, idattr, ""))]
    if len(leavers) + len(vanished) > cfg.mis.max_leavers * max(len(live_accounts), 1):
        raise RefusedError(
            f"{export.path}: {len(leavers)} leaver(s) and {len(vanished)} person(s) matched before but missing from "
            f"the export, of {len(live_accounts)} staff, is more than mis.max_leavers ({cfg.mis.max_leavers:.0%}); "
            "nothing was changed",
            hint="a truncated export? check it; raise [mis] max_leavers for a real wave of leavers",
        )
    for a in live_accounts:
        if id(a) in claimed or any(fnmatch.fnmatchcase(a.username.lower(), g.lower()) for g in cfg.mis.ignore):
            continue
        if a.disabled:
            continue  # cannot log on: the leavers' and the review's business, not a question for the MIS
        waiting += 1
        people.append(
            {
                "kind": "not in MIS",
                "line": None,
                "person_id": "",
                "username": a.username,
                "name": a.name,
                "detail": "not in the export (never disabled by sync): decide, or [mis] ignore",
            }
        )
    if leavers:
        mine = {a.username.lower(): a for a in accounts if a.username}
        plan.extend(schedule.withdraw(cfg, directory, state, leavers, today=today, known=mine).changes)
    if last != export.headers:
        headers = export.headers
        plan.add(
            Change(
                "mis-headers",
                export.profile,
                f"remember the {export.profile} export's columns",
                run=lambda: mis.remember_headers(state, export.profile, headers),
                details={"headers": headers},
            )
        )
    if joiners:  # made as the intake makes them, from the people read above (the directory is read once)
        names.learn([p.base for p in joiners])
        known = (accounts, names.taken)
        intake = build(cfg, directory, state, joiners, credentials_out=credentials_out, source=export.path, known=known)
    else:
        intake = Intake(Plan(plan.title), [], uuid.uuid4().hex[:12], None)
    ids = {r.line: r.person_id for r in export.rows}
    by_line = {p["line"]: p for p in people if p["line"] is not None}
    for e in intake.entries:  # a joiner is made holding its MIS id, so the next run matches by it
        if e.new_entry is not None:
            e.new_entry[1][idattr] = ids[e.person.line]
        if e.action != "unchanged" and e.person.line in by_line:
            by_line[e.person.line]["username"] = e.username
    intake.plan.title = plan.title
    intake.plan.extend(plan.changes)
    intake.plan.notes += plan.notes
    sync = Sync(intake.plan, intake, people, waiting)
    intake.plan.summary = sync.counts()
    return sync


def read_people(cfg: Config, directory: Directory, idattr: str) -> list[Account]:
    """Every person under base_dn in one search, read raw and decoded leanly (directory/entries.py): only
    what sync compares and the intake needs, no times (ldap3's own decoding is ~20x ldapsearch's time)."""
    fl = directory.flavour
    extra = [idattr, fl.department_attr] + (["userPrincipalName"] if fl.name == "ad" else [])
    attrs = list(dict.fromkeys([*fl.lean_attributes, *extra]))
    # The read makes ~20 containers an entry, none of them garbage: the cyclic collector would otherwise walk
    # everything alive (the export's rows too) again and again while they are made (~10-40 % of the read).
    enabled = gc.isenabled()
    gc.disable()
    try:
        found = directory.search(cfg.directory.base_dn, fl.person_filter, attrs, raw=True)
        return [fl.lean_account(dn, a) for dn, a in found]
    finally:
        if enabled:
            gc.enable()


def _under(dn: str, base: str) -> bool:
    d = normalise_dn(dn)
    return d == base or d.endswith("," + base)


_OR_BATCH = 100  # stems OR'd into one filter


class _Usernames:
    """The usernames new ones could clash with: every person's, and any other entry's (a group or computer
    on AD) starting with a stem asked about (every suffixed variant of a base starts with its stem), in a
    few searches rather than one of every entry. A stem held 90 times or more: every entry is read."""

    def __init__(self, cfg: Config, directory: Directory, accounts: list[Account]) -> None:
        self.cfg, self.directory = cfg, directory
        self.taken = {a.username.lower() for a in accounts}
        self.stems: set[str] = set()
        self.everything = False

    def learn(self, bases: list[str]) -> None:
        fl, limit = self.directory.flavour, self.cfg.accounts.max_length
        attr, base_dn = fl.username_attr, self.cfg.directory.base_dn
        stems = sorted({usernames.suffix_filter_value(b, limit).lower() for b in bases if b} - self.stems)
        if not stems or self.everything:
            return
        self.stems.update(stems)
        found: list[str] = []
        for i in range(0, len(stems), _OR_BATCH):
            parts = "".join(f"({attr}={escape_filter_chars(st)}*)" for st in stems[i : i + _OR_BATCH])
            for _, a in self.directory.search(base_dn, f"(|{parts})", [attr], raw=True):
                found += [as_text(v).lower() for v in values(a, attr)]
        if any(sum(1 for u in found if u.startswith(st)) >= 90 for st in stems):
            self.everything = True
            for _, a in self.directory.search(base_dn, f"({attr}=*)", [attr], raw=True):
                found += [as_text(v).lower() for v in values(a, attr)]
        self.taken.update(found)

    def allocate(self, base: str) -> str:
        """The intake's rule: base, else base2, base3 ... the first not taken (then taken)."""
        self.learn([base])
        return usernames.allocate(base, self.taken, self.cfg.accounts.max_length)


class _Index:
    """Accounts by staff code, email and folded name, for first contact: built when first asked (a run in
    which everyone matches by MIS id never folds 5,000 names)."""

    def __init__(self, accounts: list[Account]) -> None:
        self.accounts = accounts
        self.built = False
        self.by_code: dict[str, list[Account]] = {}
        self.by_mail: dict[str, list[Account]] = {}
        self.by_name: dict[tuple[str, str], list[Account]] = {}

    def build(self) -> None:
        if self.built:
            return
        self.built = True
        for a in self.accounts:
            if a.staff_code:
                self.by_code.setdefault(a.staff_code.casefold(), []).append(a)
            if a.email:
                self.by_mail.setdefault(a.email.casefold(), []).append(a)
            self.by_name.setdefault((_fold(a.given_name), _fold(a.surname)), []).append(a)


def _base(cfg: Config, r: MisRow) -> str:
    parts = usernames.NameParts(r.first_name, r.last_name, r.preferred_name, r.staff_code)
    try:
        return usernames.cut(usernames.render(cfg.accounts.username, parts), cfg.accounts.max_length)
    except ValueError as exc:  # NotLatinError among them
        raise InputError(f"line {r.line}: {exc}: give this person a username by hand") from None


def _first_contact(r: MisRow, index: _Index, claimed: set[int]) -> tuple[Any, str]:
    """Staff code, then work email, then the name: one account matches; several are for a person to decide."""
    index.build()
    for how, found in (
        ("staff code", index.by_code.get(r.staff_code.casefold(), []) if r.staff_code else []),
        ("email", index.by_mail.get(r.email.casefold(), []) if r.email else []),
        ("name", index.by_name.get((_fold(r.first_name), _fold(r.last_name)), [])),
    ):
        found = [a for a in found if id(a) not in claimed]
        if how != "staff code" and r.staff_code:  # someone else with the same name or a shared mailbox
            found = [a for a in found if not a.staff_code or a.staff_code.casefold() == r.staff_code.casefold()]
        if len(found) == 1:
            return found[0], how
        if len(found) > 1:
            return found, "ambiguous"
    return None, ""


def _mover(
    cfg: Config,
    directory: Directory,
    state: State,
    plan: Plan,
    acct: Account,
    r: MisRow,
    was: RoleInfo,
    row: Any,
    names: _Usernames,
    moves: list[_Move],
) -> int:
    """A name change and a role change, each a mover. The rename ([mis] rename) and the move to the new
    role's OU come last, in one change; a rename carries the name change with it, so a run killed before it
    finds the name still to change (and the rename still to make) next time. Returns how many rows wait for
    a person (a rename or move refused)."""
    user = acct.username
    # A name change (a marriage): given name, surname, display name, email.
    updates: dict[str, str] = {}
    if acct.given_name != r.first_name:
        updates["givenName"] = r.first_name
    if acct.surname != r.last_name:
        updates["sn"] = r.last_name
    if updates and acct.display_name != r.display_name:
        updates["displayName"] = r.display_name
    if r.email and acct.email.casefold() != r.email.casefold():
        updates["mail"] = r.email
    if was.role != r.role:
        _role_move(cfg, directory, state, plan, acct, r, was, row)
    rename = cfg.mis.rename and ("givenName" in updates or "sn" in updates)
    moving = was.role != r.role and _role_ou(cfg, r.role) is not None
    relocation, waiting, hold = None, 0, False
    if (rename or moving) and not r.end_date:  # a leaver is moved by the withdrawal, and kept their username
        relocation, waiting, hold = _relocate(cfg, directory, state, acct, r, was, row, names, rename, updates)
    if updates and not hold and not (relocation is not None and relocation.carried):  # else with the rename
        row("mover", r, user, "name: " + ", ".join(f"{k} -> {v}" for k, v in updates.items()))
        plan.add(
            _modify(
                directory,
                acct,
                updates,
                f"update {user}'s name from the MIS: " + ", ".join(f"{k} -> {v!r}" for k, v in updates.items()),
                "update-account",
            )
        )
    if relocation is not None:
        moves.append(relocation)  # planned after every row, once the new DNs are checked in one search
    return waiting


def _role_ou(cfg: Config, role: str) -> str | None:
    """The role's own OU (normalised), or None where it has none (known by groups or the record)."""
    ou = cfg.roles[role].ou
    return normalise_dn(cfg.dn(ou)) if ou else None


def _role_move(
    cfg: Config, directory: Directory, state: State, plan: Plan, acct: Account, r: MisRow, was: RoleInfo, row: Any
) -> None:
    """Out of the old role's groups (none when the role was unknown), into the new one's; approvals the new
    role may not hold ended; the new role recorded."""
    user, dn = acct.username, acct.dn
    new = RoleInfo(r.role, "the MIS")
    before = was.role or "unknown"
    old_groups = [cfg.group_dn(g) for g in cfg.roles[was.role].groups] if was.role else []
    new_groups = [cfg.group_dn(g) for g in cfg.roles[r.role].groups]
    for g in old_groups:
        if any(same_dn(g, h) for h in acct.groups) and not any(same_dn(g, n) for n in new_groups):
            plan.add(
                Change(
                    "remove-member",
                    user,
                    f"remove {user} from {g} (role {before} -> {r.role}, AUP 1.3)",
                    run=partial(_member, directory, g, dn, user, False),
                    details={"group": g, "member": dn},
                    check=checks.member(g, dn, False),
                )
            )
    for g in new_groups:
        if not any(same_dn(g, h) for h in acct.groups):
            plan.add(
                Change(
                    "add-member",
                    user,
                    f"add {user} to {g} (role {r.role}, AUP 1.3)",
                    run=partial(_member, directory, g, dn, user, True),
                    details={"group": g, "role": r.role},
                    check=checks.member(g, dn, True),
                )
            )
    ended = []
    for a in approvals.live(state, username=user):
        if any(i.check == ROLE for i in ineligible(cfg, acct, a["system"], new, None)):
            ended.append(a["system"])
            plan.extend(
                revoke_changes(
                    cfg,
                    directory,
                    state,
                    user,
                    a["system"],
                    f"role moved from {before} to {r.role} in the MIS (AUP 1.3)",
                )
            )
    role = r.role
    plan.add(
        Change(
            "set-role",
            user,
            f"record {user}'s role as {role} (was {before}; the MIS)",
            run=lambda: set_role(state, user, role, "set"),
            details={"role": role, "was": was.role},
        )
    )
    row(
        "mover",
        r,
        user,
        (f"role {was.role} -> {r.role}" if was.role else f"role unknown before -> {r.role}")
        + (f"; access ended: {', '.join(ended)}" if ended else ""),
    )


def _relocate(
    cfg: Config,
    directory: Directory,
    state: State,
    acct: Account,
    r: MisRow,
    was: RoleInfo,
    row: Any,
    names: _Usernames,
    rename: bool,
    updates: dict[str, str],
) -> tuple[_Move | None, int, bool]:
    """The rename (a new username from the new name, by the intake's rules; it carries the name `updates`)
    and/or the move to the new role's OU this person needs, or None; how many rows wait for a person; and
    whether the name change is held back. A clash (the store holds records under the new
    username, or the new DN is taken) is refused for this person and named, the name change held back with
    it so the next run tries again; the rest of the plan goes ahead."""
    fl = directory.flavour
    user, dn = acct.username, acct.dn
    new_user, parent = user, parent_dn(dn)
    target = _role_ou(cfg, r.role) if was.role != r.role else None
    # Moved when the new role has an OU of its own, other than the old role's, and the account is not in it
    # already (anywhere under it: a school may keep sub-OUs); an unknown role counts as another OU.
    if target is not None and not _under(dn, target) and (not was.role or _role_ou(cfg, was.role) != target):
        parent = cfg.role_ou(r.role)[0]
    why: list[str] = []
    waiting = 0
    if rename:
        limit = cfg.accounts.max_length
        parts = usernames.NameParts(r.first_name, r.last_name, r.preferred_name, r.staff_code)
        try:
            base = usernames.cut(usernames.render(cfg.accounts.username, parts), limit)
        except ValueError as exc:  # NotLatinError among them
            row("error", r, user, f"not renamed: {exc}; rename {user} by hand")
            base, waiting = "", 1
        if base and user.lower() not in {v.lower() for v in usernames.variants(base, limit)}:
            candidate = names.allocate(base)
            clash = renames.held(state, candidate)
            if clash:
                held = ", ".join(f"{t} {n}" for t, n in clash.items())
                row(
                    "error",
                    r,
                    user,
                    f"not renamed to {candidate}: the store already holds records under {candidate} ({held}), "
                    "not this account's: check them (an old account's?), then run again; the name is not "
                    "changed until then",
                )
                return None, 1, True
            else:
                new_user = candidate
                why.append(f"username {user} -> {new_user} (the new name)")
    if new_user == user and same_dn(parent, parent_dn(dn)):
        return None, waiting, False
    rdn_attr = first_rdn(dn).partition("=")[0].strip()
    choices = [_rdn_value(first_rdn(dn))]  # (attribute, value) of the new first RDN, in order of preference
    if new_user != user and rdn_attr.lower() == fl.username_attr.lower():
        choices = [(rdn_attr, new_user)]
    elif new_user != user and choices[0][1].lower() == user.lower():  # named by its username (CN=jsmith)
        choices = [(rdn_attr, new_user)]
    elif new_user != user and rdn_attr.lower() == "cn":  # named by the display name, as AD's are
        choices = [(rdn_attr, r.display_name), (rdn_attr, f"{r.display_name} ({new_user})")]  # as the intake does
    if not same_dn(parent, parent_dn(dn)):
        why.append(f"moved to {parent} (role {was.role or 'unknown before'} -> {r.role}, AUP 1.3)")
    mods: dict[str, list[tuple[str, list[Any]]]] = {}
    carried: dict[str, str] = {}
    if new_user != user:
        carried = dict(updates)  # the name change goes with the rename: both or neither
        mods = {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in updates.items()}
        if rdn_attr.lower() != fl.username_attr.lower():  # else the RDN change renames it there
            mods[fl.username_attr] = [(ldap3.MODIFY_REPLACE, [new_user])]
        upn = as_text(first(acct.raw, "userPrincipalName", ""))
        if "@" in upn:
            mods["userPrincipalName"] = [(ldap3.MODIFY_REPLACE, [f"{new_user}@{upn.rsplit('@', 1)[1]}"])]
    return _Move(acct, r, user, dn, new_user, parent, choices, why, carried, mods), waiting, False


@dataclass
class _Move:
    """A rename and/or move, waiting for its new DN to be checked (_plan_moves)."""

    acct: Account
    r: MisRow
    user: str
    dn: str
    new_user: str
    parent: str
    choices: list[tuple[str, str]]  # the new first RDN's (attribute, value), in order of preference
    why: list[str]
    carried: dict[str, str]  # the name change, made with a rename
    mods: dict[str, list[tuple[str, list[Any]]]]


def _rdn_value(rdn: str) -> tuple[str, str]:
    """(attribute, value unescaped) of a single-valued first RDN."""
    (attr, value, _), *_ = ldap3.utils.dn.parse_dn(rdn, escape=False, strip=False)
    return attr, unescape_value(value)


def _plan_moves(directory: Directory, state: State, plan: Plan, moves: list[_Move], row: Any) -> int:
    """Each rename or move as one change, its new DN the first choice no other entry holds (the OUs asked
    in a search per OU, not an entry at a time); one whose every choice is taken is refused and named (its
    name change held back with a rename). Returns how many rows wait for a person."""
    wanted: dict[str, tuple[str, set[tuple[str, str]]]] = {}
    for m in moves:
        wanted.setdefault(normalise_dn(m.parent), (m.parent, set()))[1].update(m.choices)
    held: set[str] = set()
    for parent, pairs in wanted.values():
        ordered = sorted(pairs)
        for i in range(0, len(ordered), _OR_BATCH):
            terms = "".join(f"({a}={escape_filter_chars(v)})" for a, v in ordered[i : i + _OR_BATCH])
            for dn, _ in directory.search(parent, f"(|{terms})", ["1.1"], ldap3.LEVEL, raw=True):
                held.add(normalise_dn(dn))
    waiting = 0
    for m in moves:
        new_dn = None
        for attr, value in m.choices:
            candidate = f"{attr}={escape_rdn(value)},{m.parent}"
            key = normalise_dn(candidate)
            if key == normalise_dn(m.dn) or key not in held:
                new_dn = candidate
                held.add(key)  # two people of this run never get one DN
                break
        if new_dn is None:
            row(
                "error",
                m.r,
                m.user,
                f"not moved or renamed: {m.choices[0][0]}={m.choices[0][1]} is already taken in {m.parent} by "
                "another entry; do it by hand" + ("; the name is not changed until then" if m.carried else ""),
            )
            waiting += 1
            continue
        named = ["name: " + ", ".join(f"{k} -> {v}" for k, v in m.carried.items())] if m.carried else []
        row("mover", m.r, m.new_user, "; ".join(named + m.why))
        plan.add(
            Change(
                "rename-account" if m.new_user != m.user else "move-account",
                m.user,
                f"{m.user}: " + "; ".join(m.why) + (f" (now {new_dn})" if not same_dn(new_dn, m.dn) else ""),
                run=partial(_relocate_run, directory, state, m.dn, new_dn, m.user, m.new_user, m.mods),
                details={
                    "from": m.dn,
                    "to": new_dn,
                    "username": m.new_user,
                    "was": m.user,
                    "changed": m.carried,
                    "mods": {k: ops[0][1][0] for k, ops in m.mods.items()},  # all REPLACEs of one value
                },
                check=checks.moved(m.dn, new_dn) if not same_dn(new_dn, m.dn) else checks.attributes(new_dn, m.mods),
            )
        )
        m.acct.dn, m.acct.username = new_dn, m.new_user  # what the rest of the plan (joiners' names) sees
    return waiting


def _unfinished_moves(directory: Directory, state: State) -> list[Change]:
    """A rename or move a stopped run began (its journal intent still open) is done again from what it
    recorded: every step is idempotent, so the groups and records it did not reach are finished; the open
    intent itself is reconciled before this plan is applied, as every stopped change is."""
    out: list[Change] = []
    for it in state.open_intents():
        d = it.get("details") or {}
        if it["action"] not in ("rename-account", "move-account") or not {"from", "to", "was", "username"} <= set(d):
            continue
        mods = {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in (d.get("mods") or {}).items()}
        out.append(
            Change(
                it["action"],
                d["was"],
                f"finish what a stopped run began: {it.get('description') or it['action']}",
                run=partial(_relocate_run, directory, state, d["from"], d["to"], d["was"], d["username"], mods),
                details={**d, "finishing": it["id"]},
                check=checks.moved(d["from"], d["to"]) if not same_dn(d["from"], d["to"]) else None,
            )
        )
    return out


def _relocate_run(
    directory: Directory,
    state: State,
    old_dn: str,
    new_dn: str,
    old_user: str,
    new_user: str,
    mods: dict[str, list[tuple[str, list[Any]]]],
) -> dict[str, Any]:
    """Rename and/or move the entry, then its username attributes, then every group that names it by the
    old DN or username (where the server does not follow renames itself), then the store's records. Each
    step is idempotent, so a run killed half-way is finished by the next."""
    fl = directory.flavour
    out: dict[str, Any] = {}
    if not same_dn(old_dn, new_dn):
        if directory.exists(old_dn):
            same_parent = same_dn(parent_dn(old_dn), parent_dn(new_dn))
            directory.rename(old_dn, first_rdn(new_dn), None if same_parent else parent_dn(new_dn))
            out["dn"] = new_dn
        elif not directory.exists(new_dn):
            raise NotFoundError(f"{old_dn} is gone and {new_dn} is not there: was it moved by hand? nothing more done")
    if mods:
        directory.modify(new_dn, mods)
        out["changed"] = {k: ops[0][1][0] for k, ops in mods.items()}
    if not fl.members_follow_renames:
        stub = Account(dn=old_dn, username=old_user)
        fl.fill_groups(directory, [stub])  # every group naming the old DN or username, of any schema
        out["groups"] = [g for g in stub.groups if fl.relocate_member(directory, g, old_dn, new_dn, old_user, new_user)]
    records = renames.move(state, old_user, new_user, old_dn, new_dn)
    if records:
        out["records"] = records
    return out


def _modify(directory: Directory, acct: Account, updates: dict[str, str], what: str, action: str) -> Change:
    mods = {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in updates.items()}
    dn = acct.dn  # as it is now: a rename or move later in the plan does not change this change
    return Change(
        action,
        acct.username,
        what,
        run=lambda: {"result": directory.modify(dn, mods)},
        details={"changed": dict(updates)},
        check=checks.attributes(dn, mods),
    )


def _member(directory: Directory, group: str, dn: str, user: str, add: bool) -> dict[str, Any]:
    fl = directory.flavour
    if add:
        return {"changed": fl.add_member(directory, group, dn, user)}
    return {"changed": fl.remove_member(directory, group, dn, user)}
