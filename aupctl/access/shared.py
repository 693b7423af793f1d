"""A person who works at two schools of a trust (docs/trust.md): one account, held in the school whose OU it
lives in, with access per school. Another school of the same directory finds it by MIS id (staff sync) and
records a role for it in its own store; its grants, signatures and reviews then take that account too."""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars

from ..config import Config
from ..directory import Account, Directory, as_text, normalise_dn, require_account, values
from ..errors import NoSuchAccount
from ..records.roles import recorded_roles
from ..state import State

_BATCH = 100  # ids OR'd into one filter


def _under(dn: str, base: str) -> bool:
    d, b = normalise_dn(dn), normalise_dn(base)
    return d == b or d.endswith("," + b)


def search_base(cfg: Config) -> str | None:
    """Where the trust's other schools' people are sought: the deepest DN holding this school's base, every
    other school's base in the same directory and the trust-wide base_dn (when that directory is this one);
    None for a school alone in its directory (nothing else to search)."""
    own = cfg.directory.base_dn
    others = [b for k, b in cfg.directory_schools.items() if k != cfg.school_key]
    if cfg.trust_base_dn:
        others.append(cfg.trust_base_dn)
    if cfg.school_key is None or not others:
        return None
    parts = [[p.strip() for p in normalise_dn(b).split(",")] for b in [own, *others]]
    common: list[str] = []
    for rdns in zip(*(list(reversed(p)) for p in parts), strict=False):
        if len(set(rdns)) != 1:
            break
        common.insert(0, rdns[0])
    if not common or ",".join(common) == normalise_dn(own):
        return None  # the others are inside this school's base, or share no suffix with it
    # the common suffix as written in a base (normalised DNs are lower-case; LDAP bases are case-insensitive)
    return ",".join(common)


def holder(cfg: Config, dn: str) -> str | None:
    """The name of the school whose base holds dn (the deepest, should one base hold another), else None."""
    best: tuple[int, str] | None = None
    for key, base in cfg.directory_schools.items():
        if key != cfg.school_key and _under(dn, base) and (best is None or len(base) > best[0]):
            best = (len(base), key)
    return best[1] if best else None


def account_of_another_school(cfg: Config, directory: Directory, username: str) -> tuple[str | None, str] | None:
    """(the school whose base holds it, or None; its DN) for an account by this username in the trust's part of
    the directory outside this school's base, else None (a school alone in its directory: always None)."""
    base = search_base(cfg)
    if base is None or not username.strip():
        return None
    fl = directory.flavour
    for dn, _ in directory.search(base, fl.user_filter(username.strip()), fl.lean_attributes, raw=True):
        if not _under(dn, cfg.directory.base_dn):
            return holder(cfg, dn), dn
    return None


def not_ours(cfg: Config, who: str, held: tuple[str | None, str]) -> str:
    """Why this school may not withdraw (or restore) an account another school of the trust holds, and what to
    do instead."""
    key, dn = held
    here = cfg.school_key or "this school"
    there = f"school {key}'s" if key else "another part of the directory's"
    then = f"`aupctl --school {key} leaver ...`" if key else "the school that holds it"
    return (
        f"{who} is {there} account ({dn}), not {here}'s: to end their post at {here}, end it in {here}'s MIS "
        f"export (staff sync) or `aupctl --school {here} access revoke`; withdrawing or restoring the account "
        f"is for {then}"
    )


def held_elsewhere(cfg: Config, directory: Directory, idattr: str, ids: list[str]) -> dict[str, Account]:
    """MIS id -> the account outside this school's base (in the same directory) that carries it, read as
    sync reads its own people, its groups filled in (this school's groups among them)."""
    base = search_base(cfg)
    wanted = sorted({i for i in ids if i})
    if base is None or not wanted:
        return {}
    fl = directory.flavour
    attrs = list(dict.fromkeys([*fl.lean_attributes, idattr, fl.department_attr]))
    found: dict[str, Account] = {}
    for i in range(0, len(wanted), _BATCH):
        terms = "".join(f"({idattr}={escape_filter_chars(v)})" for v in wanted[i : i + _BATCH])
        for dn, raw in directory.search(base, f"(&{fl.person_filter}(|{terms}))", attrs, raw=True):
            if _under(dn, cfg.directory.base_dn):
                continue
            acct = fl.lean_account(dn, raw)
            for v in values(raw, idattr):
                pid = as_text(v)
                if pid in wanted:
                    found.setdefault(pid, acct)
    fl.fill_groups(directory, list({id(a): a for a in found.values()}.values()))
    return found


def shared_account(cfg: Config, directory: Directory, state: State, username: str) -> Account | None:
    """The account of a person this school records a role for who lives in another school's OU, else None."""
    base = search_base(cfg)
    if base is None or username.strip().lower() not in recorded_roles(state):
        return None
    fl = directory.flavour
    for dn, attrs in directory.search(base, fl.user_filter(username.strip()), fl.user_attributes):
        acct = fl.account(dn, attrs)
        fl.fill_groups(directory, [acct])
        return acct
    return None


def account_here(cfg: Config, directory: Directory, state: State, username: str, *, changing: bool = False) -> Account:
    """require_account, and a person of another school this school records a role for (staff sync)."""
    try:
        return require_account(directory, username, changing=changing)
    except NoSuchAccount:
        acct = shared_account(cfg, directory, state, username)
        if acct is None:
            raise
        return acct
