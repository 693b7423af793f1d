"""Every Active Directory / OpenLDAP difference, in one place.

Accounts are read into `Account` from plain attribute dicts (no ldap3 Entry objects: they are slow
and heavy for thousands of people). userAccountControl is always tested with masks, never by value.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ldap3
from ldap3.utils.conv import escape_filter_chars, to_unicode

from .connection import Attrs, DirectoryError, parent_dn

if TYPE_CHECKING:
    from ..config import Config
    from .connection import Directory

# userAccountControl bits (MS-ADTS 2.2.16)
UAC_ACCOUNTDISABLE = 0x0002
UAC_PASSWD_NOTREQD = 0x0020
UAC_ENCRYPTED_TEXT_PWD_ALLOWED = 0x0080
UAC_NORMAL_ACCOUNT = 0x0200
UAC_DONT_EXPIRE_PASSWORD = 0x10000

LOCKED_FOREVER = "000001010000Z"  # ppolicy: locked until an administrator unlocks
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
NEVER = (0, 0x7FFFFFFFFFFFFFFF)


def first(attrs: Attrs, name: str, default: Any = None) -> Any:
    if name in attrs:  # the server usually spells it as asked: skip the case-blind scan
        found = attrs[name]
        return found[0] if found else default
    for key, values in attrs.items():
        if key.lower() == name.lower():
            return values[0] if values else default
    return default


def dn_text(value: Any) -> str:
    """A DN-valued attribute value read raw -> text, decoded as ldap3 would (UTF-8, then its fallbacks)."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return to_unicode(value, from_server=True)


def _one(attrs: Attrs, name: str) -> Any:
    """First value of an attribute, from a dict whose keys are already lower-case (None if absent)."""
    found = attrs.get(name)
    return found[0] if found else None


def values(attrs: Attrs, name: str) -> list[Any]:
    for key, vals in attrs.items():
        if key.lower() == name.lower():
            return list(vals)
    return []


def parse_generalized(value: Any) -> dt.datetime | None:
    """LDAP GeneralizedTime (or a datetime ldap3 already made) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip()
    if text == LOCKED_FOREVER:
        return None
    try:
        base = text.rstrip("Z").split(".")[0].split("+")[0]
        return dt.datetime.strptime(base[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def parse_filetime(value: Any) -> dt.datetime | None:
    """AD's 100-ns intervals since 1601; 0 and max mean 'never'."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return None if value.year in (1601, 9999) else value
    try:
        n = int(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return None
    if n in NEVER or n < 0:
        return None
    return FILETIME_EPOCH + dt.timedelta(microseconds=n // 10)


def ssha(password: str) -> str:
    """{SSHA}: salted SHA-1, the scheme slapd itself uses unless olcPasswordHash says otherwise."""
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode("utf-8") + salt).digest() + salt).decode()


def to_filetime(when: dt.datetime) -> int:
    return int((when - FILETIME_EPOCH).total_seconds() * 10_000_000)


def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


@dataclass
class Account:
    dn: str
    username: str
    given_name: str = ""
    surname: str = ""
    display_name: str = ""
    email: str = ""
    staff_code: str = ""
    description: str = ""
    disabled: bool = False
    must_change: bool = False
    groups: list[str] = field(default_factory=list)  # direct group DNs
    created: dt.datetime | None = None
    password_changed: dt.datetime | None = None
    last_logon: dt.datetime | None = None
    uac: int | None = None  # AD only
    raw: Attrs = field(default_factory=dict, repr=False)

    @property
    def ou(self) -> str:
        return parent_dn(self.dn)

    @property
    def name(self) -> str:
        return self.display_name or " ".join(p for p in (self.given_name, self.surname) if p) or self.username


def same_dn(a: str, b: str) -> bool:
    return normalise_dn(a) == normalise_dn(b)


_DN_SPECIAL = frozenset('\\"+#<>;')
# A DN the fast paths below would only lower-case: every RDN one attr=value, nothing escaped or
# multi-valued, no spaces around ',' or '=' (what servers send): its normal form is dn.lower().
_DN_TOKEN = r'[^=,\\"+#<>;\s](?:[^=,\\"+#<>;]*[^=,\\"+#<>;\s])?'
_DN_PLAIN = re.compile(rf"{_DN_TOKEN}=(?:{_DN_TOKEN})?(?:,{_DN_TOKEN}=(?:{_DN_TOKEN})?)*")


