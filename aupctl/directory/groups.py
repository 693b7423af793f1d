"""Group schemas: how a group keeps its members, decided per group from its objectClass.

- groupOfNames (and AD's group): `member`, DNs.
- groupOfUniqueNames: `uniqueMember`, DNs that may carry a `#'0101'B` UID suffix (not part of the DN).
- posixGroup (RFC 2307): `memberUid`, usernames.
- RFC 2307bis: groupOfNames or groupOfUniqueNames with posixGroup: both, kept in step on every add and remove.

Members are read as account DNs: memberUid usernames are resolved through one search of the people (a
username no account holds is kept as the pseudo-DN `memberUid=NAME`, so it can be reported and removed).
groupOfNames and groupOfUniqueNames must keep one member: the last one is replaced, in the same modify, by
`[directory] placeholder_member`; without it the removal is refused before anything changes. The group's
own DN (what older aupctl and the sandbox put in an empty group) and the placeholder are never members.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import ldap3
from ldap3.utils.dn import escape_rdn

from ..errors import RefusedError
from .dn import normalise_dn
from .values import Attrs, as_text, dn_text, first

if TYPE_CHECKING:
    from ..config import Config
    from .connection import Connection

READ_ATTRS = ["objectClass", "member", "uniqueMember", "memberUid"]
UNRESOLVED = "memberuid="  # normalised prefix of the pseudo-DN of a memberUid no account holds
_OR_BATCH = 100  # usernames OR'd into one filter; more than that: one search of every person instead

Changes = dict[str, list[tuple[str, list[Any]]]]


class FlavourLike(Protocol):
    """What a group schema needs of the flavour (flavour.py owns a GroupSchema: this keeps the import one way)."""

    cfg: Config
    name: str
    username_attr: str
    person_filter: str

    def users_filter(self, usernames: Iterable[str]) -> str: ...


def unresolved_dn(username: str) -> str:
    return f"memberUid={escape_rdn(username)}"


def unresolved_username(dn: str) -> str | None:
    """The username of a pseudo-DN made by unresolved_dn, else None."""
    if dn[:10].lower() != UNRESOLVED or "," in dn.replace("\\,", ""):
        return None
    return re.sub(r"\\(.)", r"\1", dn[10:])  # escape_rdn's backslash escapes undone


def _text(value: Any) -> str:
    return dn_text(value)


def _strip_uid(value: str) -> str:
    """uniqueMember's optional #'...'B UID is not part of the DN."""
    return value.split("#'", 1)[0] if "#'" in value else value


@dataclass
class Group:
    """One group as read: its classes and raw member values, by attribute."""

    dn: str
    classes: frozenset[str]  # lower-case
    values: dict[str, list[str]] = field(default_factory=dict)  # "member" / "uniqueMember" / "memberUid" -> text

    @property
    def dn_attr(self) -> str | None:
        """Where DN members go: member (groupOfNames, AD group), uniqueMember, or None (posixGroup only)."""
        if "groupofnames" in self.classes or "group" in self.classes:
            return "member"
        if "groupofuniquenames" in self.classes:
            return "uniqueMember"
        if not self.posix:  # an unknown class: go by what it holds, else the usual member
            return "uniqueMember" if self.values.get("uniqueMember") and not self.values.get("member") else "member"
        return None

    @property
    def posix(self) -> bool:
        return "posixgroup" in self.classes

    @property
    def must_keep_one(self) -> bool:
        """groupOfNames / groupOfUniqueNames: MUST member (AD groups and posixGroups may be empty)."""
        return bool(self.classes & {"groupofnames", "groupofuniquenames"})

    @property
    def kind(self) -> str:
        dn_attr = self.dn_attr
        if self.posix:
            return "rfc2307bis" if dn_attr else "posixGroup"
        return {"member": "groupOfNames", "uniqueMember": "groupOfUniqueNames"}.get(dn_attr or "", "group")


