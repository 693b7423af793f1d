"""The laptops' tables: devices (one row per asset tag), checkins (every probe's result) and
device_events (enrol, assign, return, retire, check-ins: the history `laptop show` prints). Rows come
back as sqlite3 rows; aupctl.laptops.inventory turns them into Device and Checkin."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..state import State, actor, now_iso


def device(state: State, tag: str) -> sqlite3.Row | None:
    rows = state.query("SELECT * FROM devices WHERE tag = ?", (tag,))
    return rows[0] if rows else None


def active_tags(state: State, limit: int) -> list[str]:
    return [
        r["tag"] for r in state.query("SELECT tag FROM devices WHERE status = 'active' ORDER BY tag LIMIT ?", (limit,))
    ]


def devices(state: State, *, include_retired: bool = False) -> list[sqlite3.Row]:
    sql = "SELECT * FROM devices" + ("" if include_retired else " WHERE status = 'active'")
    return state.query(sql + " ORDER BY tag")


def assigned_to(state: State, username: str) -> list[str]:
    """Tags of the active laptops assigned to a person (a leaver's laptops to collect)."""
    rows = state.query("SELECT tag FROM devices WHERE assigned_to = ? AND status = 'active' ORDER BY tag", (username,))
    return [r["tag"] for r in rows]


def latest_checkin(state: State, tag: str, *, probed: bool = False) -> sqlite3.Row | None:
    sql = "SELECT * FROM checkins WHERE tag = ?" + (" AND ok = 1" if probed else "") + " ORDER BY id DESC LIMIT 1"
    rows = state.query(sql, (tag,))
    return rows[0] if rows else None


def last_checkin_at(state: State, tag: str) -> str | None:
    rows = state.query(
        "SELECT at FROM checkins WHERE tag = ? AND kind IN ('checkin', 'update') ORDER BY id DESC LIMIT 1", (tag,)
    )
    return rows[0]["at"] if rows else None


def events(state: State, tag: str, limit: int) -> list[sqlite3.Row]:
    return state.query(
        "SELECT at, event, username, details FROM device_events WHERE tag = ? ORDER BY id DESC LIMIT ?", (tag, limit)
    )


def add_event(state: State, tag: str, name: str, username: str | None, details: dict[str, Any]) -> None:
    state.execute(
        "INSERT INTO device_events (tag, at, event, username, details) VALUES (?,?,?,?,?)",
        (tag, now_iso(), name, username, json.dumps({"by": actor(), **details}, ensure_ascii=False, default=str)),
    )


def enrol(
    state: State,
    *,
    tag: str,
    host: str,
    port: int,
    os_name: str,
    key_type: str,
    key_b64: str,
    fp: str,
    next_due: str,
    replace: bool,
) -> None:
    """A new laptop, or (replace) a new host and key pinned for one already enrolled."""
    if replace:
        state.execute(
            "UPDATE devices SET host=?, port=?, os=?, host_key_type=?, host_key=?, fingerprint=?, status='active' "
            "WHERE tag=?",
            (host, port, os_name, key_type, key_b64, fp, tag),
        )
    else:
        state.execute(
            "INSERT INTO devices (tag, host, port, os, host_key_type, host_key, fingerprint, enrolled_at, next_due) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (tag, host, port, os_name, key_type, key_b64, fp, now_iso(), next_due),
        )


def set_assigned(state: State, tag: str, username: str | None) -> str | None:
    """Assign (or with None return) a laptop; the previous holder, if any."""
    with state.transaction() as db:
        before = db.execute("SELECT assigned_to FROM devices WHERE tag = ?", (tag,)).fetchone()
        db.execute("UPDATE devices SET assigned_to = ? WHERE tag = ?", (username, tag))
    return before["assigned_to"] if before else None


def retire(state: State, tag: str) -> str | None:
    """Retire a laptop; the person it was assigned to, if any."""
    with state.transaction() as db:
        before = db.execute("SELECT assigned_to FROM devices WHERE tag = ?", (tag,)).fetchone()
        db.execute("UPDATE devices SET status = 'retired', assigned_to = NULL WHERE tag = ?", (tag,))
    return before["assigned_to"] if before else None


def add_checkin(state: State, tag: str, at: str, kind: str, *, ok: bool, facts: str, findings: str) -> None:
    state.execute(
        "INSERT INTO checkins (tag, at, kind, ok, facts, findings) VALUES (?,?,?,?,?,?)",
        (tag, at, kind, 1 if ok else 0, facts, findings),
    )


def seen(state: State, tag: str, at: str, *, next_due: str | None = None) -> None:
    """A probe worked at `at`; a check-in also sets when the next one is due."""
    state.execute("UPDATE devices SET last_seen = ? WHERE tag = ?", (at, tag))
    if next_due is not None:
        state.execute("UPDATE devices SET next_due = ? WHERE tag = ?", (next_due, tag))


def checkin_facts(state: State, tag: str, since: str) -> list[sqlite3.Row]:
    """(at, facts) of a laptop's probes that worked since an ISO time, oldest first (estate audit reads
    when a pending update was first seen)."""
    return state.query(
        "SELECT at, facts FROM checkins WHERE tag = ? AND ok = 1 AND at >= ? ORDER BY id", (tag, since)
    )
