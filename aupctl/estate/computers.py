"""Computers from the directory: AD computer objects, or OpenLDAP entries of a configured object class
(`device` by default), read raw and paged through the lean entry decoder (directory/entries.py)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ldap3.utils.conv import escape_filter_chars

from ..config import Config
from ..directory.values import parse_filetime, parse_generalized
from ..errors import ConfigError

# LAPS: the expiry dates only. The password attributes (msLAPS-Password, msLAPS-EncryptedPassword,
# ms-Mcs-AdmPwd) are never requested.
LAPS_EXPIRY = ("msLAPS-PasswordExpirationTime", "ms-Mcs-AdmPwdExpirationTime")
AD_ATTRS = [
    "cn",
    "name",
    "dNSHostName",
    "operatingSystem",
    "operatingSystemVersion",
    "lastLogonTimestamp",
    "pwdLastSet",
    "userAccountControl",
    "serialNumber",
]
ACCOUNTDISABLE = 0x2
SERVER_TRUST_ACCOUNT = 0x2000  # a domain controller: it has no local accounts for LAPS to manage


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, per entry of thousands
class Computer:
    name: str
    dn: str
    ou: str
    dns_host: str | None = None
    os: str = ""
    os_version: str = ""
    last_seen: dt.datetime | None = None  # AD lastLogonTimestamp: up to 14 days behind the real last logon
    password_set: dt.datetime | None = None  # AD pwdLastSet: the machine account's password
    enabled: bool | None = None  # None: the directory does not say (OpenLDAP)
    serial: str | None = None
    laps_expiry: dt.datetime | None = None
    laps_attribute: str | None = None  # which LAPS attribute it was read from
    domain_controller: bool = False


def _text(attrs: dict[str, list[bytes]], name: str | None) -> str | None:
    """The first value of an attribute; attrs are keyed in lower case, and so must name be."""
    if not name:
        return None
    vals = attrs.get(name)
    if not vals:
        return None
    return vals[0].decode("utf-8", "replace").strip() or None


def _when(value: str | None) -> dt.datetime | None:
    """FILETIME (AD) or generalized time (OpenLDAP, e.g. a site's own last-seen attribute)."""
    if not value:
        return None
    if value.isdigit() and len(value) > 14:
        return parse_filetime(value)
    return parse_generalized(value) or (parse_filetime(value) if value.isdigit() else None)


def parent_of(dn: str) -> str:
    """The OU (parent DN): the DN after the first unescaped comma."""
    if "\\" not in dn:
        return dn.split(",", 1)[1].strip() if "," in dn else ""
    m = re.search(r"(?<!\\),", dn)
    return dn[m.end() :].strip() if m else ""


def base_of(cfg: Config) -> str:
    return cfg.dn(cfg.estate.base) if cfg.estate.base else cfg.directory.base_dn


def laps_attributes(directory: Any) -> list[str]:
    """The LAPS expiry attributes this directory's schema defines (subschema attributeTypes, read once)."""
    root = directory.read("", ["subschemaSubentry"], raw=True) or {}
    sub = next(iter(root.get("subschemaSubentry") or root.get("subschemasubentry") or []), None)
    if not sub:
        return []
    sub = sub.decode() if isinstance(sub, bytes) else str(sub)
    schema = directory.read(sub, ["attributeTypes"], raw=True) or {}
    types: list[Any] = next((v for k, v in schema.items() if k.lower() == "attributetypes"), [])
    found = set()
    for value in types:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for name in LAPS_EXPIRY:
            if f"'{name.lower()}'" in text.lower():
                found.add(name)
    return [n for n in LAPS_EXPIRY if n in found]


def attributes(cfg: Config, laps: list[str]) -> list[str]:
    e = cfg.estate
    if cfg.directory.flavour == "ad":
        extra = [a for a in (e.os_attribute, e.version_attribute, e.last_seen_attribute, e.serial_attribute) if a]
        return list(dict.fromkeys([*AD_ATTRS, *extra, *laps]))
    wanted = ["cn", e.os_attribute or "description", e.version_attribute, e.last_seen_attribute, e.serial_attribute]
    return list(dict.fromkeys(a for a in [*wanted, *laps] if a))


def search_filter(cfg: Config) -> str:
    if cfg.directory.flavour == "ad":
        return "(objectClass=computer)"
    # ppolicy's policy entries are often `device` + pwdPolicy (a structural class to hang it on): not computers
    return f"(&(objectClass={escape_filter_chars(cfg.estate.object_class)})(!(objectClass=pwdPolicy)))"


@dataclass(frozen=True)
class Names:
    """The attribute names a flavour and the config give, in lower case (found once, used per entry)."""

    ad: bool
    os: str | None
    version: str | None
    last_seen: str | None
    serial: str | None

    @classmethod
    def of(cls, cfg: Config) -> Names:
        e = cfg.estate
        ad = cfg.directory.flavour == "ad"

        def low(value: str | None) -> str | None:
            return value.lower() if value else None

        return cls(
            ad,
            low(e.os_attribute or ("operatingSystem" if ad else "description")),
            low(e.version_attribute or ("operatingSystemVersion" if ad else None)),
            low(e.last_seen_attribute or ("lastLogonTimestamp" if ad else None)),
            low(e.serial_attribute),
        )


def computer(names: Names, dn: str, raw: dict[str, list[bytes]], laps: list[str]) -> Computer:
    attrs = {k.lower(): v for k, v in raw.items()}
    ad = names.ad
    name = _text(attrs, "name") or _text(attrs, "cn") or dn.split(",", 1)[0].split("=", 1)[-1]
    uac = _text(attrs, "useraccountcontrol") if ad else None
    laps_at, laps_attr = None, None
    for a in laps:
        laps_at = _when(_text(attrs, a.lower()))
        if laps_at is not None:
            laps_attr = a
            break
    enabled: bool | None = None  # OpenLDAP does not say
    flags = int(uac) if uac and uac.lstrip("-").isdigit() else 0
    if ad:
        enabled = not flags & ACCOUNTDISABLE
    return Computer(
        name=name,
        dn=dn,
        ou=parent_of(dn),
        dns_host=_text(attrs, "dnshostname") if ad else None,
        os=_text(attrs, names.os) or "",
        os_version=_text(attrs, names.version) or "",
        last_seen=_when(_text(attrs, names.last_seen)),
        password_set=_when(_text(attrs, "pwdlastset")) if ad else None,
        enabled=enabled,
        serial=_text(attrs, names.serial),
        laps_expiry=laps_at,
        laps_attribute=laps_attr,
        domain_controller=bool(flags & SERVER_TRUST_ACCOUNT),
    )


def read(cfg: Config, directory: Any, laps: list[str]) -> list[Computer]:
    """Every computer under [estate] base, sorted by name."""
    names = Names.of(cfg)
    base = base_of(cfg)
    if cfg.estate.base and not directory.exists(base):
        # a search under a missing OU finds nothing: a typo would pass every audit with "no computers found"
        raise ConfigError(f"{cfg.source}: estate.base = {cfg.estate.base!r}: {base} is not in the directory")
    found = [
        computer(names, dn, raw, laps)
        for dn, raw in directory.search(base, search_filter(cfg), attributes(cfg, laps), raw=True)
    ]
    found.sort(key=lambda c: c.name.lower())
    return found
