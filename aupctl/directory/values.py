"""Attribute values as servers send them -> Python: the case-blind attribute lookup, text, times, hashes.

Pure functions of the values alone (no connection, no flavour), shared by both flavours and the jobs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from typing import Any

from ldap3.utils.conv import to_unicode

Attrs = dict[str, list[Any]]  # one entry's attributes: name -> values, as Directory.search yields them

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


def one(attrs: Attrs, name: str) -> Any:
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


def int_value(value: Any, default: int = 0) -> int:
    """An integer-valued attribute (text or bytes); default when empty or not a number."""
    try:
        return int(as_text(value).strip() or default)
    except ValueError:
        return default


def is_true(value: Any) -> bool:
    """An LDAP Boolean (TRUE / FALSE)."""
    return as_text(value).strip().upper() == "TRUE"
