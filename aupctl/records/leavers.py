"""The leavers table: one row per withdrawal, status 'scheduled' -> 'withdrawing' (snapshot taken)
-> 'done', or 'cancelled'; 'restored' after `leaver restore`. Also the tasks a withdrawal opened
(ref 'leaver:ID...') and whether its password step is in the audit log already."""

from __future__ import annotations

import json
from typing import Any

from ..state import State, actor, now_iso
from .tasks import tasks_under

SCHEDULED, WITHDRAWING, DONE, CANCELLED, RESTORED = "scheduled", "withdrawing", "done", "cancelled", "restored"
OPEN_STATUSES = (SCHEDULED, WITHDRAWING, DONE)


def current(state: State, username: str) -> dict[str, Any] | None:
    """The live withdrawal of a person (scheduled, under way or done), if any."""
    rows = state.query(
        f"SELECT * FROM leavers WHERE username = ? AND status IN ({','.join('?' * len(OPEN_STATUSES))}) "
        "ORDER BY id DESC LIMIT 1",
        (username, *OPEN_STATUSES),
    )
    return dict(rows[0]) if rows else None


def latest(state: State, username: str) -> dict[str, Any] | None:
    rows = state.query("SELECT * FROM leavers WHERE username = ? ORDER BY id DESC LIMIT 1", (username,))
    return dict(rows[0]) if rows else None


def open_rows(state: State) -> list[dict[str, Any]]:
    """username, status and leave_on of every live withdrawal (laptop enrol refuses a leaver's laptop)."""
    marks = ",".join("?" * len(OPEN_STATUSES))
    rows = state.query(f"SELECT username, status, leave_on FROM leavers WHERE status IN ({marks})", OPEN_STATUSES)
    return [dict(r) for r in rows]


def rows(state: State, *, status: str | None = None) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM leavers", []
    if status:
        sql += " WHERE status = ?"
        params.append(status)
    return [dict(r) for r in state.query(sql + " ORDER BY leave_on, id", tuple(params))]


def due(state: State, on: str) -> list[dict[str, Any]]:
    """Scheduled for `on` (YYYY-MM-DD) or earlier, and any withdrawal a crash left half done."""
    found = state.query(
        "SELECT * FROM leavers WHERE (status = ? AND leave_on <= ?) OR status = ? ORDER BY leave_on, id",
        (SCHEDULED, on, WITHDRAWING),
    )
    return [dict(r) for r in found]


def tasks_of(state: State, leaver_id: int) -> list[dict[str, Any]]:
    """Tasks a withdrawal opened: ref 'leaver:ID' (mailbox) or 'leaver:ID:KIND:ITEM'."""
    return tasks_under(state, f"leaver:{leaver_id}")


def password_replaced(state: State, username: str, leaver_id: int) -> bool:
    """Did an earlier run of this withdrawal already replace the password? The audit log says so (the details
    read in Python: JSON functions differ between SQLite and PostgreSQL)."""
    found = state.query(
        "SELECT details FROM audit WHERE action = 'set-password' AND target = ? COLLATE NOCASE", (username,)
    )
    for row in found:
        try:
            if json.loads(row["details"]).get("leaver_id") == leaver_id:
                return True
        except (ValueError, AttributeError):
            continue
    return False


def schedule(state: State, username: str, dn: str, leave_on: str, reason: str) -> int:
    return state.execute(
        "INSERT INTO leavers (username, dn, status, leave_on, reason, scheduled_at, scheduled_by) "
        "VALUES (?,?,?,?,?,?,?)",
        (username, dn, SCHEDULED, leave_on, reason, now_iso(), actor()),
    )


def reschedule(state: State, leaver_id: int, leave_on: str, reason: str) -> None:
    state.execute("UPDATE leavers SET leave_on = ?, reason = ? WHERE id = ?", (leave_on, reason, leaver_id))


def cancel(state: State, leaver_id: int) -> None:
    state.execute("UPDATE leavers SET status = ? WHERE id = ? AND status = ?", (CANCELLED, leaver_id, SCHEDULED))


def start_withdrawal(
    state: State,
    leaver_id: int | None,
    *,
    username: str,
    dn: str,
    leave_on: str,
    reason: str,
    snapshot: dict[str, Any],
) -> int:
    """Keep the snapshot and mark the withdrawal under way (a new row if it was never scheduled)."""
    body = json.dumps(snapshot)
    with state.transaction() as db:
        if leaver_id is not None:
            db.execute(
                "UPDATE leavers SET status = ?, dn = ?, snapshot = ?, leave_on = ?, reason = ? WHERE id = ?",
                (WITHDRAWING, dn, body, leave_on, reason, leaver_id),
            )
            return leaver_id
        cur = db.execute(
            "INSERT INTO leavers (username, dn, status, leave_on, reason, snapshot, scheduled_at, "
            "scheduled_by) VALUES (?,?,?,?,?,?,?,?)",
            (username, dn, WITHDRAWING, leave_on, reason, body, now_iso(), actor()),
        )
        return cur.lastrowid or 0


def finish_withdrawal(state: State, leaver_id: int, dn: str) -> None:
    state.execute("UPDATE leavers SET status = ?, done_at = ?, dn = ? WHERE id = ?", (DONE, now_iso(), dn, leaver_id))


def mark_restored(state: State, leaver_id: int, dn: str) -> None:
    state.execute(
        "UPDATE leavers SET status = ?, restored_at = ?, dn = ? WHERE id = ?", (RESTORED, now_iso(), dn, leaver_id)
    )
