"""Flavour: what aupctl asks of a directory, whichever it is. The base class declares every method and
attribute the jobs use; openldap.py and ad.py hold the differences (flavour_for, in session.py, picks one).

Accounts are read into `Account` from plain attribute dicts (no ldap3 Entry objects: they are slow
and heavy for thousands of people).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ldap3.utils.conv import escape_filter_chars

from .account import Account
from .connection import Connection, DirectoryError
from .dn import same_dn
from .groups import GroupSchema
from .policy import PasswordPolicy
from .values import Attrs, as_text

if TYPE_CHECKING:
    from ..config import Config


class Flavour:
    """What both flavours share; subclasses hold the differences."""

    name = ""
    username_attr = ""
    person_filter = ""
    group_filter = ""
    member_attrs = ["member"]  # where a group keeps its members
    user_attributes: list[str] = []
    brief_attributes: list[str] = []
    # What `staff sync` reads of thousands (raw, decoded leanly): brief_attributes, names, mail, staff code
    lean_attributes: list[str] = []

    def __init__(self, cfg: Config) -> None:
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

    def lean_account(self, dn: str, attrs: Attrs) -> Account:
        """An Account from lean_attributes read raw: brief_account's, with the names, mail, staff code and
        must_change (no times: decoding those is most of the cost of `account` for thousands)."""
        got = {k.lower(): v for k, v in attrs.items()}  # one pass, as brief_account
        get = got.get

        def text(name: str) -> str:  # one call a value, not one() then as_text(): thousands of entries
            found = get(name)
            return as_text(found[0]) if found else ""

        return Account(
            dn=dn,
            username=text(self.username_attr.lower()),
            given_name=text("givenname"),
            surname=text("sn"),
            display_name=text("displayname") or text("cn"),
            email=text("mail"),
            staff_code=text("employeenumber"),
            description=text("description"),
            raw=attrs,
            **self._lean_state(got),
        )

    def _lean_state(self, got: Attrs) -> dict[str, Any]:
        """lean_account's flavour-specific fields (disabled, must_change, ...) from lower-cased raw attributes."""
        raise NotImplementedError

    def find_user(self, directory: Connection, username: str) -> Account | None:
        for dn, attrs in directory.search(self.cfg.directory.base_dn, self.user_filter(username), self.user_attributes):
            acct = self.account(dn, attrs)
            self.fill_groups(directory, [acct])
            return acct
        return None

    def iter_accounts(
        self,
        directory: Connection,
        base: str | None = None,
        ldap_filter: str | None = None,
        *,
        with_groups: bool = True,
    ) -> Iterator[Account]:
        base = base or self.cfg.dn(self.cfg.directory.staff_ou)
        batch: list[Account] = []
        for dn, attrs in directory.search(base, ldap_filter or self.person_filter, self.user_attributes):
            batch.append(self.account(dn, attrs))
        if with_groups:
            self.fill_groups(directory, batch)
        yield from batch

    def fill_groups(self, directory: Connection, accounts: list[Account]) -> None:
        """Direct group DNs of each account (AD: memberOf is already there)."""

    def group_members(self, directory: Connection, group_dn: str) -> list[str] | None:
        """Direct member DNs of one group, whatever its schema (groups.py); None if the group does not exist."""
        return self.groups.read_members(directory, group_dn)

    def all_groups(self, directory: Connection) -> dict[str, list[str]]:
        """normalised group DN -> direct member DNs, for every group in the directory (one search of the
        groups, one of the people if any group keeps memberUid usernames)."""
        return self.groups.read_all(directory, self.cfg.directory.base_dn, self.group_filter)

    def effective_members(
        self, directory: Connection, group_dn: str, groups: dict[str, list[str]] | None = None
    ) -> dict[str, str | None] | None:
        """member DN -> None for a direct member, or the DN of the nested group that brought them in."""
        direct = self.group_members(directory, group_dn)
        if direct is None:
            return None
        return {m: None for m in direct}

    def members_of_groups(
        self, directory: Connection, group_dns: list[str], known: dict[str, str] | None = None
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

    def set_password(self, directory: Connection, dn: str, password: str) -> None:
        raise NotImplementedError

    def force_change(self, directory: Connection, dn: str) -> None:
        raise NotImplementedError

    def add_member(self, directory: Connection, group_dn: str, member_dn: str, username: str | None = None) -> bool:
        """Idempotent, in every attribute the group's schema uses (member, uniqueMember, memberUid) in one
        modify; returns True if a change was made. username: the member's, if the caller knows it."""
        return self._change_member(directory, group_dn, member_dn, username, add=True)

    def remove_member(self, directory: Connection, group_dn: str, member_dn: str, username: str | None = None) -> bool:
        """Idempotent (as add_member); the last member of a groupOfNames is replaced by the configured
        placeholder_member, or the removal is refused (RefusedError) with nothing changed."""
        return self._change_member(directory, group_dn, member_dn, username, add=False)

    def _change_member(
        self, directory: Connection, group_dn: str, member_dn: str, username: str | None, *, add: bool
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

    # Does the server rewrite group members' DNs when an account is renamed or moved (AD's linked attributes)?
    members_follow_renames = False

    def relocate_member(
        self, directory: Connection, group_dn: str, old_dn: str, new_dn: str, old_user: str, new_user: str
    ) -> bool:
        """Make group_dn hold the renamed or moved account (new_dn, new_user) where it held old_dn / old_user
        (groups.relocate_changes); idempotent, True if a change was made."""
        schema = self.groups
        for attempt in (1, 2):
            group = schema.read(directory, group_dn)
            if group is None:
                return False
            changes = schema.relocate_changes(group, old_dn, new_dn, old_user, new_user)
            if not changes:
                return False
            try:
                directory.modify(group_dn, changes)
                return True
            except DirectoryError as exc:  # changed under us since the read: read again and redo, once
                if attempt == 2 or exc.result not in ("attributeOrValueExists", "noSuchAttribute"):
                    raise
        return False  # pragma: no cover - the loop returns or raises

    def is_member(self, directory: Connection, group_dn: str, member_dn: str) -> bool:
        members = self.group_members(directory, group_dn) or []
        return any(same_dn(m, member_dn) for m in members)

    # -- intake --
    department_attr = ""  # where the intake writes a person's department

    def force_change_changes(self) -> dict[str, list[tuple[str, list[Any]]]]:
        """The change that force_change makes, to send with others in one request (the intake's enable)."""
        raise NotImplementedError

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

    def find_by_staff_code(self, directory: Connection, staff_code: str) -> list[Account]:
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

    def password_policies(self, directory: Connection) -> list[PasswordPolicy]:
        """Every password policy the directory holds; the default one has default=True."""
        raise NotImplementedError

    def policy_resolver(
        self, directory: Connection, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        """A function (account DN, its attributes) -> the policy that applies to that account."""
        default = next((p for p in policies if p.default), None)
        return lambda dn, attrs: default