class GroupSchema:
    """Reads any group's members as account DNs and computes the modify that adds or removes one."""

    def __init__(self, flavour: FlavourLike) -> None:
        self.fl = flavour
        placeholder = getattr(flavour.cfg.directory, "placeholder_member", None)
        self.placeholder: str | None = flavour.cfg.dn(placeholder) if placeholder else None

    # -- reading --
    def parse(self, dn: str, attrs: Attrs) -> Group:
        got: dict[str, list[str]] = {}
        classes: set[str] = set()
        for key, vals in attrs.items():
            low = key.lower()
            if low == "objectclass":
                classes.update(_text(v).lower() for v in vals)
            elif low == "member":
                got["member"] = [_text(v) for v in vals]
            elif low == "uniquemember":
                got["uniqueMember"] = [_text(v) for v in vals]
            elif low == "memberuid":
                got["memberUid"] = [_text(v) for v in vals]
        if not classes and self.fl.name == "ad":
            classes.add("group")
        return Group(dn, frozenset(classes), got)

    def read(self, directory: Connection, group_dn: str) -> Group | None:
        attrs = directory.read(group_dn, READ_ATTRS, raw=True)  # raw: thousands of members, decoded here
        return None if attrs is None else self.parse(group_dn, attrs)

    def _not_members(self, group: Group) -> set[str]:
        out = {normalise_dn(group.dn)}
        if self.placeholder:
            out.add(normalise_dn(self.placeholder))
        return out

    def dn_members(self, group: Group) -> list[str]:
        """DN-valued members (member and uniqueMember), without the group itself or the placeholder."""
        skip = self._not_members(group)
        out: list[str] = []
        for name in ("member", "uniqueMember"):
            for v in group.values.get(name, ()):
                m = _strip_uid(v) if name == "uniqueMember" else v
                if normalise_dn(m) not in skip:
                    out.append(m)
        return out

    def resolve(
        self, directory: Connection, usernames: Iterable[str], known: dict[str, str] | None = None
    ) -> dict[str, str]:
        """username (lower) -> account DN, in one search: OR'd usernames, or every person when there are many.
        known: usernames (lower) -> DN the caller has read already (the review's staff), not searched again."""
        wanted = {u.lower() for u in usernames if u}
        found: dict[str, str] = {}
        if known:
            found = {u: known[u] for u in wanted if u in known}
            wanted -= found.keys()
        if not wanted:
            return found
        fl = self.fl
        base = fl.cfg.directory.base_dn
        if len(wanted) <= _OR_BATCH:
            f = fl.users_filter(sorted(wanted))
        else:
            f = f"(&{fl.person_filter}({fl.username_attr}=*))"
        out: dict[str, str] = found
        attr = fl.username_attr.lower()
        for dn, attrs in directory.search(base, f, [fl.username_attr], raw=True):
            for key, vals in attrs.items():
                if key.lower() == attr:
                    for v in vals:
                        name = _text(v).lower()
                        if name in wanted:
                            out.setdefault(name, dn)
        return out

    def members(self, group: Group, by_uid: dict[str, str]) -> list[str]:
        """Every member as a DN: DN members, then memberUid usernames resolved (or kept as memberUid=NAME)."""
        out = self.dn_members(group)
        uids = group.values.get("memberUid")
        if uids:
            seen = {normalise_dn(m) for m in out}
            for u in uids:
                dn = by_uid.get(u.lower()) or unresolved_dn(u)
                key = normalise_dn(dn)
                if key not in seen:
                    seen.add(key)
                    out.append(dn)
        return out

    def read_members(self, directory: Connection, group_dn: str) -> list[str] | None:
        group = self.read(directory, group_dn)
        if group is None:
            return None
        return self.members(group, self.resolve(directory, group.values.get("memberUid", ())))

    def read_all(self, directory: Connection, base: str, ldap_filter: str) -> dict[str, list[str]]:
        """normalised group DN -> member DNs of every group under base: one search of the groups, and one of
        the people when any group keeps usernames."""
        groups = [self.parse(dn, attrs) for dn, attrs in directory.search(base, ldap_filter, READ_ATTRS, raw=True)]
        by_uid = self.resolve(directory, {u for g in groups for u in g.values.get("memberUid", ())})
        return {normalise_dn(g.dn): self.members(g, by_uid) for g in groups}

    # -- writing --
    def username_of(self, directory: Connection, member_dn: str) -> str | None:
        """The username memberUid holds for this account (None if it has none, or is no account)."""
        name = unresolved_username(member_dn)
        if name is not None:
            return name
        attrs = directory.read(member_dn, [self.fl.username_attr])
        value = first(attrs, self.fl.username_attr) if attrs else None
        return as_text(value) or None

    def add_changes(self, group: Group, member_dn: str, username: str | None) -> Changes:
        """The one modify that makes member_dn a member of every attribute the group's schema uses ({} if it
        already is). The placeholder (or the group itself) goes in the same modify once a real member is in."""
        changes: Changes = {}
        want = normalise_dn(member_dn)
        dn_attr = group.dn_attr if unresolved_username(member_dn) is None else None
        if dn_attr:
            current = group.values.get(dn_attr, [])
            if not any(normalise_dn(_strip_uid(v)) == want for v in current):
                ops: list[tuple[str, list[Any]]] = [(ldap3.MODIFY_ADD, [member_dn])]
                skip = self._not_members(group)
                stand_ins = [v for v in current if normalise_dn(_strip_uid(v)) in skip]
                if stand_ins:
                    ops.append((ldap3.MODIFY_DELETE, stand_ins))
                changes[dn_attr] = ops
        if group.posix:
            if not username:
                raise RefusedError(
                    f"{group.dn} is a posixGroup (members by username in memberUid), but {member_dn} has no "
                    f"{self.fl.username_attr}; nothing was changed"
                )
            if not any(v.lower() == username.lower() for v in group.values.get("memberUid", ())):
                changes["memberUid"] = [(ldap3.MODIFY_ADD, [username])]
        return changes

    def batch_add_ops(self, group: Group, members: list[tuple[str, str]]) -> list[tuple[str, str, list[Any]]]:
        """(op, attribute, values) adding new accounts (dn, username), none of them a member yet, in one modify
        (the intake's batches): DNs to member/uniqueMember, usernames to memberUid, stand-ins out. The stand-ins
        are forgotten from `group`, so the next batch's ops (same Group, read once) do not delete them again."""
        ops: list[tuple[str, str, list[Any]]] = []
        dn_attr = group.dn_attr
        if dn_attr:
            ops.append((ldap3.MODIFY_ADD, dn_attr, [dn for dn, _ in members]))
            skip = self._not_members(group)
            stand_ins = [v for v in group.values.get(dn_attr, []) if normalise_dn(_strip_uid(v)) in skip]
            if stand_ins:
                ops.append((ldap3.MODIFY_DELETE, dn_attr, stand_ins))
                group.values[dn_attr] = []
        if group.posix:
            ops.append((ldap3.MODIFY_ADD, "memberUid", [u for _, u in members]))
        return ops

    def relocate_changes(
        self, group: Group, old_dn: str, new_dn: str, old_user: str | None, new_user: str | None
    ) -> Changes:
        """The one modify that follows a member renamed or moved (old_dn -> new_dn, old_user -> new_user): DN
        values (member, uniqueMember with its #'..'B UID kept) and memberUid replaced ({} if nothing holds
        the old ones). Servers without referential integrity (slapd without refint) keep the old DN otherwise."""
        changes: Changes = {}
        old_key, new_key = normalise_dn(old_dn), normalise_dn(new_dn)
        for name in ("member", "uniqueMember"):
            current = group.values.get(name, [])
            found = [v for v in current if normalise_dn(_strip_uid(v)) == old_key]
            if not found:
                continue
            ops: list[tuple[str, list[Any]]] = [(ldap3.MODIFY_DELETE, found)]
            if not any(normalise_dn(_strip_uid(v)) == new_key for v in current):
                suffix = found[0][len(_strip_uid(found[0])) :] if name == "uniqueMember" else ""
                ops.insert(0, (ldap3.MODIFY_ADD, [new_dn + suffix]))
            changes[name] = ops
        if old_user and new_user and old_user.lower() != new_user.lower():
            held = group.values.get("memberUid", [])
            found = [v for v in held if v.lower() == old_user.lower()]
            if found:
                ops = [(ldap3.MODIFY_DELETE, found)]
                if not any(v.lower() == new_user.lower() for v in held):
                    ops.insert(0, (ldap3.MODIFY_ADD, [new_user]))
                changes["memberUid"] = ops
        return changes

    def remove_changes(self, group: Group, member_dn: str, username: str | None) -> Changes:
        """The one modify that takes member_dn out of every attribute that holds it ({} if none does). The
        last member of a groupOfNames/groupOfUniqueNames is replaced by the placeholder, or refused."""
        changes: Changes = {}
        want = normalise_dn(member_dn)
        for name in ("member", "uniqueMember"):
            current = group.values.get(name, [])
            found = [v for v in current if normalise_dn(_strip_uid(v)) == want]
            if not found:
                continue
            ops: list[tuple[str, list[Any]]] = [(ldap3.MODIFY_DELETE, found)]
            if group.must_keep_one and len(found) == len(current):
                ops.insert(0, (ldap3.MODIFY_ADD, [self._placeholder_for(group, member_dn)]))
            changes[name] = ops
        if username and group.values.get("memberUid"):
            found = [v for v in group.values["memberUid"] if v.lower() == username.lower()]
            if found:
                changes["memberUid"] = [(ldap3.MODIFY_DELETE, found)]
        return changes

    def _placeholder_for(self, group: Group, member_dn: str) -> str:
        if self.placeholder:
            return self.placeholder
        raise empty_group_refusal(group.dn, group.kind, [member_dn])

    def check_removals(self, directory: Connection, removals: Iterable[tuple[str, str]]) -> None:
        """Before a plan changes anything: refuse if it would take the last member out of a groupOfNames or
        groupOfUniqueNames and no placeholder_member is configured (the removal would fail half-way)."""
        if self.placeholder:
            return
        by_group: dict[str, tuple[str, dict[str, str]]] = {}
        for gdn, member in removals:
            by_group.setdefault(normalise_dn(gdn), (gdn, {}))[1][normalise_dn(member)] = member
        for gdn, leaving in by_group.values():
            group = self.read(directory, gdn)
            if group is None or not group.must_keep_one:
                continue
            for name in ("member", "uniqueMember"):  # as remove_changes: empty when every value goes
                held = [normalise_dn(_strip_uid(v)) for v in group.values.get(name, ())]
                if held and all(v in leaving for v in held):
                    raise empty_group_refusal(gdn, group.kind, sorted(leaving.values()))


def empty_group_refusal(group_dn: str, kind: str, leaving: list[str]) -> RefusedError:
    who = ", ".join(leaving[:3]) + (f" and {len(leaving) - 3} more" if len(leaving) > 3 else "")
    return RefusedError(
        f"removing {who} would leave {group_dn} ({kind}) with no member, which its schema does not allow; "
        "nothing was changed",
        hint='set [directory] placeholder_member = "cn=nobody,..." (a DN that stands in for "empty"; it need not '
        "exist on OpenLDAP without refint) and run it again, or add another member to the group first",
    )
