"""`staff import`, stage 2: one plan from what the directory and the state store hold NOW: who is new
(and their username), who exists (and what differs), who an earlier, interrupted run left half-made,
which systems are granted and which wait for an AUP signature. Touches nothing; the batches that make
new accounts are added by runner.build, which runs them.
"""

from __future__ import annotations

import csv
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import ldap3
from ldap3.utils.conv import escape_filter_chars

from ... import checks, credfile, templates, usernames
from ...access.grant import grant_changes
from ...config import EMAIL_FIELDS, Config
from ...credfile import CredentialsFile
from ...directory import (
    Account,
    Directory,
    PosixAccounts,
    as_text,
    first,
    first_rdn,
    group_name,
    normalise_dn,
    same_dn,
)
from ...eligibility import ineligible, is_leaver, is_signed
from ...errors import ConfigError, InputError, RefusedError
from ...plan import Change, Plan
from ...records import approvals, provisioned
from ...roles import RoleInfo
from ...state import State
from .read import Person

CREDENTIAL_COLUMNS = credfile.NEW_STAFF_COLUMNS


class _Closes(Protocol):
    def close(self) -> None: ...


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
    runner: _Closes | None = None  # the runner.Runner that applies the batches (its connections)

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
    return provisioned.by_username(state)


def credential_in(path: str | None, username: str) -> str | None:
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


def plan_intake(
    cfg: Config,
    directory: Directory,
    state: State,
    people: list[Person],
    *,
    credentials_out: str | None = None,
    source: str = "",
    known: tuple[list[Account], set[str]] | None = None,
) -> Intake:
    """The plan for these people, from what the directory and the state store hold now (touches nothing),
    without the batches that make new accounts: runner.build adds those. known: (every person, every
    username taken) when the caller has read them already (`staff sync`), so the directory is read once."""
    fl = directory.flavour
    run_id = uuid.uuid4().hex[:12]
    d = _Known.read(cfg, directory, state, known)
    ou_children = _check_targets(cfg, directory, people)
    row_errors: list[str] = []
    matched = _claim(cfg, d, people, row_errors)
    fl.fill_groups(directory, list(matched.values()))  # one read of every group (OpenLDAP), not one per person
    entries: list[Entry] = []
    posix: Any = None  # PosixAccounts once a new person needs it; False where new accounts are not posixAccount
    for p in people:
        role_groups = [cfg.group_dn(g) for g in cfg.roles[p.role].groups]
        if p.line in matched:
            entries.append(_existing(cfg, directory, state, p, matched[p.line], role_groups, d.made))
            continue
        if any(e.startswith(f"  line {p.line}:") for e in row_errors):
            continue
        username = _new_username(cfg, p, d, row_errors)
        if username is None:
            continue
        if posix is None:
            posix = PosixAccounts.for_run(cfg, directory) or False  # one search, on the first new person
        e = _new_entry(cfg, directory, p, username, ou_children, posix, role_groups)
        old = d.made.get(username.lower())
        if old and old.get("status") == "creating":
            e.note = f"an interrupted run wrote a password for {username} to {old['credentials_file']} but never created the account: that line is void"
        _systems(cfg, state, e, None)
        entries.append(e)
    if row_errors:
        raise InputError(
            f"{source or 'the file'}: {len(row_errors)} row(s) clash with the directory; nothing was changed:\n"
            + "\n".join(row_errors)
        )
    creds = CredentialsFile(credentials_out, CREDENTIAL_COLUMNS) if credentials_out else None
    intake = Intake(Plan(f"import {len(people)} staff from {source or 'the file'}"), entries, run_id, creds)
    _changes(cfg, directory, state, intake)
    return intake


@dataclass
class _Known:
    """What the directory and the state store hold, read once per plan."""

    by_code: dict[str, list[Account]]
    by_user: dict[str, Account]
    taken: set[str]  # every username under base_dn, lower-cased
    stems: set[str]  # every username without its trailing digits
    made: dict[str, dict[str, Any]]  # the provisioned rows, by lower-cased username

    @classmethod
    def read(
        cls, cfg: Config, directory: Directory, state: State, known: tuple[list[Account], set[str]] | None = None
    ) -> _Known:
        accounts, taken = known if known is not None else _read_directory(cfg, directory)
        by_code: dict[str, list[Account]] = {}
        by_user: dict[str, Account] = {}
        for a in accounts:
            by_user[a.username.lower()] = a
            if a.staff_code:
                by_code.setdefault(a.staff_code.lower(), []).append(a)
        stems = {u.rstrip(string.digits) for u in by_user}
        return cls(by_code, by_user, taken, stems, _provisioned(state))


def _check_targets(cfg: Config, directory: Directory, people: list[Person]) -> dict[str, set[str]]:
    """Every role OU and group the file needs must exist; say so before anything changes. Returns the
    names (first RDNs) already in each role OU."""
    problems: list[str] = []
    ou_children: dict[str, set[str]] = {}
    group_ok: dict[str, bool] = {}
    for role_name in sorted({p.role for p in people}):
        role = cfg.roles[role_name]
        ou_dn, ou_key = cfg.role_ou(role_name)  # no ou: new accounts of the role go to staff_ou
        if directory.read(ou_dn, ["1.1"]) is None:
            problems.append(f"{ou_key}: {ou_dn} does not exist in the directory")
            continue
        ou_children[normalise_dn(ou_dn)] = _children_named(
            cfg, directory, ou_dn, [p for p in people if p.role == role_name]
        )
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
    return ou_children


