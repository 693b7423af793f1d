"""`staff sync`: one plan from the MIS export and what the directory and the store hold now. Touches
nothing; refuses (nothing changed) an export that is empty, stale, re-shaped or would make too many leavers."""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ldap3

from ... import checks, csvfile, usernames
from ...access.grant import revoke_changes
from ...config import Config
from ...dates import read_date
from ...directory import Account, Directory, as_text, first, same_dn
from ...eligibility import ROLE, ineligible, is_leaver
from ...errors import ConfigError, InputError, RefusedError
from ...leavers import schedule
from ...plan import Change, Plan
from ...records import approvals, mis
from ...records.leavers import current as current_leaver
from ...records.roles import recorded_roles, set_role
from ...roles import RoleInfo, RoleResolver
from ...state import State
from ..intake import Person, build
from ..intake.plan import Intake
from .profiles import FIELDS, PROFILES, REQUIRED


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
    if cfg.mis.rename:
        raise ConfigError(f"{cfg.source}: mis.rename = true is not supported yet (a name change keeps the username)")
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
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        raise InputError(f"{path}: cannot read the export ({exc.strerror})") from None
    if age > max_age:
        raise RefusedError(
            f"{path}: the export is {age / 3600:.0f} hour(s) old (more than {max_age / 3600:.0f}); nothing was changed",
            hint="is the MIS's scheduled export still running? (--max-age SECONDS to accept an older one)",
        )
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
    for r in table.rows:
        v = r.get
        bad: list[str] = []
        pid = v("person_id")
        if not pid:
            bad.append(f"{mapping['person_id']}: is empty")
        elif pid in seen:
            bad.append(f"{mapping['person_id']}: {pid!r} is also on line {seen[pid]}")
        seen.setdefault(pid, r.line)
        for f in ("legal_first", "legal_last"):
            if not v(f):
                bad.append(f"{mapping[f]}: is empty")
        role = _role_for(cfg, v("role"))
        if role is None:
            bad.append(f"{mapping['role']}: {v('role')!r} maps onto no aupctl role (add it to [mis.roles])")
        dates: dict[str, dt.date | None] = {}
        for f in ("start_date", "end_date"):
            dates[f] = None
            if v(f):
                try:
                    dates[f] = read_date(v(f))
                except ValueError as exc:
                    bad.append(f"{mapping.get(f, f)}: {exc}")
        if bad:
            problems += [f"  line {r.line}: {b}" for b in bad]
            continue
        pref_first = v("preferred_first")
        rows.append(
            MisRow(
                r.line,
                pid,
                v("legal_first"),
                v("preferred_last") or v("legal_last"),
                pref_first if pref_first != v("legal_first") else "",
                v("staff_code"),
                v("email"),
                role or "",
                v("role"),
                dates["start_date"],
                dates["end_date"],
                v("department"),
            )
        )
    if problems:
        raise InputError(f"{path}: {len(problems)} problem(s); nothing was changed:\n" + "\n".join(problems))
    return Export(path, profile, sorted(h for h in headers if h), rows)


