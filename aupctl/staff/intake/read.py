"""`staff import`, stage 1: the whole file is checked before the directory is touched; every bad row is
named (line and field) in one InputError. A checked row is a Person."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ... import csvfile, usernames
from ...access.grant import canonical_approver
from ...config import Config
from ...dates import read_date
from ...errors import AupctlError, InputError
from ...text import problem as unsafe_problem

REQUIRED = ["first_name", "last_name", "role"]
OPTIONAL = ["preferred_name", "staff_code", "email", "department", "start_date", "username", "systems", "approved_by"]
MAX_NAME = 64  # AD: givenName, sn and cn hold at most 64 characters
_EMAIL = re.compile(r"^[^@\s,;<>\"\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


@dataclass
class Person:
    """One checked row of the file."""

    line: int
    first_name: str
    last_name: str
    role: str
    preferred_name: str = ""
    staff_code: str = ""
    email: str = ""
    department: str = ""
    start_date: str = ""  # YYYY-MM-DD
    username: str = ""  # from the file's username column
    systems: list[str] = field(default_factory=list)
    approvers: dict[str, str] = field(default_factory=dict)  # system -> the approver as the config spells it
    base: str = ""  # the username before clash suffixes

    @property
    def display_name(self) -> str:
        return f"{self.preferred_name or self.first_name} {self.last_name}"


def parse_date(value: str) -> str:
    """A start date as YYYY-MM-DD (aupctl.dates: ISO 8601 or the UK's DD/MM/YYYY); ValueError if not one."""
    return read_date(value).isoformat()


def split_systems(value: str) -> list[str]:
    return [s.strip() for s in re.split(r"[;,|]", value) if s.strip()]


def _name_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    why = unsafe_problem(value)  # control, bidi and invisible characters: never into the directory
    if why:
        return why
    if len(value) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


@dataclass
class _Seen:
    """What earlier rows held, to catch the same person (or username) twice in the file."""

    code: dict[str, int] = field(default_factory=dict)
    name: dict[tuple[str, str, str], int] = field(default_factory=dict)
    user: dict[str, int] = field(default_factory=dict)


class _Row:
    """One row being checked: its values, and the problems found so far (column: text)."""

    def __init__(self, row: csvfile.Row) -> None:
        self.line = row.line
        self.get = row.get
        self.problems: list[str] = []

    def bad(self, column: str, text: str) -> None:
        self.problems.append(f"{column}: {text}")

    @property
    def names_ok(self) -> bool:
        return not _name_problem(self.get("first_name")) and not _name_problem(self.get("last_name"))


def read_intake(cfg: Config, path: str | Path) -> list[Person]:
    """Read and check the whole file; one InputError lists every bad row (line and field)."""
    table = csvfile.read(
        path, required=REQUIRED, optional=OPTIONAL, mapping=cfg.import_.columns, max_bytes=cfg.import_.max_bytes
    )
    people: list[Person] = []
    errors: list[str] = []
    seen = _Seen()
    for row in table.rows:
        r = _Row(row)
        person = _check(cfg, r, seen)
        if r.problems or person is None:
            errors.extend(f"  line {row.line}: {p}" for p in r.problems)
            continue
        people.append(person)
    if errors:
        rows = len({e.split(":")[0] for e in errors})
        raise InputError(
            f"{table.path}: {rows} bad row(s); nothing was changed:\n" + "\n".join(errors),
            hint="correct these rows (or remove them) and run the same command again",
        )
    if not people:
        raise InputError(f"{table.path}: no rows to import (only a header?)")
    return people


def _check(cfg: Config, r: _Row, seen: _Seen) -> Person | None:
    """One row: every problem goes to r.problems; the Person when there are none."""
    v = r.get
    _check_names(r)
    role = _check_role(cfg, r)
    code = v("staff_code")
    if code and (unsafe_problem(code) or len(code) > 64):
        r.bad("staff_code", unsafe_problem(code) or "is longer than 64 characters")
    email = v("email")
    if email and not _EMAIL.match(email):
        r.bad("email", f"{email!r} is not an email address")
    start = ""
    if v("start_date"):
        try:
            start = parse_date(v("start_date"))
        except ValueError as exc:
            r.bad("start_date", str(exc))
    systems, approvers = _check_systems(cfg, r, role)
    base, given = _username(cfg, r), v("username")
    _check_twice(r, seen, base)
    if r.problems:
        return None
    return Person(
        line=r.line,
        first_name=v("first_name"),
        last_name=v("last_name"),
        role=role,
        preferred_name=v("preferred_name"),
        staff_code=code,
        email=email,
        department=v("department"),
        start_date=start,
        username=base if given else "",
        systems=systems,
        approvers=approvers,
        base=base,
    )


def _check_names(r: _Row) -> None:
    v = r.get
    for column in ("first_name", "last_name", "preferred_name", "department"):
        why = _name_problem(v(column))
        if why and (column in ("first_name", "last_name") or why != "is empty"):
            r.bad(column, why)
    if r.names_ok:
        display = f"{v('preferred_name') or v('first_name')} {v('last_name')}"
        if len(display) > MAX_NAME:
            r.bad("preferred_name" if v("preferred_name") else "last_name", f"the full name {display!r} is too long")


def _check_role(cfg: Config, r: _Row) -> str:
    """The role as the config spells it (the file's case forgiven)."""
    role = r.get("role")
    if not role:
        r.bad("role", "is empty")
    elif role not in cfg.roles:
        folded = {k.lower(): k for k in cfg.roles}
        if role.lower() in folded:
            return folded[role.lower()]
        r.bad("role", f"unknown role {role!r} (known: {', '.join(cfg.roles) or 'none configured'})")
    return role


def _check_systems(cfg: Config, r: _Row, role: str) -> tuple[list[str], dict[str, str]]:
    """The systems nominated, and for each the approver as the config spells them."""
    v = r.get
    systems: list[str] = []
    for given in split_systems(v("systems")):
        try:
            systems.append(cfg.system_key(given))  # as the config spells it: the office may write SIMS
        except AupctlError as exc:  # unknown: the known ones, and the closest ("did you mean")
            r.bad("systems", str(exc).replace("\n  hint: ", "; "))
    approvers: dict[str, str] = {}
    for key in systems:
        if role in cfg.roles and key not in cfg.roles[role].systems:
            allowed = ", ".join(cfg.roles[role].systems) or "none"
            r.bad("systems", f"role {role!r} may not be nominated for {key} (roles.{role}.systems: {allowed})")
            continue
        if not v("approved_by"):
            r.bad("approved_by", f"is empty, but {key} needs an approver (systems.{key}.approvers)")
            continue
        try:
            approvers[key] = canonical_approver(cfg, key, v("approved_by"))
        except AupctlError as exc:
            r.bad("approved_by", exc.message.removesuffix("; nothing was changed"))
    if len(set(systems)) != len(systems):
        r.bad("systems", "names a system twice")
    return systems, approvers


def _username(cfg: Config, r: _Row) -> str:
    """The username before clash suffixes: the file's own, else the config's template."""
    v = r.get
    max_len = cfg.accounts.max_length
    given = v("username")
    if given:
        base = given.lower()
        why = usernames.problem(base, max_len)
        if why:
            r.bad("username", f"{given!r} {why}")
        return base
    if not r.names_ok:
        return ""
    parts = usernames.NameParts(v("first_name"), v("last_name"), v("preferred_name"), v("staff_code"))
    try:
        base = usernames.cut(usernames.render(cfg.accounts.username, parts), max_len)
    except usernames.NotLatinError as exc:
        r.bad("username", f"{exc}: this row needs the username column")
        return ""
    except ValueError as exc:
        r.bad("username", f"{exc}: this row needs the username column")
        return ""
    why = usernames.problem(base, max_len)
    if why:
        r.bad("username", f"the name gives the username {base!r}, which {why}: use the username column")
    return base


def _check_twice(r: _Row, seen: _Seen, base: str) -> None:
    """The same person twice in the file (by staff code, else name and email), or one username twice."""
    v = r.get
    code, given = v("staff_code"), v("username")
    if code:
        if code.lower() in seen.code:
            r.bad("staff_code", f"{code!r} is also on line {seen.code[code.lower()]} (the same person twice?)")
        else:
            seen.code[code.lower()] = r.line
    else:
        key3 = (v("first_name").casefold(), v("last_name").casefold(), v("email").lower())
        if key3 in seen.name:
            r.bad(
                "first_name",
                f"{v('first_name')} {v('last_name')} is also on line {seen.name[key3]} "
                "with no staff_code to tell them apart",
            )
        else:
            seen.name[key3] = r.line
    if given:
        if base in seen.user:
            r.bad("username", f"{given!r} is also on line {seen.user[base]}")
        else:
            seen.user[base] = r.line
