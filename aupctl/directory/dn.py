"""DNs: comparing (normalise_dn, same_dn, is_under), splitting (first_rdn, parent_dn) and building (child_dn).

Servers spell the same DN many ways (case, spaces, `\\2C` for `\\,`); every comparison of DNs in aupctl goes
through normalise_dn. DN values written by aupctl are RDN-escaped here, in one place.
"""

from __future__ import annotations

import functools
import re

import ldap3
from ldap3.utils.dn import escape_rdn


def first_rdn(dn: str) -> str:
    """The first RDN with its escaping intact (a naive split breaks on 'cn=Smith\\, Jo')."""
    i = 0
    while i < len(dn):
        if dn[i] == "\\":
            i += 2
            continue
        if dn[i] == ",":
            return dn[:i]
        i += 1
    return dn


def parent_dn(dn: str) -> str:
    rdn = first_rdn(dn)
    return dn[len(rdn) + 1 :]


def group_name(dn: str) -> str:
    """The cn of a group DN, for people to read: `CN=Ops\\, Zoë \\<team\\>,OU=Groups` -> `Ops, Zoë <team>`
    (split at the first unescaped comma, then unescaped; a naive split gave `Ops\\`)."""
    first = first_rdn(dn)
    value = first.split("=", 1)[1] if "=" in first else first
    return unescape_value(value).strip() if "\\" in value else value


def child_dn(attr: str, value: str, parent: str) -> str:
    """The DN of an entry named attr=value under parent, the value RDN-escaped (`Smith, Jo` -> `Smith\\, Jo`)."""
    return f"{attr}={escape_rdn(value)},{parent}"


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


def unescape_value(value: str) -> str:
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
        plain = unescape_value(value).strip().lower()
        current.append(f"{attr.strip().lower()}={escape_rdn(plain)}")
        if sep != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    return ",".join(rdns)


def is_under(dn: str, base: str) -> bool:
    d, b = normalise_dn(dn), normalise_dn(base)
    return d == b or d.endswith("," + b)
