"""The count of admin accounts `domain audit` found on each run, so the next run can say what changed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..state import State, now_iso


@dataclass(frozen=True)
class AdminCount:
    at: str
    admins: int
    accounts: tuple[str, ...]


def last_count(state: State, directory: str) -> AdminCount | None:
    """The latest count recorded for this directory (its base DN, normalised by the caller)."""
    rows = state.query(
        "SELECT at, admins, accounts FROM admin_counts WHERE directory = ? ORDER BY id DESC LIMIT 1", (directory,)
    )
    if not rows:
        return None
    try:
        accounts = tuple(str(a) for a in json.loads(rows[0]["accounts"]))
    except (ValueError, TypeError):
        accounts = ()  # edited by hand: the count still compares
    return AdminCount(at=rows[0]["at"], admins=int(rows[0]["admins"]), accounts=accounts)


def record_count(state: State, directory: str, accounts: list[str], at: str | None = None) -> AdminCount:
    """Append this run's count (one row a run; a store kept for years holds a few thousand small rows)."""
    when = at or now_iso()
    names = sorted({a.casefold(): a for a in reversed(accounts)}.values(), key=str.casefold)  # usernames are case-blind
    state.execute(
        "INSERT INTO admin_counts (at, directory, admins, accounts) VALUES (?,?,?,?)",
        (when, directory, len(names), json.dumps(names, ensure_ascii=False)),
    )
    return AdminCount(at=when, admins=len(names), accounts=tuple(names))
