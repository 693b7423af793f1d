"""`access list` and `access systems`: what is on record and what each system's group holds (read only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..config import Config
from ..directory import Directory
from ..records import approvals
from ..state import State
from .members import read_memberships


def list_rows(cfg: Config, state: State, system_key: str | None = None) -> list[dict[str, Any]]:
    """Who has what on record, who approved it and when (active and waiting approvals)."""
    if system_key:
        cfg.system(system_key)
    rows = []
    for r in approvals.live(state, system=system_key):
        system = cfg.systems.get(r["system"])
        rows.append(
            {
                "username": r["username"],
                "system": r["system"],
                "system_name": system.name if system else r["system"],
                "status": r["status"],
                "approver": r["approver"],
                "granted_at": _when(r["granted_at"]),
                "granted_by": r["granted_by"],
                "until": r["until"],
                "reason": r["reason"],
                "source": r["source"],
                "id": r["id"],
            }
        )
    rows.sort(key=lambda r: (r["system"], r["username"].lower()))
    return rows


def _when(text: str) -> dt.datetime | str:
    """A stored timestamp as a datetime (tables show it to the minute; JSON keeps ISO 8601)."""
    try:
        return dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return text


def systems_rows(cfg: Config, directory: Directory, state: State) -> list[dict[str, Any]]:
    memberships = read_memberships(cfg, directory, [k for k, s in cfg.systems.items() if s.group])
    counts: dict[str, int] = {}
    for r in approvals.live(state, status=("active",)):
        counts[r["system"]] = counts.get(r["system"], 0) + 1
    rows = []
    for key, system in cfg.systems.items():
        members = memberships.get(key)
        rows.append(
            {
                "system": key,
                "name": system.name,
                "group": system.group or "by hand",
                "roles": [name for name, role in cfg.roles.items() if key in role.systems],
                "approvers": system.approvers,
                "members": (len(members) if members is not None else None) if system.group else None,
                "approved": counts.get(key, 0),
                "review_days": system.review_days,
            }
        )
    return rows
