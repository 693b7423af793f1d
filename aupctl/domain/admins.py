"""The privileged groups and the accounts in them, resolved through nested groups.

On AD the built-in groups are found by their well-known SIDs (the domain's SID and a RID, or the BUILTIN
domain's), never by name: "Domain Admins" is "Domänen-Admins" on a German DC and may have been renamed. The
groups named in [directory] privileged_groups count on both flavours (on OpenLDAP they are the only ones).
Membership: every group is read once (directory.all_groups, any schema), nesting is followed in memory, and
on AD a user whose primaryGroupID is Domain Admins' RID counts although no `member` value says so.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ldap3.utils.conv import escape_bytes, escape_filter_chars

from ..directory import (
    UAC_DONT_EXPIRE_PASSWORD,
    Account,
    as_text,
    first,
    group_name,
    normalise_dn,
    values,
    walk_nested,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..directory import Directory

# (label, RID, in the domain's own SID (True) or BUILTIN's S-1-5-32 (False)); MS-ADTS 6.1.1.6 / MS-DTYP 2.4.2.4
WELL_KNOWN: list[tuple[str, int, bool]] = [
    ("Domain Admins", 512, True),
    ("Enterprise Admins", 519, True),
    ("Schema Admins", 518, True),
    ("Administrators", 544, False),
    ("Account Operators", 548, False),
    ("Server Operators", 549, False),
    ("Backup Operators", 551, False),
]
BUILTIN_SID = "S-1-5-32"
PRIMARY_GROUP_RIDS = (512, 518, 519)  # those a user's primaryGroupID can name

AD_ADMIN_ATTRS = [
    "objectClass",
    "sAMAccountName",
    "cn",
    "displayName",
    "givenName",
    "sn",
    "employeeID",
    "employeeNumber",
    "mail",
    "proxyAddresses",
    "msExchMailboxGuid",
    "userAccountControl",
    "pwdLastSet",
    "whenCreated",
    "lastLogonTimestamp",
]
OPENLDAP_ADMIN_ATTRS = [
    "objectClass",
    "uid",
    "cn",
    "displayName",
    "givenName",
    "sn",
    "employeeNumber",
    "mail",
    "pwdAccountLockedTime",
    "pwdChangedTime",
    "createTimestamp",
]


def sid_text(raw: bytes) -> str:
    """A binary SID (objectSid) -> S-1-5-21-...; '' if it is not one."""
    if len(raw) < 8 or raw[0] != 1 or len(raw) != 8 + 4 * raw[1]:
        return ""
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{raw[1]}I", raw[8:])
    return "-".join(["S", str(raw[0]), str(authority), *(str(s) for s in subs)])


def sid_bytes(text: str) -> bytes:
    """S-1-5-21-... -> the binary form an LDAP filter on objectSid needs."""
    parts = text.split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {text!r}")
    subs = [int(p) for p in parts[3:]]
    return bytes([int(parts[1]), len(subs)]) + int(parts[2]).to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


@dataclass(frozen=True)
class PrivilegedGroup:
    label: str  # the well-known name (AD) or as the config names it
    dn: str | None  # None: not found in this directory
    name: str = ""  # as the directory names it (cn)
    sid: str = ""
    source: str = "well-known"  # "well-known" (AD, by SID) or "config" ([directory] privileged_groups)


@dataclass
class Admin:
    """One account in a privileged group, with what the checks need."""

    dn: str
    account: Account
    kind: str  # "user", "computer", "other" (a foreign security principal, a contact...)
    groups: list[str] = field(default_factory=list)  # labels of the privileged groups it is in
    via: list[str] = field(default_factory=list)  # names of the nested groups that brought it in
    mailbox: str | None = None  # the attribute that shows a mailbox, if any
    others: list[str] = field(default_factory=list)  # the same person's other enabled, unprivileged accounts
    identity: list[str] = field(default_factory=list)  # what the person was matched by (empty: cannot tell whose)

    @property
    def username(self) -> str:
        return self.account.username or group_name(self.dn)

    @property
    def enabled(self) -> bool:
        return not self.account.disabled

    @property
    def never_expires(self) -> bool:
        return bool(self.account.uac is not None and self.account.uac & UAC_DONT_EXPIRE_PASSWORD)

    def row(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "dn": self.dn,
            "kind": self.kind,
            "enabled": self.enabled,
            "groups": list(self.groups),
            "via": list(self.via),
            "mailbox": self.mailbox,
            "other_accounts": list(self.others),
        }


def well_known_groups(directory: Directory, base_dn: str) -> tuple[list[PrivilegedGroup], list[str], list[str]]:
    """AD's privileged groups by SID; warnings for those not found, and a plain note for Enterprise and Schema
    Admins, which live only in the forest root domain."""
    root = directory.read(base_dn, ["objectSid"], raw=True) or {}
    raw = first(root, "objectSid")
    domain_sid = sid_text(raw) if isinstance(raw, bytes) else ""
    notes: list[str] = []
    wanted: dict[str, str] = {}  # SID -> label
    for label, rid, in_domain in WELL_KNOWN:
        if in_domain and not domain_sid:
            continue
        wanted[f"{domain_sid if in_domain else BUILTIN_SID}-{rid}"] = label
    if not domain_sid:
        notes.append(f"could not read the domain's SID (objectSid on {base_dn}): Domain, Enterprise and Schema Admins "
                     "were not looked for; check that directory.base_dn is the domain's root")  # fmt: skip
    parts = "".join(f"(objectSid={escape_bytes(sid_bytes(s))})" for s in wanted)
    found: dict[str, PrivilegedGroup] = {}
    for dn, attrs in directory.search(
        base_dn, f"(&(objectClass=group)(|{parts}))", ["objectSid", "cn", "sAMAccountName"], raw=True
    ):
        value = first(attrs, "objectSid")
        sid = sid_text(value) if isinstance(value, bytes) else ""
        if sid in wanted:
            name = as_text(first(attrs, "cn", b"")) or group_name(dn)
            found[sid] = PrivilegedGroup(label=wanted[sid], dn=dn, name=name, sid=sid)
    out = []
    info: list[str] = []
    for sid, label in wanted.items():
        if sid in found:
            out.append(found[sid])
        else:
            out.append(PrivilegedGroup(label=label, dn=None, sid=sid))
            if label in ("Enterprise Admins", "Schema Admins"):
                info.append(f"{label} is not in this domain (it lives in the forest root domain only): audit the "
                            "forest root domain too")  # fmt: skip
            else:
                notes.append(f"{label} ({sid}) was not found under {base_dn}")
    return out, notes, info


def configured_groups(cfg: Config, directory: Directory) -> tuple[list[PrivilegedGroup], list[str]]:
    """[directory] privileged_groups: a full DN, or a cn looked up anywhere under the base DN."""
    flavour = directory.flavour
    out: list[PrivilegedGroup] = []
    notes: list[str] = []
    for i, name in enumerate(cfg.directory.privileged_groups):
        if "=" in name:
            dn = cfg.dn(name)
            dns = [dn] if directory.exists(dn) else []
        else:
            f = f"(&{flavour.group_filter}(cn={escape_filter_chars(name)}))"
            dns = [dn for dn, _ in directory.search(cfg.directory.base_dn, f, None)]
        if not dns:
            notes.append(f"directory.privileged_groups[{i}] ({name}) names no group in the directory")
            out.append(PrivilegedGroup(label=group_name(name) if "=" in name else name, dn=None, source="config"))
        for dn in dns:
            out.append(PrivilegedGroup(label=group_name(dn), dn=dn, name=group_name(dn), source="config"))
    return out, notes


def merge_groups(groups: Iterable[PrivilegedGroup]) -> list[PrivilegedGroup]:
    """One entry per group DN (the config may name a well-known group again); unfound ones kept for the notes."""
    seen: set[str] = set()
    out = []
    for g in groups:
        if g.dn is None:
            continue
        key = normalise_dn(g.dn)
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


def effective_members(
    groups: list[PrivilegedGroup], all_groups: dict[str, list[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """member DN (as first written) -> (labels of the privileged groups it is in, the nested groups that list it
    directly, privileged ones left out: they are among the labels already)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    by_key: dict[str, str] = {}
    privileged = {normalise_dn(g.dn) for g in groups if g.dn}
    for g in groups:
        assert g.dn is not None
        top = normalise_dn(g.dn)
        for member, _, lister in walk_nested(all_groups, top, all_groups.get(top, [])):
            parent = lister or g.dn
            dn = by_key.setdefault(normalise_dn(member), member)
            labels, vias = out.setdefault(dn, ([], []))
            if g.label not in labels:
                labels.append(g.label)
            if normalise_dn(parent) not in privileged and group_name(parent) not in vias:
                vias.append(group_name(parent))
    return out


