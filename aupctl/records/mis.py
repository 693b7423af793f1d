"""The MIS export's header set, as last seen (a changed set is refused: a re-made report may map wrongly)."""

from __future__ import annotations

import json

from ..state import State, now_iso

_TABLE = "CREATE TABLE IF NOT EXISTS mis_headers (profile TEXT PRIMARY KEY, headers TEXT NOT NULL, seen_at TEXT)"


def last_headers(state: State, profile: str) -> list[str] | None:
    state.execute(_TABLE)
    rows = state.query("SELECT headers FROM mis_headers WHERE profile = ?", (profile,))
    return list(json.loads(rows[0]["headers"])) if rows else None


def remember_headers(state: State, profile: str, headers: list[str]) -> None:
    state.execute(_TABLE)
    state.execute(
        "INSERT INTO mis_headers (profile, headers, seen_at) VALUES (?,?,?) "
        "ON CONFLICT(profile) DO UPDATE SET headers=excluded.headers, seen_at=excluded.seen_at",
        (profile, json.dumps(sorted(headers)), now_iso()),
    )