def _fold(s: str) -> str:
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
    attrs = [*fl.user_attributes, idattr]
    accounts = [fl.account(dn, a) for dn, a in directory.search(cfg.directory.base_dn, fl.person_filter, attrs)]
    live_accounts = [a for a in accounts if not is_leaver(cfg, a)]
    by_id: dict[str, Account] = {}
    by_code: dict[str, list[Account]] = {}
    by_mail: dict[str, list[Account]] = {}
    by_name: dict[tuple[str, str], list[Account]] = {}
    for a in accounts:
        pid = as_text(first(a.raw, idattr, ""))
        if pid:
            by_id[pid] = a
        if a.staff_code:
            by_code.setdefault(a.staff_code.casefold(), []).append(a)
        if a.email:
            by_mail.setdefault(a.email.casefold(), []).append(a)
        by_name.setdefault((_fold(a.given_name), _fold(a.surname)), []).append(a)
    fl.fill_groups(directory, accounts)
    resolve = RoleResolver(cfg, recorded_roles(state))
    plan = Plan(f"sync {len(export.rows)} staff from {export.path}")
    people: list[dict[str, Any]] = []
    joiners: list[Person] = []
    leavers: list[schedule.Request] = []
    claimed: set[str] = set()
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
        if acct is None:
            acct, how = _first_contact(r, by_code, by_mail, by_name, claimed)
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
        claimed.add(acct.dn.lower())
        if is_leaver(cfg, acct):
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
        _mover(cfg, directory, state, plan, acct, r, resolve(acct), row)
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
    # People an earlier run matched (they hold an MIS id) and the export no longer holds: a truncated export.
    vanished = [a for a in live_accounts if a.dn.lower() not in claimed and as_text(first(a.raw, idattr, ""))]
    if len(leavers) + len(vanished) > cfg.mis.max_leavers * max(len(live_accounts), 1):
        raise RefusedError(
            f"{export.path}: {len(leavers)} leaver(s) and {len(vanished)} person(s) matched before but missing from "
            f"the export, of {len(live_accounts)} staff, is more than mis.max_leavers ({cfg.mis.max_leavers:.0%}); "
            "nothing was changed",
            hint="a truncated export? check it; raise [mis] max_leavers for a real wave of leavers",
        )
    for a in live_accounts:
        if a.dn.lower() in claimed or any(fnmatch.fnmatchcase(a.username.lower(), g.lower()) for g in cfg.mis.ignore):
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
        plan.extend(schedule.withdraw(cfg, directory, state, leavers, today=today).changes)
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
    if joiners:
        intake = build(cfg, directory, state, joiners, credentials_out=credentials_out, source=export.path)
    else:  # no joiners: the intake's own read of the whole directory is not needed
        intake = Intake(Plan(plan.title), [], uuid.uuid4().hex[:12], None)
    ids = {r.line: r.person_id for r in export.rows}
    for e in intake.entries:  # a joiner is made holding its MIS id, so the next run matches by it
        if e.new_entry is not None:
            e.new_entry[1][idattr] = ids[e.person.line]
        if e.action != "unchanged":
            for p in people:
                if p["line"] == e.person.line:
                    p["username"] = e.username
    intake.plan.title = plan.title
    intake.plan.extend(plan.changes)
    intake.plan.notes += plan.notes
    sync = Sync(intake.plan, intake, people, waiting)
    intake.plan.summary = sync.counts()
    return sync


def _base(cfg: Config, r: MisRow) -> str:
    parts = usernames.NameParts(r.first_name, r.last_name, r.preferred_name, r.staff_code)
    try:
        return usernames.cut(usernames.render(cfg.accounts.username, parts), cfg.accounts.max_length)
    except ValueError as exc:  # NotLatinError among them
        raise InputError(f"line {r.line}: {exc}: give this person a username by hand") from None


def _first_contact(
    r: MisRow,
    by_code: dict[str, list[Account]],
    by_mail: dict[str, list[Account]],
    by_name: dict[tuple[str, str], list[Account]],
    claimed: set[str],
) -> tuple[Any, str]:
    """Staff code, then work email, then the name: one account matches; several are for a person to decide."""
    for how, found in (
        ("staff code", by_code.get(r.staff_code.casefold(), []) if r.staff_code else []),
        ("email", by_mail.get(r.email.casefold(), []) if r.email else []),
        ("name", by_name.get((_fold(r.first_name), _fold(r.last_name)), [])),
    ):
        found = [a for a in found if a.dn.lower() not in claimed]
        if how != "staff code" and r.staff_code:  # someone else with the same name or a shared mailbox
            found = [a for a in found if not a.staff_code or a.staff_code.casefold() == r.staff_code.casefold()]
        if len(found) == 1:
            return found[0], how
        if len(found) > 1:
            return found, "ambiguous"
    return None, ""


