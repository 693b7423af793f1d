"""The September intake: new staff from the office's CSV into the directory (`aupctl staff import`).

Three stages, each safe to stop after:

1. `read_intake`: the whole file is checked before the directory is touched; every bad row is named
   (line and field) in one InputError.
2. `build`: one plan from what the directory and the state store hold NOW: who is new (and their
   username), who exists (and what differs), who an earlier, interrupted run left half-made, which
   systems are granted and which wait for an AUP signature.
3. `plan.apply`: new accounts are made in batches (batch_size): the batch's credential lines are written
   and fsynced and each person marked 'creating' first; then the people are made. OpenLDAP: each in ONE
   add carrying the (hashed) first password, change-at-first-logon and no lock, the batch's adds sent
   together on one connection (directory/pipeline.py). AD: a few connections side by side, each person
   in order: created disabled, password set, then flagged to change it at first logon and enabled (one
   request). Then one request per group adds the batch's people; then each is recorded (role, 'done',
   an audit entry). An account is never enabled without its password, and a re-run finishes what a
   killed one left.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import string
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from . import checks, credfile, csvfile, passphrase, usernames
from .config import Config
from .credfile import CredentialsFile
from .directory import Account, Directory, DirectoryError, group_name, normalise_dn, pipeline, same_dn
from .eligibility import is_leaver
from .errors import AupctlError, ConfigError, InputError, RefusedError, UnreachableError
from .plan import Change, Plan
from .records import approvals
from .state import State, now_iso
from .text import problem as unsafe_problem

REQUIRED = ["first_name", "last_name", "role"]
OPTIONAL = ["preferred_name", "staff_code", "email", "department", "start_date", "username", "systems", "approved_by"]

WORKERS = 3  # connections making accounts side by side
BATCH = 25  # accounts per batch: one progress step, one journal entry and one fsync of the credentials file each
PIPELINED_BATCH = 100  # where a batch's adds go out together (OpenLDAP): fewer, fuller group changes and round trips
MAX_NAME = 64  # AD: givenName, sn and cn hold at most 64 characters
_EMAIL = re.compile(r"^[^@\s,;<>\"\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")

CREDENTIAL_COLUMNS = credfile.NEW_STAFF_COLUMNS


# -- 1. reading and checking the file --


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
    """YYYY-MM-DD, or DD/MM/YYYY as Excel writes it on a UK PC."""
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


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


def read_intake(cfg: Config, path: str | Path) -> list[Person]:
    """Read and check the whole file; one InputError lists every bad row (line and field)."""
    from .access.grant import canonical_approver

    table = csvfile.read(
        path, required=REQUIRED, optional=OPTIONAL, mapping=cfg.import_.columns, max_bytes=cfg.import_.max_bytes
    )
    people: list[Person] = []
    errors: list[str] = []
    max_len = cfg.accounts.max_length
    seen_code: dict[str, int] = {}
    seen_name: dict[tuple[str, str, str], int] = {}
    seen_user: dict[str, int] = {}
    for row in table.rows:
        problems: list[str] = []

        def bad(column: str, text: str, problems: list[str] = problems) -> None:
            problems.append(f"{column}: {text}")

        v = row.get
        for column in ("first_name", "last_name", "preferred_name", "department"):
            why = _name_problem(v(column))
            if why and (column in ("first_name", "last_name") or why != "is empty"):
                bad(column, why)
        if not _name_problem(v("first_name")) and not _name_problem(v("last_name")):
            display = f"{v('preferred_name') or v('first_name')} {v('last_name')}"
            if len(display) > MAX_NAME:
                bad("preferred_name" if v("preferred_name") else "last_name", f"the full name {display!r} is too long")
        role = v("role")
        if not role:
            bad("role", "is empty")
        elif role not in cfg.roles:
            folded = {k.lower(): k for k in cfg.roles}
            if role.lower() in folded:
                role = folded[role.lower()]
            else:
                bad("role", f"unknown role {role!r} (known: {', '.join(cfg.roles) or 'none configured'})")
        code = v("staff_code")
        if code and (unsafe_problem(code) or len(code) > 64):
            bad("staff_code", unsafe_problem(code) or "is longer than 64 characters")
        email = v("email")
        if email and not _EMAIL.match(email):
            bad("email", f"{email!r} is not an email address")
        start = ""
        if v("start_date"):
            try:
                start = parse_date(v("start_date"))
            except ValueError as exc:
                bad("start_date", str(exc))
        systems = split_systems(v("systems"))
        approvers: dict[str, str] = {}
        for key in systems:
            if key not in cfg.systems:
                bad("systems", f"unknown system {key!r} (known: {', '.join(cfg.systems) or 'none configured'})")
                continue
            if role in cfg.roles and key not in cfg.roles[role].systems:
                allowed = ", ".join(cfg.roles[role].systems) or "none"
                bad("systems", f"role {role!r} may not be nominated for {key} (roles.{role}.systems: {allowed})")
                continue
            if not v("approved_by"):
                bad("approved_by", f"is empty, but {key} needs an approver (systems.{key}.approvers)")
                continue
            try:
                approvers[key] = canonical_approver(cfg, key, v("approved_by"))
            except AupctlError as exc:
                bad("approved_by", exc.message.removesuffix("; nothing was changed"))
        if len(set(systems)) != len(systems):
            bad("systems", "names a system twice")
        # The username: the file's own, else the config's template.
        base = ""
        given = v("username")
        if given:
            base = given.lower()
            why = usernames.problem(base, max_len)
            if why:
                bad("username", f"{given!r} {why}")
        elif not _name_problem(v("first_name")) and not _name_problem(v("last_name")):
            parts = usernames.NameParts(v("first_name"), v("last_name"), v("preferred_name"), code)
            try:
                base = usernames.cut(usernames.render(cfg.accounts.username, parts), max_len)
            except usernames.NotLatinError as exc:
                bad("username", f"{exc}: this row needs the username column")
            except ValueError as exc:
                bad("username", f"{exc}: this row needs the username column")
            else:
                why = usernames.problem(base, max_len)
                if why:
                    bad("username", f"the name gives the username {base!r}, which {why}: use the username column")
        # The same person twice in the file.
        if code:
            if code.lower() in seen_code:
                bad("staff_code", f"{code!r} is also on line {seen_code[code.lower()]} (the same person twice?)")
            else:
                seen_code[code.lower()] = row.line
        else:
            key3 = (v("first_name").casefold(), v("last_name").casefold(), email.lower())
            if key3 in seen_name:
                bad(
                    "first_name",
                    f"{v('first_name')} {v('last_name')} is also on line {seen_name[key3]} "
                    "with no staff_code to tell them apart",
                )
            else:
                seen_name[key3] = row.line
        if given:
            if base in seen_user:
                bad("username", f"{given!r} is also on line {seen_user[base]}")
            else:
                seen_user[base] = row.line
        if problems:
            errors.extend(f"  line {row.line}: {p}" for p in problems)
            continue
        people.append(
            Person(
                line=row.line,
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
        )
    if errors:
        rows = len({e.split(":")[0] for e in errors})
        raise InputError(
            f"{table.path}: {rows} bad row(s); nothing was changed:\n" + "\n".join(errors),
            hint="correct these rows (or remove them) and run the same command again",
        )
    if not people:
        raise InputError(f"{table.path}: no rows to import (only a header?)")
    return people


# -- 2. the plan --


@dataclass
class Entry:
    """What the import does for one person."""

    person: Person
    action: str  # "create", "update", "finish", "unchanged", "skip"
    username: str
    dn: str
    ou_dn: str = ""
    account: Account | None = None
    new_entry: tuple[list[str], dict[str, Any]] | None = None  # (objectClasses, attributes) to create
    email: str = ""
    updates: dict[str, str] = field(default_factory=dict)  # attribute -> new value (never a secret)
    groups: list[str] = field(default_factory=list)  # group DNs to add to
    steps: list[str] = field(default_factory=list)  # "credential", "add", "password", "force", "enable", "record"
    old_password_from: str | None = None  # finish: reuse the password an interrupted run wrote there
    grants: list[str] = field(default_factory=list)  # systems granted now (AUP signed)
    waiting: list[str] = field(default_factory=list)  # systems recorded as waiting for the AUP signature
    note: str = ""

    def row(self) -> dict[str, Any]:
        p = self.person
        return {
            "line": p.line,
            "action": self.action,
            "username": self.username,
            "name": p.display_name,
            "role": p.role,
            "staff_code": p.staff_code,
            "email": self.email,
            "start_date": p.start_date,
            "dn": self.dn,
            "changes": sorted(self.updates),
            "updates": dict(self.updates),  # attribute -> the value the file gives
            "groups": [group_name(g) for g in self.groups],
            "granted": self.grants,
            "waiting": self.waiting,
            "note": self.note,
        }


@dataclass
class Intake:
    plan: Plan
    entries: list[Entry]
    run_id: str
    credentials: CredentialsFile | None
    runner: _Runner | None = None

    @property
    def needs_credentials(self) -> bool:
        return any("credential" in e.steps for e in self.entries)

    def check_ready(self) -> None:
        """Before applying: new passwords need a credentials file that can be made (nothing changed yet)."""
        if not self.needs_credentials:
            return
        if self.credentials is None:
            n = sum(1 for e in self.entries if "credential" in e.steps)
            raise RefusedError(
                f"{n} account(s) need a first password, and passwords are only ever written to a file: "
                "nothing was changed",
                hint="add --credentials-out FILE (a new file; it is created readable only by you)",
            )
        self.credentials.check()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.credentials is not None:
            self.credentials.close()

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "finish": 0, "unchanged": 0, "skip": 0, "waiting": 0, "granted": 0}
        for e in self.entries:
            out[e.action] += 1
            out["waiting"] += len(e.waiting)
            out["granted"] += len(e.grants)
        return out


def email_for(cfg: Config, username: str, person: Person) -> str:
    """The row's email, else [accounts] email filled in (fields: username, first_name, last_name)."""
    if person.email:
        return person.email
    template = cfg.accounts.email
    if not template:
        return ""
    try:
        from . import templates
        from .config import EMAIL_FIELDS

        used = set(templates.fields(template, EMAIL_FIELDS))
        values = {"username": username}
        for name in used & {"first_name", "last_name"}:
            values[name] = usernames.fold(getattr(person, name))
        return templates.render(template, values, EMAIL_FIELDS)
    except usernames.NotLatinError:
        return ""  # a name in another script: no address is made up from it
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{cfg.source}: accounts.email: {template!r} cannot be filled in ({exc})") from None


