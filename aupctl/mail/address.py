"""Mail addresses as a school writes them: `Name <address>`, a bare address, or (for approvers kept
before mail existed) a plain name with no address at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address as _HeaderAddress

# local@domain: the local part as RFC 5321's dot-atom (no quoting), the domain as DNS labels (Unicode allowed)
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$", re.UNICODE)


@dataclass(frozen=True)
class Address:
    name: str  # the display name ("" for a bare address)
    email: str  # "" for a plain name (an approver written before mail existed)

    def header(self) -> str:
        """As a To/Cc/From header holds it, the name quoted where it needs to be."""
        if not self.email:
            raise ValueError(f"{self.name!r} has no mail address")
        local, _, domain = self.email.rpartition("@")
        return str(_HeaderAddress(display_name=self.name, username=local, domain=domain))

    def __str__(self) -> str:
        if not self.email:
            return self.name
        return f"{self.name} <{self.email}>" if self.name else self.email


def check_email(email: str) -> str:
    """The address itself (local@domain); ValueError saying what is wrong."""
    if email.count("@") != 1:
        raise ValueError(f"{email!r} is not an address (one '@' between a name and a domain)")
    local, domain = email.split("@")
    if not _LOCAL.match(local) or len(local) > 64:
        raise ValueError(f"{email!r}: the part before '@' may hold letters, digits and .!#$%&'*+/=?^_`{{|}}~- only")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_LABEL.match(label) for label in labels) or "_" in domain:
        raise ValueError(f"{email!r}: {domain!r} is not a domain name")
    return email


def parse_address(text: str) -> Address:
    """`Name <address>`, `address`, or a plain name (Address with email ""). ValueError for a broken
    one (an unclosed '<', two addresses, a control character), naming what is wrong."""
    value = " ".join(text.split())
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text if ch not in " \t"):
        raise ValueError("it holds a control character")
    if not value:
        raise ValueError("it is empty")
    if value.endswith(">") and "<" in value:
        cut = value.rindex("<")
        name, email = value[:cut].strip(), value[cut + 1 : -1].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':  # a quoted name may hold anything: "<script> & Co"
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\").strip()
        elif "<" in name or ">" in name:
            raise ValueError(
                "write it as Name <address>, with one '<' and one '>' (quote a name holding them: \"Name\")"
            )
        return Address(name, check_email(email))
    if "<" in value or ">" in value:
        raise ValueError("write it as Name <address>, with one '<' and one '>' (the address last)")
    if "@" in value and " " not in value:
        return Address("", check_email(value))
    if "@" in value:
        raise ValueError("write it as Name <address> (an address among words, or two of them?)")
    return Address(value, "")  # a plain name, commas and all ("Okafor, D (Business Manager)")
