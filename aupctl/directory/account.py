"""Account: one person's account as read from either flavour (plain values, no ldap3 Entry objects)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .dn import parent_dn
from .values import Attrs


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