def _read_directory(cfg: Config, directory: Directory) -> tuple[list[Account], set[str]]:
    """Every person (with department) and every username taken anywhere under base_dn (groups and
    computers too on AD: sAMAccountName is unique across the domain)."""
    fl = directory.flavour
    base = cfg.directory.base_dn
    attrs = list(fl.user_attributes) + [fl.department_attr]
    people = [fl.account(dn, a) for dn, a in directory.search(base, fl.person_filter, attrs)]
    taken = {a.username.lower() for a in people}
    for _, a in directory.search(base, f"({fl.username_attr}=*)", [fl.username_attr]):
        for value in a.get(fl.username_attr, []) or []:
            taken.add(str(value).lower())
    return people, taken


def _department(directory: Directory, acct: Account) -> str:
    from .directory import as_text, first

    return as_text(first(acct.raw, directory.flavour.department_attr, ""))


def _same_name(acct: Account, p: Person) -> bool:
    try:
        return usernames.fold(acct.given_name) == usernames.fold(p.first_name) and usernames.fold(
            acct.surname
        ) == usernames.fold(p.last_name)
    except usernames.NotLatinError:
        return (
            acct.given_name.casefold() == p.first_name.casefold() and acct.surname.casefold() == p.last_name.casefold()
        )


def _provisioned(state: State) -> dict[str, dict[str, Any]]:
    return {r["username"].lower(): dict(r) for r in state.query("SELECT * FROM provisioned")}