@functools.lru_cache(maxsize=65536)  # the same DNs (OUs, groups, members) come back again and again
def normalise_dn(dn: str) -> str:
    if _DN_PLAIN.fullmatch(dn):  # one regex match: half the split below, for the 10,000s of a review
        return dn.lower()
    # Fast path for DNs with nothing escaped or multi-valued (nearly all): split on commas and '=' is
    # exact, and ldap3's full parser costs ~40 us a DN, which a 10,000-member review pays many times.
    if not _DN_SPECIAL.intersection(dn):
        parts = []
        for rdn in dn.split(","):
            attr, sep, value = rdn.partition("=")
            if not sep:
                break
            parts.append(f"{attr.strip().lower()}={value.strip().lower()}")
        else:
            return ",".join(parts)
    try:
        return _canonical_dn(dn)
    except Exception:  # noqa: BLE001 - odd DNs still compare as text
        return dn.lower().replace(", ", ",")


_DN_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)", re.S)


def _unescape_value(value: str) -> str:
    """An RDN value as the characters it stands for: servers send `\\2C` where a person wrote `\\,`, and
    `\\C3\\AB` for `ë`; both must compare equal to the plain form."""
    raw = bytearray()
    pos = 0
    for m in _DN_ESCAPE.finditer(value):
        raw += value[pos : m.start()].encode("utf-8")
        raw += bytes([int(m.group(1), 16)]) if m.group(1) else m.group(2).encode("utf-8")
        pos = m.end()
    raw += value[pos:].encode("utf-8")
    return raw.decode("utf-8", errors="replace")


def _canonical_dn(dn: str) -> str:
    """Each RDN's values unescaped, lower-cased and escaped one way; multi-valued RDNs sorted."""
    rdns: list[str] = []
    current: list[str] = []
    for attr, value, sep in ldap3.utils.dn.parse_dn(ldap3.utils.dn.safe_dn(dn)):
        plain = _unescape_value(value).strip().lower()
        current.append(f"{attr.strip().lower()}={ldap3.utils.dn.escape_rdn(plain)}")
        if sep != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    return ",".join(rdns)


def is_under(dn: str, base: str) -> bool:
    d, b = normalise_dn(dn), normalise_dn(base)
    return d == b or d.endswith("," + b)


# -- password policies (password audit, policy 6.2) --
AD_NEVER_AGE = -0x8000000000000000  # maxPwdAge "never" (and 0)
AD_PWD_PROPERTY_COMPLEX = 0x1
AD_PWD_PROPERTY_STORE_CLEARTEXT = 0x10  # DOMAIN_PASSWORD_STORE_CLEARTEXT: reversible encryption for all
PSO_CONTAINER = "CN=Password Settings Container,CN=System"


@dataclass(frozen=True)
class PasswordPolicy:
    """A password policy as the directory enforces it: AD's domain policy or a fine-grained policy (PSO),
    or an OpenLDAP ppolicy entry. 0 means 'none' for min_length, max_age_days and lockout_threshold."""

    name: str
    dn: str
    kind: str  # "domain", "fine-grained", "ppolicy"
    min_length: int = 0
    max_age_days: int = 0
    lockout_threshold: int = 0
    reversible: bool = False
    precedence: int | None = None  # fine-grained: lower wins
    applies_to: tuple[str, ...] = ()  # fine-grained: user and group DNs (msDS-PSOAppliesTo)
    default: bool = False  # the one that applies when nothing more specific does


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(as_text(value).strip() or default)
    except ValueError:
        return default


def _interval_days(value: Any) -> int:
    """AD's negative 100-ns intervals (maxPwdAge) -> whole days; 0 for 'never'."""
    n = _int(value)
    if n in (0, AD_NEVER_AGE) or n > 0 and n == 0x7FFFFFFFFFFFFFFF:
        return 0
    return abs(n) // (10_000_000 * 86_400)


def _true(value: Any) -> bool:
    return as_text(value).strip().upper() == "TRUE"