def _mover(
    cfg: Config, directory: Directory, state: State, plan: Plan, acct: Account, r: MisRow, was: RoleInfo, row: Any
) -> None:
    # A name change (a marriage): given name, surname, display name, email; the username is kept.
    updates: dict[str, str] = {}
    if acct.given_name != r.first_name:
        updates["givenName"] = r.first_name
    if acct.surname != r.last_name:
        updates["sn"] = r.last_name
    if updates and acct.display_name != r.display_name:
        updates["displayName"] = r.display_name
    if r.email and acct.email.casefold() != r.email.casefold():
        updates["mail"] = r.email
    if updates:
        plan.add(
            _modify(
                directory,
                acct,
                updates,
                f"update {acct.username}'s name from the MIS: "
                + ", ".join(f"{k} -> {v!r}" for k, v in updates.items()),
                "update-account",
            )
        )
        row("mover", r, acct.username, "name: " + ", ".join(f"{k} -> {v}" for k, v in updates.items()))
    if was.role == r.role:
        return
    # no role today (an account made by hand, in no role group): the MIS's role places it, not silence
    new = RoleInfo(r.role, "the MIS")
    old_groups = [cfg.group_dn(g) for g in cfg.roles[was.role].groups] if was.role else []
    new_groups = [cfg.group_dn(g) for g in cfg.roles[r.role].groups]
    for g in old_groups:
        if any(same_dn(g, h) for h in acct.groups) and not any(same_dn(g, n) for n in new_groups):
            plan.add(
                Change(
                    "remove-member",
                    acct.username,
                    f"remove {acct.username} from {g} (role {was.role} -> {r.role}, AUP 1.3)",
                    run=partial(_member, directory, g, acct, False),
                    details={"group": g, "member": acct.dn},
                    check=checks.member(g, acct.dn, False),
                )
            )
    for g in new_groups:
        if not any(same_dn(g, h) for h in acct.groups):
            plan.add(
                Change(
                    "add-member",
                    acct.username,
                    f"add {acct.username} to {g} (role {r.role}, AUP 1.3)",
                    run=partial(_member, directory, g, acct, True),
                    details={"group": g, "role": r.role},
                    check=checks.member(g, acct.dn, True),
                )
            )
    ended = []
    for a in approvals.live(state, username=acct.username):
        if any(i.check == ROLE for i in ineligible(cfg, acct, a["system"], new, None)):
            ended.append(a["system"])
            plan.extend(
                revoke_changes(
                    cfg,
                    directory,
                    state,
                    acct.username,
                    a["system"],
                    f"role moved from {was.role} to {r.role} in the MIS (AUP 1.3)",
                )
            )
    role = r.role
    plan.add(
        Change(
            "set-role",
            acct.username,
            f"record {acct.username}'s role as {role} (was {was.role or 'none'}; the MIS)",
            run=lambda: set_role(state, acct.username, role, "set"),
            details={"role": role, "was": was.role},
        )
    )
    row(
        "mover",
        r,
        acct.username,
        f"role {was.role or 'none'} -> {r.role}" + (f"; access ended: {', '.join(ended)}" if ended else ""),
    )


def _modify(directory: Directory, acct: Account, updates: dict[str, str], what: str, action: str) -> Change:
    mods = {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in updates.items()}
    return Change(
        action,
        acct.username,
        what,
        run=lambda: {"result": directory.modify(acct.dn, mods)},
        details={"changed": dict(updates)},
        check=checks.attributes(acct.dn, mods),
    )


def _member(directory: Directory, group: str, acct: Account, add: bool) -> dict[str, Any]:
    fl = directory.flavour
    if add:
        return {"changed": fl.add_member(directory, group, acct.dn, acct.username)}
    return {"changed": fl.remove_member(directory, group, acct.dn, acct.username)}