def _credential_in(path: str | None, username: str) -> str | None:
    """The password an earlier run wrote for this username, if its file is still there and readable."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            found = None
            for rec in csv.DictReader(fh):
                if (rec.get("username") or "").lower() == username.lower() and rec.get("password"):
                    found = rec["password"]  # the last line wins: a reset writes a later one
            return found
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def build(
    cfg: Config,
    directory: Directory,
    state: State,
    people: list[Person],
    *,
    credentials_out: str | None = None,
    source: str = "",
) -> Intake:
    """The plan for these people, from what the directory and the state store hold now (touches nothing)."""
    from .eligibility import is_signed

    fl = directory.flavour
    run_id = uuid.uuid4().hex[:12]
    accounts, taken = _read_directory(cfg, directory)
    by_code: dict[str, list[Account]] = {}
    by_user: dict[str, Account] = {}
    for a in accounts:
        by_user[a.username.lower()] = a
        if a.staff_code:
            by_code.setdefault(a.staff_code.lower(), []).append(a)
    provisioned = _provisioned(state)
    stems = {u.rstrip(string.digits) for u in by_user}

    # Every role OU and group the file needs must exist; say so before anything changes.
    problems: list[str] = []
    ou_children: dict[str, set[str]] = {}
    group_ok: dict[str, bool] = {}
    for role_name in sorted({p.role for p in people}):
        role = cfg.roles[role_name]
        ou_dn, ou_key = cfg.role_ou(role_name)  # no ou: new accounts of the role go to staff_ou
        if directory.read(ou_dn, ["1.1"]) is None:
            problems.append(f"{ou_key}: {ou_dn} does not exist in the directory")
            continue
        ou_children[normalise_dn(ou_dn)] = {
            _rdn_key(dn) for dn, _ in directory.search(ou_dn, "(objectClass=*)", ["1.1"], ldap3.LEVEL)
        }
        for g in role.groups:
            gdn = cfg.group_dn(g)
            if gdn not in group_ok:
                group_ok[gdn] = directory.read(gdn, ["1.1"]) is not None
                if not group_ok[gdn]:
                    problems.append(f"roles.{role_name}.groups: the group {gdn} does not exist in the directory")
    if problems:
        raise ConfigError(
            f"{cfg.source}: the config names what the directory does not hold; nothing was changed:\n  "
            + "\n  ".join(problems)
        )

    entries: list[Entry] = []
    row_errors: list[str] = []
    claimed: dict[str, int] = {}  # account DN -> the line that matched it
    matched: dict[int, Account] = {}
    for p in people:
        acct = _match(cfg, p, by_code, by_user, row_errors, stems)
        if acct is not None:
            key = normalise_dn(acct.dn)
            if key in claimed:
                row_errors.append(f"  line {p.line}: matches {acct.username}, as line {claimed[key]} does")
                continue
            claimed[key] = p.line
            matched[p.line] = acct
    fl.fill_groups(directory, list(matched.values()))  # one read of every group (OpenLDAP), not one per person
    posix: Any = None  # PosixAccounts once a new person needs it; False where new accounts are not posixAccount
    for p in people:
        role = cfg.roles[p.role]
        ou_dn, _ = cfg.role_ou(p.role)
        role_groups = [cfg.group_dn(g) for g in role.groups]
        if p.line in matched:
            entries.append(_existing(cfg, directory, state, p, matched[p.line], role_groups, provisioned, is_signed))
            continue
        if any(e.startswith(f"  line {p.line}:") for e in row_errors):
            continue
        if p.username:
            if p.username in taken:
                holder = by_user.get(p.username)
                who = f" by {holder.name} ({holder.dn})" if holder else ""
                row_errors.append(f"  line {p.line}: username: {p.username!r} is already taken{who}")
                continue
            username = p.username
            taken.add(username)
        else:
            username = usernames.allocate(p.base, taken, cfg.accounts.max_length)
        email = email_for(cfg, username, p)
        dn, classes, attrs = fl.new_user(
            username=username,
            given_name=p.first_name,
            surname=p.last_name,
            display_name=p.display_name,
            email=email,
            staff_code=p.staff_code,
            ou_dn=ou_dn,
        )
        children = ou_children.setdefault(normalise_dn(ou_dn), set())
        if _rdn_key(dn) in children:
            # AD names the entry by its display name: a second "Jane Smith" in the OU gets "Jane Smith (jsmith2)".
            dn, classes, attrs = fl.new_user(
                username=username,
                given_name=p.first_name,
                surname=p.last_name,
                display_name=f"{p.display_name} ({username})",
                email=email,
                staff_code=p.staff_code,
                ou_dn=ou_dn,
            )
            attrs["displayName"] = p.display_name
        children.add(_rdn_key(dn))
        if posix is None:
            from .directory import PosixAccounts

            posix = PosixAccounts.for_run(cfg, directory) or False  # one search, on the first new person
        if posix:
            classes = posix.classes(classes)
            attrs.update(posix.attributes(username))
        if p.department:
            attrs[fl.department_attr] = p.department
        e = Entry(p, "create", username, dn, ou_dn, None, (classes, attrs), email, {}, list(role_groups))
        e.steps = ["credential", "add", "password", "force", "enable", "record"]
        old = provisioned.get(username.lower())
        if old and old.get("status") == "creating":
            e.note = f"an interrupted run wrote a password for {username} to {old['credentials_file']} but never created the account: that line is void"
        _systems(state, e, signed=False)  # a new person has not signed the AUP yet
        entries.append(e)
    if row_errors:
        raise InputError(
            f"{source or 'the file'}: {len(row_errors)} row(s) clash with the directory; nothing was changed:\n"
            + "\n".join(row_errors)
        )
    creds = CredentialsFile(credentials_out, CREDENTIAL_COLUMNS) if credentials_out else None
    intake = Intake(Plan(f"import {len(people)} staff from {source or 'the file'}"), entries, run_id, creds)
    intake.runner = _Runner(cfg, directory, state, intake)
    _changes(cfg, directory, state, intake)
    return intake


def _match(
    cfg: Config,
    p: Person,
    by_code: dict[str, list[Account]],
    by_user: dict[str, Account],
    errors: list[str],
    stems: set[str] | None = None,
) -> Account | None:
    """The account this row is about, if the directory already has it (same staff_code, else the same
    username from the same name and email), else None."""
    if p.staff_code:
        found = by_code.get(p.staff_code.lower(), [])
        if len(found) > 1:
            errors.append(
                f"  line {p.line}: staff_code: {p.staff_code!r} is held by several accounts: "
                + ", ".join(a.username for a in found)
            )
            return None
        if found:
            return found[0]
    if p.username:
        candidates: Iterable[str] = [p.username]
    elif stems is None or _may_hold_variant(p.base, cfg.accounts.max_length, stems):
        candidates = usernames.variants(p.base, cfg.accounts.max_length)
    else:
        candidates = ()  # no directory username is base, base2 … base50: skip the 50 look-ups
    for name in candidates:
        acct = by_user.get(name.lower())
        if acct is None:
            continue
        if p.staff_code and acct.staff_code and acct.staff_code.lower() != p.staff_code.lower():
            continue  # someone else with the same name
        if not _same_name(acct, p):
            continue
        wanted = email_for(cfg, acct.username, p)
        if wanted and acct.email and wanted.lower() != acct.email.lower():
            continue
        return acct
    return None


def _may_hold_variant(base: str, max_length: int, stems: set[str]) -> bool:
    """Could a username in the directory be one of usernames.variants(base)? Each variant without its
    trailing digits is base cut to max_length, max_length-1 or max_length-2 (suffixes 2-9, 10-50) without
    its trailing digits; stems holds every directory username without its trailing digits."""
    return any(usernames.cut(base, max_length - k).lower().rstrip(string.digits) in stems for k in (0, 1, 2))


def _existing(
    cfg: Config,
    directory: Directory,
    state: State,
    p: Person,
    acct: Account,
    role_groups: list[str],
    provisioned: dict[str, dict[str, Any]],
    is_signed: Callable[..., bool],
) -> Entry:
    fl = directory.flavour
    e = Entry(p, "unchanged", acct.username, acct.dn, account=acct, email=acct.email)
    if is_leaver(cfg, acct):
        e.action = "skip"
        e.note = "in the leavers OU: bring the account back with `aupctl leaver restore` first"
        return e
    # What the file says that the directory does not.
    if acct.given_name != p.first_name:
        e.updates["givenName"] = p.first_name
    if acct.surname != p.last_name:
        e.updates["sn"] = p.last_name
    names_changed = bool(e.updates)
    if (names_changed or p.preferred_name) and acct.display_name != p.display_name:
        e.updates["displayName"] = p.display_name
    if p.email and acct.email.lower() != p.email.lower():
        e.updates["mail"] = p.email
        e.email = p.email
    if p.staff_code and acct.staff_code != p.staff_code:
        e.updates["employeeNumber"] = p.staff_code
    if p.department and _department(directory, acct) != p.department:
        e.updates[fl.department_attr] = p.department
    e.groups = [g for g in role_groups if not any(same_dn(g, have) for have in acct.groups)]
    # Left half-made by an interrupted import?
    prov = provisioned.get(acct.username.lower())
    if prov and prov.get("status") == "creating":
        e.action = "finish"
        if acct.disabled:
            old = _credential_in(prov.get("credentials_file"), acct.username)
            if old:
                e.old_password_from = prov["credentials_file"]
                e.note = f"finishing an interrupted run: its password is the one in {prov['credentials_file']}"
                e.steps = ["password", "force", "enable", "record"]
            else:
                e.note = (
                    f"finishing an interrupted run whose credentials ({prov.get('credentials_file')}) are gone: "
                    "given a new password (in the new credentials file)"
                )
                e.steps = ["credential", "password", "force", "enable", "record"]
        elif _credential_in(prov.get("credentials_file"), acct.username):
            e.note = f"finishing an interrupted run: its password is the one in {prov['credentials_file']}"
            e.steps = ["record"]
        elif acct.must_change:
            e.note = (
                f"finishing an interrupted run whose credentials ({prov.get('credentials_file')}) are gone: "
                "given a new password (in the new credentials file)"
            )
            e.steps = ["credential", "password", "force", "record"]
        else:
            e.note = "finishing an interrupted run: the person has already chosen their own password"
            e.steps = ["record"]
    elif e.updates or e.groups:
        e.action = "update"
    signed = is_signed(cfg, state, acct.username)
    _systems(state, e, signed=signed and not acct.disabled)
    if e.action == "unchanged" and (e.grants or e.waiting):
        e.action = "update"
    return e


def _systems(state: State, e: Entry, *, signed: bool) -> None:
    live = {r["system"] for r in approvals.live(state, username=e.username)} if e.action != "create" else set()
    for key in e.person.systems:
        if key in live:
            continue
        (e.grants if signed else e.waiting).append(key)


# -- the changes --


def _changes(cfg: Config, directory: Directory, state: State, intake: Intake) -> None:
    plan = intake.plan
    runner = intake.runner
    assert runner is not None
    pipelined = [e for e in intake.entries if e.steps]
    size = batch_size(directory.flavour)
    for i in range(0, len(pipelined), size):
        batch = pipelined[i : i + size]
        made = sum(1 for e in batch if e.action == "create")
        finished = len(batch) - made
        what = ", ".join(e.username for e in batch[:6]) + (" …" if len(batch) > 6 else "")
        label = " and ".join(
            x for x in (f"create {made} account(s)" if made else "", f"finish {finished}" if finished else "") if x
        )
        plan.add(
            Change(
                "create-accounts",
                f"batch {i // size + 1}",
                f"{label}: {what}",
                run=lambda batch=batch: runner.run_batch(batch),
                details={"usernames": [e.username for e in batch], "run": intake.run_id},
                audit=False,  # each account gets its own audit entry as it is completed
            )
        )
    fl = directory.flavour
    for e in intake.entries:
        if e.action not in ("update", "finish"):
            continue
        if e.updates:
            changes = {attr: [(ldap3.MODIFY_REPLACE, [value])] for attr, value in e.updates.items()}
            plan.add(
                Change(
                    "update-account",
                    e.username,
                    f"update {e.username} ({e.person.display_name}): "
                    + ", ".join(f"{a} -> {v!r}" for a, v in e.updates.items()),
                    run=lambda dn=e.dn, changes=changes: {"result": directory.modify(dn, changes)},
                    details={"changed": dict(e.updates), "line": e.person.line},
                    check=checks.attributes(e.dn, changes),
                )
            )
        if e.action == "update":
            for gdn in e.groups:
                plan.add(
                    Change(
                        "add-member",
                        e.username,
                        f"add {e.username} to {group_name(gdn)} (role {e.person.role})",
                        run=lambda gdn=gdn, dn=e.dn, u=e.username: {"changed": fl.add_member(directory, gdn, dn, u)},
                        details={"group": gdn, "role": e.person.role},
                        check=checks.member(gdn, e.dn, True),
                    )
                )
    for e in intake.entries:
        for key in e.waiting:
            plan.add(_waiting_change(cfg, state, e, key))
        for key in e.grants:
            from .access.grant import grant_changes

            plan.extend(
                grant_changes(
                    cfg,
                    directory,
                    state,
                    e.username,
                    key,
                    e.person.approvers[key],
                    reason=f"September intake (line {e.person.line})",
                    source="import",
                    acct=e.account,
                )
            )
    counts = intake.counts()
    plan.summary = counts
    unchanged = counts["unchanged"]
    if unchanged:
        plan.notes.append(f"{unchanged} person(s) already in the directory as the file says: nothing to do")
    for e in intake.entries:
        if e.note:
            plan.notes.append(f"line {e.person.line} {e.username}: {e.note}")


def batch_size(fl: Any) -> int:
    return PIPELINED_BATCH if fl.pipelined_writes else BATCH


def _waiting_change(cfg: Config, state: State, e: Entry, key: str) -> Change:
    approver = e.person.approvers[key]
    system = cfg.system(key)
    return Change(
        "approve-waiting",
        e.username,
        f"record {system.name} for {e.username} as approved by {approver}, waiting for the AUP signature",
        run=lambda: {
            "approval": approvals.record(
                state,
                username=e.username,
                system=key,
                approver=approver,
                reason=f"September intake (line {e.person.line})",
                source="import",
                status="waiting",
            )
        },
        details={"system": key, "approver": approver, "status": "waiting", "source": "import"},
    )


# -- 3. applying: the credentials file and the pipelined batches --


_PIPE_OP = {ldap3.MODIFY_ADD: pipeline.MODIFY_ADD, ldap3.MODIFY_DELETE: pipeline.MODIFY_DELETE}


class _Runner:
    """Runs the batches. Where the flavour makes an account in one request (OpenLDAP), a batch's adds are
    pipelined on the main connection; otherwise on a few connections of its own (opened on first use), one
    person per connection at a time, so a batch's people are made side by side while each one's steps stay
    in order.

    (Not ldap3's ASYNC strategy: it reads and writes one TLS socket from two threads, which OpenSSL does not
    allow, and it was seen to lose answers under load.)"""

    def __init__(self, cfg: Config, directory: Directory, state: State, intake: Intake) -> None:
        self.cfg = cfg
        self.directory = directory
        self.state = state
        self.intake = intake
        self.fl = directory.flavour
        self.pool: list[Directory] = []
        self.executor: Any = None
        self.one_request = True  # until the flavour or the server says otherwise
        self.groups_read: dict[str, Any] = {}  # role group DN -> its Group (schema, stand-in members)

    def _workers(self, wanted: int) -> list[Directory]:
        from .directory import open_directory

        while len(self.pool) < min(wanted, WORKERS):
            self.pool.append(open_directory(self.cfg))
        return self.pool[: max(1, min(wanted, WORKERS))]

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        for d in self.pool:
            d.close()
        self.pool = []

    def _person(self, d: Directory, e: Entry, password: str | None) -> None:
        """One person's steps, in order: created disabled, password, change at first logon, enabled."""
        fl = d.flavour
        if "add" in e.steps:
            assert e.new_entry is not None
            d.add(e.dn, e.new_entry[0], e.new_entry[1])
        if "password" in e.steps:
            assert password is not None
            fl.set_password(d, e.dn, password)
        # Flagged to change at first logon and enabled in one atomic request, after the password is set.
        changes: dict[str, Any] = {}
        if "force" in e.steps:
            changes.update(fl.force_change_changes())
        if "enable" in e.steps:
            changes.update(fl.enable_changes(_uac_of(e)))
        if changes:
            d.modify(e.dn, changes)

    def _people(self, todo: list[Entry], passwords: dict[str, str], failed: dict[str, str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if not todo:
            return
        workers = self._workers(len(todo))
        chunks = [todo[i :: len(workers)] for i in range(len(workers))]
        lost: list[UnreachableError] = []

        def work(d: Directory, chunk: list[Entry]) -> None:
            for e in chunk:
                if lost:
                    return
                try:
                    self._person(d, e, passwords.get(e.username))
                except UnreachableError as exc:
                    lost.append(exc)
                    failed[e.username] = exc.message
                    return
                except AupctlError as exc:
                    failed[e.username] = exc.message

        if self.executor is None:
            self.executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="intake")
        futures = [self.executor.submit(work, d, c) for d, c in zip(workers, chunks, strict=True)]
        try:
            for f in futures:
                f.result()
        except BaseException:  # Ctrl-C: let each connection finish the person it is on, so none is left half-made
            lost.append(UnreachableError("interrupted"))
            for f in futures:
                f.result()
            raise
        if lost:
            raise lost[0]

    def run_batch(self, batch: list[Entry]) -> dict[str, Any]:
        state = self.state
        failed: dict[str, str] = {}
        passwords: dict[str, str] = {}
        done: list[Entry] = []
        recorded = False

        def live(step: str) -> list[Entry]:
            return [e for e in batch if step in e.steps and e.username not in failed]

        try:
            # 1. the credential lines, fsynced, and the 'creating' marks, before the directory is touched
            fresh = live("credential")
            if fresh:
                creds = self.intake.credentials
                if creds is None:
                    raise RefusedError("new accounts need --credentials-out FILE for their passwords")
                rows = []
                for e in fresh:
                    passwords[e.username] = passphrase.generate()
                    rows.append(
                        [
                            e.username,
                            passwords[e.username],
                            e.person.display_name,
                            e.email,
                            e.person.role,
                            e.person.staff_code,
                            e.dn,
                            now_iso(),
                        ]
                    )
                creds.write(rows)
                with state.transaction() as db:
                    for e in fresh:
                        db.execute(
                            "INSERT INTO provisioned (username, dn, staff_code, credentials_file, created_at, run_id,"
                            " status, role) VALUES (?,?,?,?,?,?,'creating',?) ON CONFLICT(username) DO UPDATE SET"
                            " dn=excluded.dn, staff_code=excluded.staff_code, credentials_file=excluded.credentials_file,"
                            " created_at=excluded.created_at, run_id=excluded.run_id, status='creating',"
                            " role=excluded.role",
                            (
                                e.username,
                                e.dn,
                                e.person.staff_code or None,
                                creds.path,
                                now_iso(),
                                self.intake.run_id,
                                e.person.role,
                            ),
                        )
            for e in live("password"):
                if e.username not in passwords and e.old_password_from:
                    old = _credential_in(e.old_password_from, e.username)
                    if old is None:
                        failed[e.username] = f"the password in {e.old_password_from} can no longer be read"
                    else:
                        passwords[e.username] = old
            todo = [e for e in batch if e.username not in failed]
            done, recorded = self._make(batch, todo, passwords, failed)
        finally:
            # 4. the record: role, 'done', and one audit entry per finished account
            if not recorded:
                self._record(done)
        if failed:
            lines = "; ".join(f"{u}: {why}" for u, why in failed.items())
            raise DirectoryError(f"{len(failed)} account(s) in this batch were not finished: {lines}")
        return {"accounts": [e.username for e in done]}

    def _make(
        self, batch: list[Entry], todo: list[Entry], passwords: dict[str, str], failed: dict[str, str]
    ) -> tuple[list[Entry], bool]:
        """Steps 2 and 3: the accounts, then their groups. Returns who is finished, and whether their record
        (step 4) is already written."""

        def members() -> dict[str, list[Entry]]:
            out: dict[str, list[Entry]] = {}
            for e in batch:
                if e.username not in failed:
                    for g in e.groups:
                        out.setdefault(g, []).append(e)
            return out

        # 2. each person's account: in one add each, all sent together (OpenLDAP), else the long way, side by
        # side on a few connections
        sent = self._send_ready_adds(todo, passwords)
        slow: list[Entry] | None = None
        grouped = False
        if sent is not None and todo:
            # The record is written while the server makes the accounts, in one short transaction committed
            # only when the directory has made the whole batch in one add each and added it to its groups; else
            # it is rolled back (before any long way, which holds no lock) and written for those finished.
            try:
                with self.state.transaction():
                    self._record(todo)
                    slow = self._ready_adds_answered(todo, sent)
                    if slow:
                        raise _NotAll
                    # 3. groups: one request per group for the whole batch
                    grouped = True
                    self._add_groups(members(), failed)
                    if any(e.username in failed for e in todo):
                        raise _NotAll
                return todo, True
            except _NotAll:
                pass
        if slow is None:
            slow = self._ready_adds_answered(todo, sent)
        self._people(slow, passwords, failed)
        if not grouped:
            self._add_groups(members(), failed)  # 3. groups: one request per group for the whole batch
        return [e for e in batch if e.username not in failed], False

    def _send_ready_adds(self, todo: list[Entry], passwords: dict[str, str]) -> _Sent | None:
        """Where the flavour can (OpenLDAP), each new person is created in ONE add that carries the password,
        change-at-first-logon and no lock, so there is never an open account without a password; the batch's
        adds are sent together (answers read by _ready_adds_answered)."""
        if not self.one_request:
            return None
        quick: list[Entry] = []
        ops: list[bytes] = []
        hashes: dict[int, str] = {}  # id(entry) -> the userPassword value sent
        for e in todo:
            if (
                e.new_entry is None
                or e.username not in passwords
                or not {"add", "password", "force", "enable"} <= set(e.steps)
            ):
                continue
            ready = self.fl.ready_user(e.new_entry[1], passwords[e.username])
            if ready is None:
                self.one_request = False
                return None
            quick.append(e)
            hashes[id(e)] = ready["userPassword"]
            ops.append(pipeline.add_request(e.dn, e.new_entry[0], ready))
        if not quick:
            return None
        return quick, pipeline.Pipeline(self.directory).send(ops, "creating accounts"), hashes

    def _ready_adds_answered(self, todo: list[Entry], sent: _Sent | None) -> list[Entry]:
        """The people still to be made the long way: other flavours, finishes, and any add the server refused
        (their own requests then say why)."""
        if sent is None:
            return todo
        quick, pending, sent_values = sent
        results = pending.wait()
        refused = {id(e) for e, r in zip(quick, results, strict=True) if not r.ok}
        # entryAlreadyExists after a dropped connection's resend: the first add went through if the entry holds
        # exactly the value this run sent (a salted hash, unique to it: made whole, in one add); anything else
        # goes the long way. (A plain compare: slapd does not treat it as a login without the ppolicy control.)
        again = [e for e, r in zip(quick, results, strict=True) if r.name == "entryAlreadyExists"]
        if again:
            ops = [pipeline.compare_request(e.dn, "userPassword", sent_values[id(e)]) for e in again]
            answers = pipeline.Pipeline(self.directory).run(ops, "checking accounts already made")
            refused -= {id(e) for e, r in zip(again, answers, strict=True) if r.name == "compareTrue"}
        if any(r.name in ("constraintViolation", "undefinedAttributeType", "objectClassViolation") for r in results):
            self.one_request = False  # e.g. a ppolicy that will not take a hashed password: the long way from now on
        made = {id(e) for e in quick} - refused
        return [e for e in todo if id(e) not in made]

    def _group_adds(self, gdn: str, who: list[Entry]) -> list[tuple[str, str, list[Any]]] | None:
        """(op, attribute, values) that add the batch to one group in its schema (member / uniqueMember DNs,
        memberUid usernames, both for RFC 2307bis; the placeholder out once real members are in); None when
        the group cannot be read (left to add_member, which says why)."""
        schema = self.fl.groups
        group = self.groups_read.get(gdn) or schema.read(self.directory, gdn)  # read once a run, not a batch
        if group is None:
            return None
        self.groups_read[gdn] = group
        return schema.batch_add_ops(group, [(e.dn, e.username) for e in who])

    def _add_groups(self, members: dict[str, list[Entry]], failed: dict[str, str]) -> None:
        """One modify per group for the batch (in the group's own schema); the groups' requests sent together
        where the flavour allows. A group that refuses (a member already there after a re-run) is done again
        member by member, idempotently."""
        if not members:
            return
        if not self.fl.pipelined_writes:
            for gdn, who in members.items():
                self._add_members(gdn, who, failed)
            return
        groups, ops = [], []
        for g in members:
            adds = self._group_adds(g, members[g])
            if adds is None:
                self._add_members(g, members[g], failed, tried=True)
                continue
            groups.append(g)
            ops.append(pipeline.modify_request(g, [(_PIPE_OP[op], attr, vals) for op, attr, vals in adds]))
        results = pipeline.Pipeline(self.directory).run(ops, "adding the new accounts to their groups") if ops else []
        for gdn, r in zip(groups, results, strict=True):
            if not r.ok:
                self._add_members(gdn, members[gdn], failed, tried=True)

    def _add_members(self, gdn: str, who: list[Entry], failed: dict[str, str], *, tried: bool = False) -> None:
        if not tried:
            adds = self._group_adds(gdn, who)
            try:
                if adds is not None:
                    changes: dict[str, list[tuple[str, list[Any]]]] = {}
                    for op, attr, vals in adds:
                        changes.setdefault(attr, []).append((op, vals))
                    self.directory.modify(gdn, changes)
                    return
            except UnreachableError:
                raise
            except AupctlError:
                pass
        # One of them is a member already (a re-run): add them one at a time, idempotently.
        for e in who:
            try:
                self.fl.add_member(self.directory, gdn, e.dn, e.username)
            except UnreachableError:
                raise
            except AupctlError as exc:
                failed[e.username] = f"adding to {group_name(gdn)}: {exc.message}"

    def _record(self, done: list[Entry]) -> None:
        if not done:
            return
        from .records.roles import set_role

        creds = self.intake.credentials
        with self.state.transaction() as db:
            for e in done:
                set_role(self.state, e.username, e.person.role, source="created")
                db.execute("UPDATE provisioned SET status='done' WHERE username=?", (e.username,))
                self.state.audit(
                    "create-account" if e.action == "create" else "finish-account",
                    e.username,
                    {
                        "dn": e.dn,
                        "role": e.person.role,
                        "staff_code": e.person.staff_code,
                        "start_date": e.person.start_date,
                        "groups": e.groups,
                        "line": e.person.line,
                        "run": self.intake.run_id,
                        "credentials_file": creds.path if creds is not None and "credential" in e.steps else None,
                        "note": e.note,
                    },
                )


_Sent = tuple[list[Entry], pipeline.Pending, dict[int, str]]  # the adds sent, their answers to come, values sent


class _NotAll(Exception):
    """Not every account of the batch was finished: roll back the record written ahead."""


def _rdn_key(dn: str) -> str:
    """The first RDN, for comparing names within one OU (escaping kept; case and spaces ignored)."""
    from .directory import first_rdn

    attr, _, value = first_rdn(dn).partition("=")
    return f"{attr.strip().lower()}={' '.join(value.split()).lower()}"


def _uac_of(e: Entry) -> Account:
    """enable_changes needs the account's current flags; a new one was created disabled and normal."""
    from .directory import UAC_ACCOUNTDISABLE, UAC_NORMAL_ACCOUNT

    if e.account is not None:
        return e.account
    return Account(dn=e.dn, username=e.username, uac=UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE)
