"""Reading who holds each system: the effective members of the system groups and every account involved,
each read once (access review, adopt and `access systems` share it).

Each system group is read once (flavour.members_of_groups: one search of every group on AD, where nesting
counts) and each person at most once (the staff and leavers OUs in one or two searches; any member or
approval outside them by DN or in OR'd batches).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..directory import Account, Directory, is_under, normalise_dn, unresolved_username
from ..records.roles import recorded_roles
from ..roles import RoleInfo, RoleResolver
from ..state import State
from .shared import search_base

BATCH = 100  # usernames OR'd into one filter


def _key(dn: str) -> str:
    return dn.lower()


@dataclass
class People:
    """The accounts involved, indexed by DN (as the server spells it, lower-cased; and normalised) and username."""

    by_dn: dict[str, Account] = field(default_factory=dict)
    by_user: dict[str, Account] = field(default_factory=dict)
    by_norm: dict[str, Account] = field(default_factory=dict)

    def add(self, acct: Account) -> None:
        self.by_dn[_key(acct.dn)] = acct
        if self.by_norm:
            self.by_norm[normalise_dn(acct.dn)] = acct
        if acct.username:
            self.by_user.setdefault(acct.username.lower(), acct)

    def find(self, dn: str) -> Account | None:
        acct = self.by_dn.get(_key(dn))
        if acct is not None:
            return acct
        if not self.by_norm and self.by_dn:  # spelling differs (spaces, escapes): compare normalised DNs
            self.by_norm = {normalise_dn(a.dn): a for a in self.by_dn.values()}
        acct = self.by_norm.get(normalise_dn(dn))
        if acct is not None:
            self.by_dn[_key(dn)] = acct
        return acct


def read_memberships(
    cfg: Config, directory: Directory, keys: Iterable[str], people: People | None = None
) -> dict[str, dict[str, str | None] | None]:
    """system key -> {member DN: via nested group DN or None}, or None when the group does not exist.
    people: accounts already read, whose usernames need no search when a posixGroup names them."""
    wanted = {k: cfg.group_dn(cfg.systems[k].group) for k in keys if cfg.systems[k].group}  # type: ignore[arg-type]
    if not wanted:
        return {}
    known = {u: a.dn for u, a in people.by_user.items()} if people else None
    found = directory.flavour.members_of_groups(directory, list(dict.fromkeys(wanted.values())), known)
    return {k: found.get(g) for k, g in wanted.items()}


def _bases(cfg: Config) -> list[str]:
    staff, leavers = cfg.dn(cfg.directory.staff_ou), cfg.dn(cfg.directory.leavers_ou)
    if is_under(leavers, staff):
        return [staff]
    if is_under(staff, leavers):
        return [leavers]
    return [staff, leavers]


def _brief(directory: Directory) -> tuple[list[str], bool, Any]:
    """(attributes, raw, maker): brief attributes read raw, decoded leanly (directory/entries.py)."""
    fl = directory.flavour
    if fl.brief_attributes:
        return fl.brief_attributes, True, fl.brief_account
    return fl.user_attributes, False, fl.account


def read_staff(cfg: Config, directory: Directory, *, full: bool = False) -> People:
    """The staff and leavers OUs, in one search each (full: every attribute an Account holds, last logon too)."""
    fl = directory.flavour
    people = People()
    attrs_wanted, raw, make = (fl.user_attributes, False, fl.account) if full else _brief(directory)
    for base in _bases(cfg):
        for dn, attrs in directory.search(base, fl.person_filter, attrs_wanted, raw=raw):
            people.add(make(dn, attrs))
    return people


def read_people(
    cfg: Config,
    directory: Directory,
    member_dns: set[str],
    usernames: set[str],
    people: People | None = None,
    state: State | None = None,
) -> People:
    """Every account involved, each read once: the staff and leavers OUs in one search each (unless read
    already: people), then members outside them by DN and approval holders not yet seen in batches of OR'd
    usernames. state: holders still not found whom this school records a role for are sought across the
    trust's part of the directory too (a person of two schools whose account another school holds)."""
    fl = directory.flavour
    people = people if people is not None else read_staff(cfg, directory)
    attrs_wanted, raw, make = _brief(directory)
    for dn in sorted(member_dns):
        if people.find(dn) is None and unresolved_username(dn) is None:  # memberUid=NAME: no entry to read
            for rdn, attrs in directory.search(dn, fl.person_filter, attrs_wanted, "BASE", raw=raw):
                people.add(make(rdn, attrs))
    missing = sorted(u for u in usernames if u.lower() not in people.by_user)
    for i in range(0, len(missing), BATCH):
        users = fl.users_filter(missing[i : i + BATCH])
        for dn, attrs in directory.search(cfg.directory.base_dn, users, attrs_wanted, raw=raw):
            people.add(make(dn, attrs))
    trust_base = search_base(cfg) if state is not None else None
    if trust_base is not None and state is not None:
        recorded = recorded_roles(state)
        elsewhere = sorted(u for u in missing if u.lower() not in people.by_user and u.strip().lower() in recorded)
        for i in range(0, len(elsewhere), BATCH):
            users = fl.users_filter(elsewhere[i : i + BATCH])
            for dn, attrs in directory.search(trust_base, users, attrs_wanted, raw=raw):
                if not is_under(dn, cfg.directory.base_dn):  # this school's base was searched above
                    people.add(make(dn, attrs))
    return people


def roles_for(cfg: Config, directory: Directory, state: State, people: People) -> dict[str, RoleInfo]:
    """username (lower) -> role. Role groups are read (once) only for accounts their OU does not place."""
    role_of = RoleResolver(cfg, recorded_roles(state))
    out: dict[str, RoleInfo] = {}
    undecided: list[Account] = []
    leavers = cfg.dn(cfg.directory.leavers_ou)
    for user, acct in people.by_user.items():
        info = role_of(acct)
        # A leaver needs no role (being a leaver is the finding), so only others send us to the role groups.
        if info.role is None and not acct.groups and not is_under(acct.dn, leavers):
            undecided.append(acct)
        out[user] = info
    role_groups = list(dict.fromkeys(cfg.group_dn(g) for r in cfg.roles.values() for g in r.groups))
    if undecided and role_groups:
        by_dn = {_key(a.dn): a for a in undecided}
        for gdn in role_groups:
            for m in directory.flavour.group_members(directory, gdn) or []:
                found = by_dn.get(_key(m))
                if found is not None:
                    found.groups.append(gdn)
        for acct in undecided:
            out[acct.username.lower()] = role_of(acct)
    return out