class Flavour:
    """What both flavours share; subclasses hold the differences."""

    name = ""
    username_attr = ""
    person_filter = ""
    group_filter = ""
    member_attrs = ["member"]  # where a group keeps its members
    user_attributes: list[str] = []
    brief_attributes: list[str] = []

    def __init__(self, cfg: Config) -> None:
        from .groups import GroupSchema

        self.cfg = cfg
        self.groups = GroupSchema(self)  # every group's membership is read and written through it

    # -- filters --
    def user_filter(self, username: str) -> str:
        return f"(&{self.person_filter}({self.username_attr}={escape_filter_chars(username)}))"

    def users_filter(self, usernames: Iterable[str]) -> str:
        parts = "".join(f"({self.username_attr}={escape_filter_chars(u)})" for u in usernames)
        return f"(&{self.person_filter}(|{parts}))"

    # -- reading --
    def account(self, dn: str, attrs: Attrs) -> Account:
        raise NotImplementedError

    def brief_account(self, dn: str, attrs: Attrs) -> Account:
        """An Account from brief_attributes read raw (bytes values): only what a review of thousands
        needs (username, name, disabled, and on AD direct groups)."""
        return self.account(dn, attrs)

    def find_user(self, directory: Directory, username: str) -> Account | None:
        for dn, attrs in directory.search(self.cfg.directory.base_dn, self.user_filter(username), self.user_attributes):
            acct = self.account(dn, attrs)
            self.fill_groups(directory, [acct])
            return acct
        return None

    def iter_accounts(
        self, directory: Directory, base: str | None = None, ldap_filter: str | None = None, *, with_groups: bool = True
    ) -> Iterator[Account]:
        base = base or self.cfg.dn(self.cfg.directory.staff_ou)
        batch: list[Account] = []
        for dn, attrs in directory.search(base, ldap_filter or self.person_filter, self.user_attributes):
            batch.append(self.account(dn, attrs))
        if with_groups:
            self.fill_groups(directory, batch)
        yield from batch

    def fill_groups(self, directory: Directory, accounts: list[Account]) -> None:
        """Direct group DNs of each account (AD: memberOf is already there)."""

    def group_members(self, directory: Directory, group_dn: str) -> list[str] | None:
        """Direct member DNs of one group, whatever its schema (groups.py); None if the group does not exist."""
        return self.groups.read_members(directory, group_dn)

    def all_groups(self, directory: Directory) -> dict[str, list[str]]:
        """normalised group DN -> direct member DNs, for every group in the directory (one search of the
        groups, one of the people if any group keeps memberUid usernames)."""
        return self.groups.read_all(directory, self.cfg.directory.base_dn, self.group_filter)

    def effective_members(
        self, directory: Directory, group_dn: str, groups: dict[str, list[str]] | None = None
    ) -> dict[str, str | None] | None:
        """member DN -> None for a direct member, or the DN of the nested group that brought them in."""
        direct = self.group_members(directory, group_dn)
        if direct is None:
            return None
        return {m: None for m in direct}

    def members_of_groups(
        self, directory: Directory, group_dns: list[str], known: dict[str, str] | None = None
    ) -> dict[str, dict[str, str | None] | None]:
        """Effective members of several groups (as effective_members), reading each group once and resolving
        every memberUid of them all in one search (known: username (lower) -> DN already read)."""
        schema = self.groups
        read = {g: schema.read(directory, g) for g in group_dns}
        uids = {u for grp in read.values() if grp for u in grp.values.get("memberUid", ())}
        by_uid = schema.resolve(directory, uids, known)
        return {g: None if grp is None else dict.fromkeys(schema.members(grp, by_uid)) for g, grp in read.items()}

    # -- changing --
    def disable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        raise NotImplementedError

    def enable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        raise NotImplementedError

    def set_password(self, directory: Directory, dn: str, password: str) -> None:
        raise NotImplementedError

    def force_change(self, directory: Directory, dn: str) -> None:
        raise NotImplementedError

    def add_member(self, directory: Directory, group_dn: str, member_dn: str, username: str | None = None) -> bool:
        """Idempotent, in every attribute the group's schema uses (member, uniqueMember, memberUid) in one
        modify; returns True if a change was made. username: the member's, if the caller knows it."""
        return self._change_member(directory, group_dn, member_dn, username, add=True)

    def remove_member(self, directory: Directory, group_dn: str, member_dn: str, username: str | None = None) -> bool:
        """Idempotent (as add_member); the last member of a groupOfNames is replaced by the configured
        placeholder_member, or the removal is refused (RefusedError) with nothing changed."""
        return self._change_member(directory, group_dn, member_dn, username, add=False)

    def _change_member(
        self, directory: Directory, group_dn: str, member_dn: str, username: str | None, *, add: bool
    ) -> bool:
        schema = self.groups
        for attempt in (1, 2):
            group = schema.read(directory, group_dn)
            if group is None:
                raise DirectoryError(
                    f"cannot change {group_dn}: noSuchObject (the group does not exist)", result="noSuchObject"
                )
            if group.posix and username is None:
                username = schema.username_of(directory, member_dn)
            compute = schema.add_changes if add else schema.remove_changes
            changes = compute(group, member_dn, username)
            if not changes:
                return False
            try:
                directory.modify(group_dn, changes)
                return True
            except DirectoryError as exc:
                # Changed under us since the read (a value there or gone): read again and redo, once.
                if attempt == 2 or exc.result not in ("attributeOrValueExists", "noSuchAttribute"):
                    raise
        return False  # pragma: no cover - the loop returns or raises

    def is_member(self, directory: Directory, group_dn: str, member_dn: str) -> bool:
        members = self.group_members(directory, group_dn) or []
        return any(same_dn(m, member_dn) for m in members)

    def new_user(
        self,
        *,
        username: str,
        given_name: str,
        surname: str,
        display_name: str,
        email: str,
        staff_code: str,
        ou_dn: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, list[str], dict]:
        """(dn, objectClasses, attributes) for a new account, created without a password and disabled."""
        raise NotImplementedError

    # -- leavers --
    # What withdrawal changes (kept raw in the leaver snapshot), and which of those `leaver restore`
    # writes back as they were (the disable attribute is put right by enable_changes instead).
    withdrawal_attributes: list[str] = ["description"]
    restorable_attributes: list[str] = ["description"]
    password_change_unlocks = False  # does setting a password clear the disable attribute?

    pipelined_writes = False  # may the intake send independent writes together on one connection?

    def ready_user(self, attributes: dict[str, Any], password: str) -> dict[str, Any] | None:
        """new_user's attributes for an account created in ONE add with its first password, flagged to change
        it at first logon and enabled; None where that cannot be done in one request (created disabled, then
        password, then enabled)."""
        return None

    def find_by_staff_code(self, directory: Directory, staff_code: str) -> list[Account]:
        """Every account with this employeeNumber (more than one is the caller's problem to report)."""
        f = f"(&{self.person_filter}(employeeNumber={escape_filter_chars(staff_code)}))"
        found = [
            self.account(dn, attrs)
            for dn, attrs in directory.search(self.cfg.directory.base_dn, f, self.user_attributes)
        ]
        self.fill_groups(directory, found)
        return found

    def expiry_changes(self, current: str | None, on: dt.date) -> dict[str, list[tuple[str, list[Any]]]]:
        """Changes that make the account expire at the end of `on`; {} where the flavour has no expiry."""
        return {}

    # -- password policy (password audit) --
    logon_lag_days = 0  # how far the last-logon attribute may lag behind the real last logon

    def password_attributes(self) -> list[str]:
        """What the password audit reads per account: the usual attributes and any the flavour adds."""
        return list(self.user_attributes)

    def password_policies(self, directory: Directory) -> list[PasswordPolicy]:
        """Every password policy the directory holds; the default one has default=True."""
        raise NotImplementedError

    def policy_resolver(
        self, directory: Directory, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        """A function (account DN, its attributes) -> the policy that applies to that account."""
        default = next((p for p in policies if p.default), None)
        return lambda dn, attrs: default


class OpenLDAP(Flavour):
    name = "openldap"
    username_attr = "uid"
    person_filter = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
    group_filter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    member_attrs = ["member", "uniqueMember", "memberUid"]
    # What a review of thousands needs (name, enabled, DN): fewer attributes to decode than user_attributes
    brief_attributes = ["uid", "cn", "displayName", "pwdAccountLockedTime"]
    user_attributes = [
        "uid",
        "givenName",
        "sn",
        "cn",
        "displayName",
        "mail",
        "employeeNumber",
        "description",
        "pwdAccountLockedTime",
        "pwdReset",
        "createTimestamp",
        "pwdChangedTime",
        "pwdLastSuccess",
        "authTimestamp",
        "objectClass",
    ]

    def account(self, dn: str, attrs: Attrs) -> Account:
        locked = as_text(first(attrs, "pwdAccountLockedTime", ""))
        must_change = as_text(first(attrs, "pwdReset", "")).upper() == "TRUE"
        created = parse_generalized(first(attrs, "createTimestamp"))
        changed = parse_generalized(first(attrs, "pwdChangedTime"))
        if changed is None and must_change:
            # ppolicy stamps pwdChangedTime on every password change but, without password aging, not on an add:
            # a first password given in the add (the intake's) dates from the entry's creation
            changed = created
        return Account(
            dn=dn,
            username=as_text(first(attrs, "uid", "")),
            given_name=as_text(first(attrs, "givenName", "")),
            surname=as_text(first(attrs, "sn", "")),
            display_name=as_text(first(attrs, "displayName", "") or first(attrs, "cn", "")),
            email=as_text(first(attrs, "mail", "")),
            staff_code=as_text(first(attrs, "employeeNumber", "")),
            description=as_text(first(attrs, "description", "")),
            disabled=bool(locked),
            must_change=must_change,
            created=created,
            password_changed=changed,
            last_logon=parse_generalized(first(attrs, "pwdLastSuccess") or first(attrs, "authTimestamp")),
            raw=attrs,
        )

    def brief_account(self, dn: str, attrs: Attrs) -> Account:
        got = {k.lower(): v for k, v in attrs.items()}  # one pass, not a case-blind scan per absent attribute
        return Account(
            dn=dn,
            username=as_text(_one(got, "uid")),
            display_name=as_text(_one(got, "displayname") or _one(got, "cn")),
            disabled=bool(_one(got, "pwdaccountlockedtime")),
            raw=attrs,
        )

    def fill_groups(self, directory: Directory, accounts: list[Account]) -> None:
        """Direct groups of each account, of every schema: member / uniqueMember by DN, memberUid by username."""
        if not accounts:
            return
        if len(accounts) <= 5:
            with_uid = self._unique_members_with_uid(directory)
            for acct in accounts:
                dn = escape_filter_chars(acct.dn)
                by_uid = f"(memberUid={escape_filter_chars(acct.username)})" if acct.username else ""
                f = f"(&{self.group_filter}(|(member={dn})(uniqueMember={dn}){by_uid}))"
                acct.groups = [gdn for gdn, _ in directory.search(self.cfg.directory.base_dn, f, [])]
                own, seen = normalise_dn(acct.dn), {normalise_dn(g) for g in acct.groups}
                acct.groups += [g for g, dns in with_uid.items() if own in dns and normalise_dn(g) not in seen]
            return
        # Many accounts: read every group once and invert, instead of one search per person.
        from .groups import READ_ATTRS

        by_dn = {normalise_dn(a.dn): a for a in accounts}
        by_user = {a.username.lower(): a for a in accounts if a.username}
        schema = self.groups
        for gdn, attrs in directory.search(self.cfg.directory.base_dn, self.group_filter, READ_ATTRS, raw=True):
            group = schema.parse(gdn, attrs)
            found = {id(a): a for a in map(by_dn.get, map(normalise_dn, schema.dn_members(group))) if a}
            for u in group.values.get("memberUid", ()):
                acct = by_user.get(u.lower())
                if acct is not None:
                    found[id(acct)] = acct
            for acct in found.values():
                acct.groups.append(gdn)

    def _unique_members_with_uid(self, directory: Directory) -> dict[str, set[str]]:
        """groupOfUniqueNames DN -> its members' normalised DNs, for the groups where some value carries a
        #'..'B UID: slapd's (uniqueMember=DN) does not match such a value, so they are read and matched here."""
        out: dict[str, set[str]] = {}
        f = "(&(objectClass=groupOfUniqueNames)(uniqueMember=*))"
        for gdn, attrs in directory.search(self.cfg.directory.base_dn, f, ["uniqueMember"], raw=True):
            vals = [dn_text(v) for v in values(attrs, "uniqueMember")]
            if any("#'" in v for v in vals):
                out[gdn] = {normalise_dn(v.split("#'", 1)[0]) for v in vals}
        return out

    def disable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [LOCKED_FOREVER])]}

    def enable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [])]}

    withdrawal_attributes = ["description", "pwdAccountLockedTime"]
    restorable_attributes = ["description"]
    # ppolicy deletes pwdAccountLockedTime when an administrator sets a password: lock after setting it.
    password_change_unlocks = True

    def set_password(self, directory: Directory, dn: str, password: str) -> None:
        directory.password_modify(dn, password)

    def force_change(self, directory: Directory, dn: str) -> None:
        directory.modify(dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})

    # -- intake --
    department_attr = "departmentNumber"

    def force_change_changes(self) -> dict[str, list[tuple[str, list[Any]]]]:
        """The change that force_change makes, to send with others in one request (the intake's enable)."""
        return {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]}

    pipelined_writes = True  # slapd answers pipelined requests on one connection (measured: bench/import.py)

    def ready_user(self, attributes: dict[str, Any], password: str) -> dict[str, Any] | None:
        # The password salted and hashed here ({SSHA}, as an LDIF for ldapadd carries it), so it is never
        # stored in clear whether or not the server's ppolicy hashes cleartext; it is a first password only
        # (pwdReset: the person chooses their own, hashed by the server's scheme, at first logon). Never
        # locked: it is born with its password.
        ready = {k: v for k, v in attributes.items() if k != "pwdAccountLockedTime"}
        ready["userPassword"] = ssha(password)
        ready["pwdReset"] = "TRUE"
        return ready

    def new_user(
        self,
        *,
        username: str,
        given_name: str,
        surname: str,
        display_name: str,
        email: str,
        staff_code: str,
        ou_dn: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, list[str], dict]:
        from ldap3.utils.dn import escape_rdn

        dn = f"uid={escape_rdn(username)},{ou_dn}"
        attrs: dict[str, Any] = {
            "uid": username,
            "givenName": given_name,
            "sn": surname,
            "cn": display_name,
            "displayName": display_name,
            # Created locked: it gets a password, then is unlocked (never an open account without one).
            "pwdAccountLockedTime": LOCKED_FOREVER,
        }
        if email:
            attrs["mail"] = email
        if staff_code:
            attrs["employeeNumber"] = staff_code
        attrs.update(extra or {})
        return dn, ["inetOrgPerson"], attrs

    # -- password policy (ppolicy overlay) --
    _ppolicy_attrs = ["cn", "pwdMinLength", "pwdMaxAge", "pwdMaxFailure", "pwdLockout", "pwdCheckQuality"]

    def password_attributes(self) -> list[str]:
        # userPassword: the audit tests readable hashes; pwdPolicySubentry: a per-account policy
        return [*self.user_attributes, "userPassword", "pwdPolicySubentry"]

    def password_policies(self, directory: Directory) -> list[PasswordPolicy]:
        """pwdPolicy entries under the base. The default is the one slapd's config names (when the bind may
        read cn=config), else the one called cn=default, else the only one there is."""
        found: list[PasswordPolicy] = []
        for dn, attrs in directory.search(self.cfg.directory.base_dn, "(objectClass=pwdPolicy)", self._ppolicy_attrs):
            lockout = _true(first(attrs, "pwdLockout")) and _int(first(attrs, "pwdMaxFailure")) > 0
            found.append(
                PasswordPolicy(
                    name=as_text(first(attrs, "cn", "")) or dn,
                    dn=dn,
                    kind="ppolicy",
                    min_length=_int(first(attrs, "pwdMinLength")),
                    max_age_days=_int(first(attrs, "pwdMaxAge")) // 86_400,
                    lockout_threshold=_int(first(attrs, "pwdMaxFailure")) if lockout else 0,
                )
            )
        configured = self._ppolicy_default_dn(directory)
        default = None
        if configured:
            default = next((p for p in found if same_dn(p.dn, configured)), None)
        if default is None:
            named = [p for p in found if p.name.lower() == "default"]
            default = named[0] if len(named) == 1 else (found[0] if len(found) == 1 else None)
        return [dataclasses.replace(p, default=p is default) for p in found]

    def _ppolicy_default_dn(self, directory: Directory) -> str | None:
        """olcPPolicyDefault from cn=config, if this bind may read it (most may not: then None)."""
        try:
            for _, attrs in directory.search("cn=config", "(olcPPolicyDefault=*)", ["olcPPolicyDefault"]):
                return as_text(first(attrs, "olcPPolicyDefault")) or None
        except DirectoryError:
            return None
        return None

    def policy_resolver(
        self, directory: Directory, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        by_dn = {normalise_dn(p.dn): p for p in policies}
        default = next((p for p in policies if p.default), None)

        def resolve(dn: str, attrs: Attrs) -> PasswordPolicy | None:
            own = first(attrs, "pwdPolicySubentry")
            if own:
                return by_dn.get(normalise_dn(as_text(own)), default)
            return default

        return resolve


class ActiveDirectory(Flavour):
    name = "ad"
    username_attr = "sAMAccountName"
    person_filter = "(&(objectCategory=person)(objectClass=user))"
    group_filter = "(objectClass=group)"
    brief_attributes = ["sAMAccountName", "cn", "displayName", "userAccountControl", "memberOf"]
    user_attributes = [
        "sAMAccountName",
        "givenName",
        "sn",
        "cn",
        "displayName",
        "mail",
        "employeeNumber",
        "description",
        "userAccountControl",
        "whenCreated",
        "pwdLastSet",
        "lastLogonTimestamp",
        "memberOf",
        "userPrincipalName",
        "accountExpires",
        "primaryGroupID",
    ]

    def account(self, dn: str, attrs: Attrs) -> Account:
        uac = int(first(attrs, "userAccountControl", 0) or 0)
        pwd_last_set_raw = first(attrs, "pwdLastSet")
        return Account(
            dn=dn,
            username=as_text(first(attrs, "sAMAccountName", "")),
            given_name=as_text(first(attrs, "givenName", "")),
            surname=as_text(first(attrs, "sn", "")),
            display_name=as_text(first(attrs, "displayName", "") or first(attrs, "cn", "")),
            email=as_text(first(attrs, "mail", "")),
            staff_code=as_text(first(attrs, "employeeNumber", "")),
            description=as_text(first(attrs, "description", "")),
            disabled=bool(uac & UAC_ACCOUNTDISABLE),
            must_change=str(pwd_last_set_raw) == "0",
            groups=[as_text(g) for g in values(attrs, "memberOf")],
            created=parse_generalized(first(attrs, "whenCreated")),
            password_changed=parse_filetime(pwd_last_set_raw),
            last_logon=parse_filetime(first(attrs, "lastLogonTimestamp")),
            uac=uac,
            raw=attrs,
        )

    def brief_account(self, dn: str, attrs: Attrs) -> Account:
        got = {k.lower(): v for k, v in attrs.items()}  # one pass, not a case-blind scan per absent attribute
        uac = int(_one(got, "useraccountcontrol") or 0)  # int() takes the raw b"514" too
        return Account(
            dn=dn,
            username=as_text(_one(got, "samaccountname")),
            display_name=as_text(_one(got, "displayname") or _one(got, "cn")),
            disabled=bool(uac & UAC_ACCOUNTDISABLE),
            groups=[dn_text(g) for g in got.get("memberof") or ()],
            uac=uac,
            raw=attrs,
        )

    def effective_members(
        self, directory: Directory, group_dn: str, groups: dict[str, list[str]] | None = None
    ) -> dict[str, str | None] | None:
        """Nested groups count on AD; say which group brought each person in (first one found)."""
        direct = self.group_members(directory, group_dn)
        if direct is None:
            return None
        groups = groups if groups is not None else self.all_groups(directory)
        out: dict[str, str | None] = {}
        seen = {normalise_dn(group_dn)}
        queue: list[tuple[str, str | None]] = [(m, None) for m in direct]
        while queue:
            member, via = queue.pop(0)
            key = normalise_dn(member)
            if key in groups:
                if key in seen:
                    continue
                seen.add(key)
                queue.extend((m, via or member) for m in groups[key])
            elif member not in out:
                out[member] = via
        return out

    def members_of_groups(
        self, directory: Directory, group_dns: list[str], known: dict[str, str] | None = None
    ) -> dict[str, dict[str, str | None] | None]:
        """One search of every group (auto_range follows ranged reads of groups over 1,500 members), then
        nesting resolved in memory: no group is read twice however many systems share it."""
        groups = self.all_groups(directory)
        out: dict[str, dict[str, str | None] | None] = {}
        for gdn in group_dns:
            top = normalise_dn(gdn)
            if top not in groups:
                out[gdn] = None
                continue
            found: dict[str, str | None] = {}
            seen = {top}
            queue: list[tuple[str, str | None]] = [(m, None) for m in groups[top]]
            while queue:
                member, via = queue.pop(0)
                key = normalise_dn(member)
                if key in groups:
                    if key not in seen:
                        seen.add(key)
                        queue.extend((m, via or member) for m in groups[key])
                elif member not in found:
                    found[member] = via
            out[gdn] = found
        return out

    def disable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {
            "userAccountControl": [(ldap3.MODIFY_REPLACE, [str((acct.uac or UAC_NORMAL_ACCOUNT) | UAC_ACCOUNTDISABLE)])]
        }

    def enable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        uac = (acct.uac or UAC_NORMAL_ACCOUNT) & ~UAC_ACCOUNTDISABLE & ~UAC_PASSWD_NOTREQD
        return {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(uac | UAC_NORMAL_ACCOUNT)])]}

    # The primary group (primaryGroupID, usually Domain Users) is not in memberOf, so a leaver keeps it.
    withdrawal_attributes = ["description", "userAccountControl", "accountExpires"]
    restorable_attributes = ["description", "accountExpires"]

    def expiry_changes(self, current: str | None, on: dt.date) -> dict[str, list[tuple[str, list[Any]]]]:
        # Like "End of: <date>" in Active Directory Users and Computers: midnight after the leaving day.
        end = dt.datetime.combine(on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        value = str(to_filetime(end))
        if current == value:
            return {}
        return {"accountExpires": [(ldap3.MODIFY_REPLACE, [value])]}

    def set_password(self, directory: Directory, dn: str, password: str) -> None:
        encoded = f'"{password}"'.encode("utf-16-le")  # AD takes a quoted UTF-16LE string, over TLS only
        directory.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [encoded])]})

    def force_change(self, directory: Directory, dn: str) -> None:
        directory.modify(dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})

    # -- intake --
    department_attr = "department"

    def force_change_changes(self) -> dict[str, list[tuple[str, list[Any]]]]:
        """The change that force_change makes, to send with others in one request (the intake's enable)."""
        return {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]}

    def new_user(
        self,
        *,
        username: str,
        given_name: str,
        surname: str,
        display_name: str,
        email: str,
        staff_code: str,
        ou_dn: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, list[str], dict]:
        from ldap3.utils.dn import escape_rdn

        dn = f"CN={escape_rdn(display_name)},{ou_dn}"
        attrs: dict[str, Any] = {
            "sAMAccountName": username,
            "givenName": given_name,
            "sn": surname,
            "displayName": display_name,
            "userAccountControl": str(UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE),
        }
        # The UPN people sign in with: accounts.upn_suffix, else the domain's DNS name (DC=school,DC=example).
        suffix = self.cfg.accounts.upn_suffix or ".".join(
            part.split("=", 1)[1].strip()
            for part in self.cfg.directory.base_dn.split(",")
            if part.strip().lower().startswith("dc=")
        )
        if suffix:
            attrs["userPrincipalName"] = f"{username}@{suffix.lstrip('@')}"
        if email:
            attrs["mail"] = email
        if staff_code:
            attrs["employeeNumber"] = staff_code
        attrs.update(extra or {})
        return dn, ["top", "person", "organizationalPerson", "user"], attrs

    # -- password policy: the domain's, and fine-grained policies (PSOs) --
    # lastLogonTimestamp is only rewritten when older than ms-DS-Logon-Time-Sync-Interval (14 days less up to
    # 5 random days), so it may be up to 14 days behind the real last logon.
    logon_lag_days = 14

    _pso_attrs = [
        "cn",
        "msDS-MinimumPasswordLength",
        "msDS-MaximumPasswordAge",
        "msDS-LockoutThreshold",
        "msDS-PasswordReversibleEncryptionEnabled",
        "msDS-PasswordSettingsPrecedence",
        "msDS-PSOAppliesTo",
    ]

    def password_policies(self, directory: Directory) -> list[PasswordPolicy]:
        """The domain policy (on the domain root) and each msDS-PasswordSettings object."""
        base = self.cfg.directory.base_dn
        root = directory.read(base, ["minPwdLength", "maxPwdAge", "pwdProperties", "lockoutThreshold"]) or {}
        out = [
            PasswordPolicy(
                name="domain policy",
                dn=base,
                kind="domain",
                min_length=_int(first(root, "minPwdLength")),
                max_age_days=_interval_days(first(root, "maxPwdAge")),
                lockout_threshold=_int(first(root, "lockoutThreshold")),
                reversible=bool(_int(first(root, "pwdProperties")) & AD_PWD_PROPERTY_STORE_CLEARTEXT),
                default=True,
            )
        ]
        container = f"{PSO_CONTAINER},{base}"
        for dn, attrs in directory.search(container, "(objectClass=msDS-PasswordSettings)", self._pso_attrs):
            out.append(
                PasswordPolicy(
                    name=as_text(first(attrs, "cn", "")) or dn,
                    dn=dn,
                    kind="fine-grained",
                    min_length=_int(first(attrs, "msDS-MinimumPasswordLength")),
                    max_age_days=_interval_days(first(attrs, "msDS-MaximumPasswordAge")),
                    lockout_threshold=_int(first(attrs, "msDS-LockoutThreshold")),
                    reversible=_true(first(attrs, "msDS-PasswordReversibleEncryptionEnabled")),
                    precedence=_int(first(attrs, "msDS-PasswordSettingsPrecedence"), 0),
                    applies_to=tuple(as_text(v) for v in values(attrs, "msDS-PSOAppliesTo")),
                )
            )
        return out

    def policy_resolver(
        self, directory: Directory, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        """AD's rule: a PSO applied to the user beats any applied through a group (nested groups count);
        among several, the lowest precedence wins; with none, the domain policy applies."""
        default = next((p for p in policies if p.default), None)
        psos = [p for p in policies if p.kind == "fine-grained" and p.applies_to]
        if not psos:
            return lambda dn, attrs: default
        groups = self.all_groups(directory)
        direct: dict[str, PasswordPolicy] = {}
        via_group: dict[str, PasswordPolicy] = {}

        def better(current: PasswordPolicy | None, new: PasswordPolicy) -> bool:
            return current is None or (new.precedence or 0) < (current.precedence or 0)

        for pso in psos:
            for target in pso.applies_to:
                key = normalise_dn(target)
                if key not in groups:
                    if better(direct.get(key), pso):
                        direct[key] = pso
                    continue
                seen, queue = {key}, list(groups[key])
                while queue:
                    member = normalise_dn(queue.pop())
                    if member in groups:
                        if member not in seen:
                            seen.add(member)
                            queue.extend(groups[member])
                    elif better(via_group.get(member), pso):
                        via_group[member] = pso

        def resolve(dn: str, attrs: Attrs) -> PasswordPolicy | None:
            key = normalise_dn(dn)
            return direct.get(key) or via_group.get(key) or default

        return resolve


def flavour_for(cfg: Config) -> Flavour:
    return ActiveDirectory(cfg) if cfg.directory.flavour == "ad" else OpenLDAP(cfg)
