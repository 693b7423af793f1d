"""A trust's schools: each school's own store, and who may change which school (docs/trust.md).

The config side ([schools.KEY] over trust-wide defaults, --school) is aupctl.config.Trust; this module is
what a run does with the school it is for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import RefusedError

if TYPE_CHECKING:
    from .config import Config
    from .directory import Directory
    from .state import State


def store_for(cfg: Config) -> State:
    """The state store of cfg's school, with the config's audit key; every audit entry it writes names the
    school. One store per school: on SQLite a file of its own (cfg.state.path is already the school's,
    see Trust._school_data); on PostgreSQL a schema per school, named after its key. The one place a store
    is opened for a command (and for doctor)."""
    from .auditlog import attach
    from .state import open_store

    state = open_store(cfg.state, namespace_of(cfg.school_key), path=cfg.state.path)
    state.school = cfg.school_key
    return attach(state, cfg)


def namespace_of(key: str | None) -> str | None:
    """A school key as a PostgreSQL schema name (no '-' there; config refuses two keys that would meet)."""
    return key.replace("-", "_") if key else None


def acting_names() -> list[str]:
    """Who runs this process, as [schools.KEY] technicians names them: the OS account, and the user who
    ran sudo when there was one (both asked of the OS, never of $USER)."""
    from .state import os_account, sudo_invoker

    names = [os_account()]
    by = sudo_invoker()
    if by and by not in names:
        names.append(by)
    return names


def check_technician(
    cfg: Config, directory: Callable[[], Directory] | None = None, names: list[str] | None = None
) -> None:
    """Refuse (exit 2, nothing changed) a change to a school by someone who is not one of its technicians.

    No school key (a config of one school) or no technicians listed: anyone may, as before. An entry
    "group:NAME" admits members of directory group NAME (nested on AD) whose username is the OS user's;
    `directory` opens the school's directory only when such an entry has to be asked."""
    if cfg.school_key is None or not cfg.technicians:
        return
    names = names if names is not None else acting_names()
    users = {t for t in cfg.technicians if not t.startswith("group:")}
    if users.intersection(names):
        return
    groups = [t.removeprefix("group:").strip() for t in cfg.technicians if t.startswith("group:")]
    if groups and directory is not None and _in_groups(cfg, directory(), groups, names):
        return
    key = cfg.school_key
    raise RefusedError(
        f"school {key} ({cfg.school.name}): {' / '.join(names)} is not one of its technicians, so this changes "
        f"nothing; who may: {', '.join(cfg.technicians)} ([schools.{key}] technicians)",
        hint="ask one of them to run it, or have your name added to that list; read-only jobs (reviews, audits, "
        "lists, --dry-run) are open to the trust's central team",
    )


def _in_groups(cfg: Config, directory: Directory, groups: list[str], names: list[str]) -> bool:
    def norm(dn: str) -> str:
        return ",".join(p.strip().lower() for p in dn.split(","))

    accounts = [a for a in (directory.flavour.find_user(directory, n) for n in names) if a is not None]
    if not accounts:
        return False
    mine = {norm(a.dn) for a in accounts}
    for group in groups:
        members = directory.flavour.effective_members(directory, cfg.group_dn(group)) or {}
        if mine.intersection(norm(m) for m in members):
            return True
    return False
