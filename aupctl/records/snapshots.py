"""Snapshots (the termly report's history): one small row per audit or review run, with its counts.

The report charts a term from these instead of re-reading the directory. A run records one whatever its
findings (a clean run is a point on the trend too).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..findings import Finding
from ..state import State, actor, now_iso

# The kinds the report knows; other jobs may record their own (a new kind is charted by name).
KINDS = ("access-review", "password-audit", "laptop-audit", "estate-audit", "domain-audit")


def counts_of(findings: Iterable[Finding]) -> dict[str, dict[str, int]]:
    """Findings counted by check and by severity (what a snapshot keeps: never names)."""
    found = list(findings)
    return {
        "by_check": dict(sorted(Counter(f.check for f in found).items())),
        "by_severity": dict(sorted(Counter(f.severity for f in found).items())),
    }


def record_snapshot(
    state: State, kind: str, findings: Iterable[Finding], subjects: int, *, at: str | None = None
) -> int:
    """Record one run's counts; returns the row id. Raises sqlite3.Error when the store cannot be written
    (the caller decides: an audit must not fail because its history could not be kept)."""
    found = list(findings)
    counts = counts_of(found)
    with state.transaction() as db:
        row = db.execute(
            "INSERT INTO snapshots (kind, at, subjects, total, counts, actor) VALUES (?,?,?,?,?,?) RETURNING id",
            (kind, at or now_iso(), int(subjects), len(found), json.dumps(counts, sort_keys=True), actor()),
        ).fetchone()
    return int(row[0])


def _row(r: sqlite3.Row) -> dict[str, Any]:
    try:
        counts = json.loads(r["counts"])
    except ValueError:
        counts = {}
    return {
        "id": r["id"],
        "kind": r["kind"],
        "at": r["at"],
        "subjects": r["subjects"],
        "total": r["total"],
        "by_check": counts.get("by_check", {}),
        "by_severity": counts.get("by_severity", {}),
    }


def between(state: State, start: str, end: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Snapshots with start <= at < end (ISO timestamps), oldest first."""
    sql = "SELECT * FROM snapshots WHERE at >= ? AND at < ?"
    params: list[Any] = [start, end]
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    return [_row(r) for r in state.query(sql + " ORDER BY at, id", tuple(params))]


def latest(state: State, kind: str, before: str | None = None) -> dict[str, Any] | None:
    """The newest snapshot of a kind (before an ISO timestamp, if given)."""
    sql, params = "SELECT * FROM snapshots WHERE kind = ?", [kind]
    if before:
        sql += " AND at < ?"
        params.append(before)
    rows = state.query(sql + " ORDER BY at DESC, id DESC LIMIT 1", tuple(params))
    return _row(rows[0]) if rows else None
