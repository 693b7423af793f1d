"""The signatures record (policy 8.1, 9.1): who signed which AUP version, when, recorded by whom."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..state import State, actor, now_iso


def signature(state: State, username: str, version: str) -> dict[str, Any] | None:
    rows = state.query("SELECT * FROM signatures WHERE username = ? AND version = ?", (username, version))
    return dict(rows[0]) if rows else None


def signed_users(state: State, version: str) -> set[str]:
    """Lower-cased usernames with a signature of this version (one query, for reviews)."""
    return {r["username"].lower() for r in state.query("SELECT username FROM signatures WHERE version = ?", (version,))}


def of_version(state: State, version: str) -> dict[str, dict[str, Any]]:
    """username (lower) -> their signature of this version."""
    return {
        r["username"].lower(): dict(r) for r in state.query("SELECT * FROM signatures WHERE version = ?", (version,))
    }


def latest_signatures(state: State) -> dict[str, dict[str, Any]]:
    """username (lower) -> their most recent signature."""
    out: dict[str, dict[str, Any]] = {}
    for r in state.query("SELECT * FROM signatures ORDER BY signed_on, id"):
        out[r["username"].lower()] = dict(r)
    return out


def recorded_pairs(state: State) -> set[tuple[str, str]]:
    """(username lower, version) of every signature on record."""
    return {(r["username"].lower(), r["version"]) for r in state.query("SELECT username, version FROM signatures")}


def record(
    state: State, username: str, version: str, signed_on: dt.date, text_hash: str | None, *, audit: bool = True
) -> bool:
    """Record a signature (audit: with its aup-sign audit entry, in the same transaction); a second one of the
    same version is kept as the first (False, and nothing audited)."""
    day = signed_on.isoformat()
    with state.transaction() as db:
        cur = db.execute(
            "INSERT INTO signatures (username, version, signed_on, recorded_by, recorded_at, text_hash) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(username, version) DO NOTHING",
            (username, version, day, actor(), now_iso(), text_hash),
        )
        if audit and cur.rowcount:
            state.audit("aup-sign", username, {"version": version, "signed_on": day, "text_hash": text_hash})
        return bool(cur.rowcount)
