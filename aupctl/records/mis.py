"""The MIS export's header set, as last seen (a changed set is refused: a re-made report may map wrongly)."""

from __future__ import annotations

import json

from ..state import State, now_iso


def last_headers(state: State, profile: str) -> list[str] | None:
    rows = state.query("SELECT headers FROM mis_headers WHERE profile = ?", (profile,))
    return list(json.loads(rows[0]["headers"])) if rows else None


def remember_headers(state: State, profile: str, headers: list[str]) -> None:
    state.execute(
        "INSERT INTO mis_headers (profile, headers, seen_at) VALUES (?,?,?) "
        "ON CONFLICT(profile) DO UPDATE SET headers=excluded.headers, seen_at=excluded.seen_at",
        (profile, json.dumps(sorted(headers)), now_iso()),
    )
