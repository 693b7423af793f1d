"""The approvals record (policy 1.3): who may use which restricted system, who approved it, until when.

The data layer only; the rules live in eligibility.py (who may hold a system) and access/ (approvers).
"""

from __future__ import annotations

from typing import Any

from ..state import State, actor, now_iso


def record(
    state: State,
    *,
    username: str,
    system: str,
    approver: str,
    reason: str = "",
    until: str | None = None,
    source: str = "grant",
    status: str = "active",
) -> int:
    """Record an approval, ending any earlier open one for the same person and system (one live row each)."""
    with state.transaction() as db:
        db.execute(
            "UPDATE approvals SET status='ended', ended_at=?, ended_by=?, ended_reason='superseded' "
            "WHERE username=? AND system=? AND status IN ('active','waiting')",
            (now_iso(), actor(), username, system),
        )
        cur = db.execute(
            "INSERT INTO approvals (username, system, approver, reason, status, source, granted_at, granted_by, until)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (username, system, approver, reason, status, source, now_iso(), actor(), until),
        )
        return int(cur.lastrowid or 0)


def end(state: State, *, username: str, system: str | None = None, reason: str) -> list[dict[str, Any]]:
    """End the live approvals of a person (for one system or all); returns the rows ended."""
    with state.transaction() as db:
        sql = "SELECT * FROM approvals WHERE username=? AND status IN ('active','waiting')"
        params: list[Any] = [username]
        if system:
            sql += " AND system=?"
            params.append(system)
        rows = [dict(r) for r in db.execute(sql, params)]
        for r in rows:
            db.execute(
                "UPDATE approvals SET status='ended', ended_at=?, ended_by=?, ended_reason=? WHERE id=?",
                (now_iso(), actor(), reason, r["id"]),
            )
    return rows


def live(
    state: State,
    *,
    username: str | None = None,
    system: str | None = None,
    status: tuple[str, ...] = ("active", "waiting"),
    columns: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Live approvals, oldest first; `columns` (names from the schema, not user input) limits what is read."""
    what = ", ".join(columns) if columns else "*"
    sql = f"SELECT {what} FROM approvals WHERE status IN ({','.join('?' * len(status))})"
    params: list[Any] = list(status)
    if username:
        sql += " AND username = ? COLLATE NOCASE"
        params.append(username)
    if system:
        sql += " AND system = ?"
        params.append(system)
    return [dict(r) for r in state.query(sql + " ORDER BY id", tuple(params))]


def get(state: State, approval_id: int) -> dict[str, Any] | None:
    rows = state.query("SELECT * FROM approvals WHERE id=?", (approval_id,))
    return dict(rows[0]) if rows else None


def ever_recorded(state: State, system: str) -> bool:
    """Was any approval of this system ever recorded (live or ended)? None is aupctl's first contact."""
    return bool(state.query("SELECT 1 FROM approvals WHERE system = ? LIMIT 1", (system,)))


def set_waiting(state: State, approval_id: int) -> int:
    """Put an active approval back to waiting (for an AUP signature); returns state.execute's answer."""
    return state.execute("UPDATE approvals SET status='waiting' WHERE id=? AND status='active'", (approval_id,))


def keep_granted(state: State, approval_id: int, granted_at: str, granted_by: str) -> int:
    """Give an approval its original grant time and granter (a restored leaver's review clock keeps running
    from the original grant)."""
    return state.execute(
        "UPDATE approvals SET granted_at = ?, granted_by = ? WHERE id = ?", (granted_at, granted_by, approval_id)
    )


def recertify(state: State, approval_id: int, approver: str) -> int:
    """Renew an approval's review clock: its approver kept it in a recertification (the grant stays as it was)."""
    with state.transaction() as db:
        return db.execute(
            "UPDATE approvals SET recertified_at = ?, recertified_by = ? WHERE id = ? AND status IN ('active','waiting')",
            (now_iso(), approver, approval_id),
        ).rowcount
