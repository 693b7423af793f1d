"""Names the state store knows (for shell completion and "did you mean"): usernames and laptop tags.

Read only and cheap: a few indexed SELECTs, capped, so completing a word never waits on the directory.
"""

from __future__ import annotations

import difflib

from ..state import State

# every table that names a person; provisioned and roles hold most of a school's staff
_USER_TABLES = ("provisioned", "roles", "approvals", "signatures", "leavers", "tasks")


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def usernames(state: State, prefix: str = "", limit: int = 200) -> list[str]:
    """Usernames on record starting with prefix (case-insensitive), sorted, at most limit."""
    found: dict[str, str] = {}
    for table in _USER_TABLES:
        rows = state.query(
            f"SELECT DISTINCT username FROM {table} WHERE username LIKE ? ESCAPE '\\' LIMIT ?",  # noqa: S608 - fixed names
            (_like(prefix), limit),
        )
        for r in rows:
            if r["username"]:
                found.setdefault(r["username"].casefold(), r["username"])
    return sorted(found.values(), key=str.casefold)[:limit]


def tags(state: State, prefix: str = "", limit: int = 200) -> list[str]:
    """Laptop asset tags on record starting with prefix (case-insensitive)."""
    rows = state.query(
        "SELECT tag FROM devices WHERE tag LIKE ? ESCAPE '\\' ORDER BY tag LIMIT ?", (_like(prefix), limit)
    )
    return [r["tag"] for r in rows]


def close_usernames(state: State, wanted: str, n: int = 3) -> list[str]:
    """Usernames on record that look like a misspelling of wanted (for "did you mean")."""
    every = {u.casefold(): u for u in usernames(state, "", limit=100_000)}
    return [every[c] for c in difflib.get_close_matches(wanted.casefold(), list(every), n=n, cutoff=0.75)]