def _children_named(cfg: Config, directory: Directory, ou_dn: str, people: list[Person]) -> set[str]:
    """The first RDNs (as _rdn_key) in ou_dn that a new account of these people could clash with: those
    starting with a person's display name (AD names the entry by it) or username stem (OpenLDAP), rather
    than every child of an OU of thousands."""
    fl = directory.flavour
    probe = fl.new_user(
        username="x", given_name="x", surname="x", display_name="x", email="", staff_code="", ou_dn=ou_dn
    )[0]
    attr = first_rdn(probe).partition("=")[0]
    stems = {p.username or usernames.suffix_filter_value(p.base, cfg.accounts.max_length) for p in people}
    prefixes = sorted({p.display_name for p in people} | stems - {""})
    out: set[str] = set()
    for i in range(0, len(prefixes), 100):
        f = "(|" + "".join(f"({attr}={escape_filter_chars(v)}*)" for v in prefixes[i : i + 100]) + ")"
        out.update(_rdn_key(dn) for dn, _ in directory.search(ou_dn, f, ["1.1"], ldap3.LEVEL, raw=True))
    return out


def _claim(cfg: Config, d: _Known, people: list[Person], row_errors: list[str]) -> dict[int, Account]:
    """line -> the account it is about; two lines matching one account is a row error."""
    claimed: dict[str, int] = {}  # account DN -> the line that matched it
    matched: dict[int, Account] = {}
    for p in people:
        acct = _match(cfg, p, d.by_code, d.by_user, row_errors, d.stems)
        if acct is not None:
            key = normalise_dn(acct.dn)
            if key in claimed:
                row_errors.append(f"  line {p.line}: matches {acct.username}, as line {claimed[key]} does")
                continue
            claimed[key] = p.line
            matched[p.line] = acct
    return matched


def _new_username(cfg: Config, p: Person, d: _Known, row_errors: list[str]) -> str | None:
    """The file's username if free, else the next free variant of the base; None (a row error) if taken."""
    if not p.username:
        return usernames.allocate(p.base, d.taken, cfg.accounts.max_length)
    if p.username in d.taken:
        holder = d.by_user.get(p.username)
        who = f" by {holder.name} ({holder.dn})" if holder else ""
        row_errors.append(f"  line {p.line}: username: {p.username!r} is already taken{who}")
        return None
    d.taken.add(p.username)
    return p.username


def _new_entry(
    cfg: Config,
    directory: Directory,
    p: Person,
    username: str,
    ou_children: dict[str, set[str]],
    posix: Any,
    role_groups: list[str],
) -> Entry:
    """A new person's entry: created disabled, then password, change at first logon, enabled, recorded."""
    fl = directory.flavour
    ou_dn, _ = cfg.role_ou(p.role)
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
    if posix:
        classes = posix.classes(classes)
        attrs.update(posix.attributes(username))
    if p.department:
        attrs[fl.department_attr] = p.department
    e = Entry(p, "create", username, dn, ou_dn, None, (classes, attrs), email, {}, list(role_groups))
    e.steps = ["credential", "add", "password", "force", "enable", "record"]
    return e


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
            old = credential_in(prov.get("credentials_file"), acct.username)
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
        elif credential_in(prov.get("credentials_file"), acct.username):
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
    _systems(cfg, state, e, acct)
    if e.action == "unchanged" and (e.grants or e.waiting):
        e.action = "update"
    return e


def _systems(cfg: Config, state: State, e: Entry, acct: Account | None) -> None:
    """Each system the row nominates, not already held: granted now where the one eligibility rule allows
    it, else recorded as waiting. The role asked about is the file's (read_intake checked it may be
    nominated), and leavers were skipped before this, so what can stand in the way is a disabled account or
    an unsigned AUP, both of which a signature (`aup sign`) later resolves: those wait. A new person
    (acct None) has no account yet and has not signed the AUP: everything waits."""
    live = {r["system"] for r in approvals.live(state, username=e.username)} if acct is not None else set()
    signed = is_signed(cfg, state, acct.username) if acct is not None else False
    role = RoleInfo(e.person.role, "the import file")
    for key in e.person.systems:
        if key in live:
            continue
        allowed = acct is not None and not ineligible(cfg, acct, key, role, signed)
        (e.grants if allowed else e.waiting).append(key)


# -- the changes --


def _changes(cfg: Config, directory: Directory, state: State, intake: Intake) -> None:
    """Every change but the batches that make accounts (runner.build puts those first)."""
    plan = intake.plan
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
                    run=partial(_modify, directory, e.dn, changes),
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
                        run=partial(_add_member, directory, gdn, e.dn, e.username),
                        details={"group": gdn, "role": e.person.role},
                        check=checks.member(gdn, e.dn, True),
                    )
                )
    for e in intake.entries:
        for key in e.waiting:
            plan.add(_waiting_change(cfg, state, e, key))
        for key in e.grants:
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


def _rdn_key(dn: str) -> str:
    """The first RDN, for comparing names within one OU (escaping kept; case and spaces ignored)."""
    attr, _, value = first_rdn(dn).partition("=")
    return f"{attr.strip().lower()}={' '.join(value.split()).lower()}"


def _modify(directory: Directory, dn: str, changes: dict[str, Any]) -> dict[str, Any]:
    return {"result": directory.modify(dn, changes)}


def _add_member(directory: Directory, group: str, dn: str, user: str) -> dict[str, Any]:
    return {"changed": directory.flavour.add_member(directory, group, dn, user)}