def primary_group_members(directory: Directory, base_dn: str, groups: list[PrivilegedGroup]) -> dict[str, str]:
    """AD: accounts whose primaryGroupID makes them members of Domain, Schema or Enterprise Admins (no `member`
    value shows it) -> the group's label."""
    rids = {int(g.sid.rsplit("-", 1)[1]): g.label for g in groups if g.sid and not g.sid.startswith(BUILTIN_SID + "-")}
    rids = {r: label for r, label in rids.items() if r in PRIMARY_GROUP_RIDS}
    if not rids:
        return {}
    f = "(&(objectClass=user)(|" + "".join(f"(primaryGroupID={r})" for r in rids) + "))"
    out = {}
    for dn, attrs in directory.search(base_dn, f, ["primaryGroupID"]):
        rid = int(as_text(first(attrs, "primaryGroupID", "0")) or 0)
        if rid in rids:
            out[dn] = rids[rid]
    return out


def kind_of(attrs: dict[str, list[Any]]) -> str:
    classes = {as_text(c).lower() for c in values(attrs, "objectClass")}
    if "computer" in classes:
        return "computer"
    if classes & {"user", "person", "inetorgperson", "posixaccount", "account", "organizationalperson"}:
        return "user"
    return "other"


def mailbox_of(attrs: dict[str, list[Any]]) -> str | None:
    """The attribute that shows the account has a mailbox: Exchange's mailbox GUID, then proxyAddresses, then mail."""
    for attr in ("msExchMailboxGuid", "proxyAddresses", "mail"):
        if any(as_text(v).strip() if not isinstance(v, bytes) else v for v in values(attrs, attr)):
            return attr
    return None
