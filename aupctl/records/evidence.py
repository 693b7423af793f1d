"""Evidence (the termly report): what no tool can check, recorded by hand with `aupctl evidence record`.

A file given as evidence is hashed (SHA-256) and its path kept; it is never copied into the store.
"""

from __future__ import annotations

from typing import Any

from ..state import State, actor, now_iso

# kind -> (what it means, in plain words; how long it stays current in months: 0 = this term, None = once
# is enough). The report marks a kind missing or out of date from these.
KINDS: dict[str, tuple[str, int | None]] = {
    "backup-tested": ("a restore from backup was tested", 0),
    "cyber-training": ("cyber security training for staff", 12),
    "governor-training": ("cyber security training for a governor", 12),
    "risk-assessment": ("the cyber risk assessment was reviewed", 0),
    "incident": ("a cyber incident, and its report to the governing body", None),
    "cyberalarm": ("registered with Police CyberAlarm", None),
    "response-plan": ("the cyber response plan was written or reviewed", 12),
}


def record(
    state: State, *, kind: str, on: str, note: str, file_path: str | None, file_sha256: str | None
) -> dict[str, Any]:
    """One evidence row; returns it."""
    with state.transaction() as db:
        row = db.execute(
            "INSERT INTO evidence (kind, happened_on, note, file_path, file_sha256, recorded_by, recorded_at) "
            "VALUES (?,?,?,?,?,?,?) RETURNING id",
            (kind, on, note, file_path, file_sha256, actor(), now_iso()),
        ).fetchone()
        got = db.execute("SELECT * FROM evidence WHERE id = ?", (row[0],)).fetchone()
    return dict(got)


def rows(state: State, *, kind: str | None = None) -> list[dict[str, Any]]:
    """Every evidence row (of a kind), newest first."""
    sql, params = "SELECT * FROM evidence", []
    if kind:
        sql += " WHERE kind = ?"
        params.append(kind)
    return [dict(r) for r in state.query(sql + " ORDER BY happened_on DESC, id DESC", tuple(params))]
