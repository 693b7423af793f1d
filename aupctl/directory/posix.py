"""posixAccount for new accounts on OpenLDAP, where the school's people are posixAccount (RFC 2307).

`[accounts] posix` decides: true, false, or "auto" (the default: as the people already in staff_ou are).
A new account then gets uidNumber (the next free one above those in use, or within `uid_range`),
gidNumber (`gid_number`, else the one most of the school's posixAccount people have), homeDirectory and
loginShell from their templates ({username} only, filled in by the one safe formatter, templates.py).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from .. import templates
from ..config import POSIX_FIELDS
from ..errors import ConfigError
from .dn import is_under
from .session import Directory
from .values import as_text, values

if TYPE_CHECKING:
    from ..config import Config

FIRST_UID = 1000  # the usual first uid of a person (Debian, Red Hat) when nothing is in use yet
SYSTEM_UIDS = 60000  # without uid_range, numbers from here (nobody 65534, Debian's 60000-64999) are not counted


class PosixAccounts:
    """Hands out uidNumbers for one run (one search of the numbers in use) and fills in the attributes."""

    def __init__(self, cfg: Config, used: set[int], gids: Counter[int]) -> None:
        self.cfg = cfg
        acc = cfg.accounts
        gid = acc.gid_number if acc.gid_number is not None else (gids.most_common(1)[0][0] if gids else None)
        if gid is None:
            raise ConfigError(
                f"{cfg.source}: new accounts are to be posixAccount but no gidNumber is known: set [accounts] "
                "gid_number (the primary group of staff accounts)"
            )
        self.gid: int = gid
        self.high: int | None = None
        if acc.uid_range:
            low, high = acc.uid_range
            in_range = [u for u in used if low <= u <= high]
            self.next, self.high = (max(in_range) + 1 if in_range else low), high
        else:
            ordinary = [u for u in used if u < SYSTEM_UIDS]
            self.next, self.high = max([FIRST_UID - 1, *ordinary]) + 1, None
        self.used = used

    @classmethod
    def for_run(cls, cfg: Config, directory: Directory) -> PosixAccounts | None:
        """None where new accounts stay plain inetOrgPerson (AD, posix = false, or "auto" with none in staff_ou)."""
        if directory.flavour.name != "openldap" or cfg.accounts.posix is False:
            return None
        staff = cfg.dn(cfg.directory.staff_ou)
        used: set[int] = set()
        gids: Counter[int] = Counter()
        staff_posix = False
        for dn, attrs in directory.search(
            cfg.directory.base_dn, "(objectClass=posixAccount)", ["uidNumber", "gidNumber"], raw=True
        ):
            for v in values(attrs, "uidNumber"):
                try:
                    used.add(int(as_text(v)))
                except ValueError:
                    continue
            if is_under(dn, staff):
                staff_posix = True
                for v in values(attrs, "gidNumber"):
                    try:
                        gids[int(as_text(v))] += 1
                    except ValueError:
                        continue
        if cfg.accounts.posix == "auto" and not staff_posix:
            return None
        return cls(cfg, used, gids)

    def take_uid(self, username: str) -> int:
        while self.next in self.used:
            self.next += 1
        if self.high is not None and self.next > self.high:
            raise ConfigError(
                f"{self.cfg.source}: accounts.uid_range {self.cfg.accounts.uid_range} has no free uidNumber left "
                f"for {username}; nothing was changed",
                hint="widen uid_range",
            )
        uid = self.next
        self.used.add(uid)
        self.next += 1
        return uid

    def attributes(self, username: str) -> dict[str, Any]:
        acc, values = self.cfg.accounts, {"username": username}
        return {
            "uidNumber": str(self.take_uid(username)),
            "gidNumber": str(self.gid),
            "homeDirectory": templates.render(acc.home_directory, values, POSIX_FIELDS),
            "loginShell": templates.render(acc.login_shell, values, POSIX_FIELDS),
        }

    @staticmethod
    def classes(classes: list[str]) -> list[str]:
        return classes if any(c.lower() == "posixaccount" for c in classes) else [*classes, "posixAccount"]
