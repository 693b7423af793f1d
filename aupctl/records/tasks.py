"""Work to do by hand: grants in systems without a directory group, laptops to collect, mailboxes to
decide on. A task stays open until `tasks done`."""

from __future__ import annotations

from typing import Any

from ..errors import NotFoundError
from ..state import State, actor, now_iso
from ..text import refuse_unsafe


def open_task(
    state: State,
    *,
    kind: str,
    text: str,
    username: str | None = None,
    system: str | None = None,
    ref: str | None = None,
) -> int:
    """Open a task; with a ref, the same open task is not opened twice (re-runs stay idempotent)."""
    with state.transaction() as db:
        if ref is not None:
            row = db.execute(
                "SELECT id FROM tasks WHERE ref = ? AND kind = ? AND closed_at IS NULL", (ref, kind)
            ).fetchone()
            if row:
                return int(row["id"])
        cur = db.execute(
            "INSERT INTO tasks (username, system, kind, text, ref, opened_at, opened_by) VALUES (?,?,?,?,?,?,?)",
            (username, system, kind, text, ref, now_iso(), actor()),
        )
        return int(cur.lastrowid or 0)


def get_task(state: State, task_id: int) -> dict[str, Any]:
    """One task by id (NotFoundError, exit 2, when there is none)."""
    if not 0 < task_id < 2**63:  # beyond SQLite's integers: no such task (not an OverflowError)
        raise NotFoundError(f"no task {task_id}")
    rows = state.query("SELECT * FROM tasks WHERE id = ?", (task_id,))
    if not rows:
        raise NotFoundError(f"no task {task_id}")
    return dict(rows[0])


def close_task(state: State, task_id: int, note: str | None = None) -> dict[str, Any]:
    if not 0 < task_id < 2**63:  # beyond SQLite's integers: no such task (not an OverflowError)
        raise NotFoundError(f"no task {task_id}")
    refuse_unsafe(note, "--note")
    with state.transaction() as db:
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id}")
        if row["closed_at"] is None:
            db.execute(
                "UPDATE tasks SET closed_at = ?, closed_by = ?, note = ? WHERE id = ?",
                (now_iso(), actor(), note, task_id),
            )
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return dict(row)


def list_tasks(
    state: State,
    *,
    open_only: bool = False,
    username: str | None = None,
    kind: str | None = None,
    ref: str | None = None,
) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM tasks WHERE 1=1", []
    if open_only:
        sql += " AND closed_at IS NULL"
    if username:
        sql += " AND username = ? COLLATE NOCASE"
        params.append(username)
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    if ref:
        sql += " AND ref = ?"
        params.append(ref)
    return [dict(r) for r in state.query(sql + " ORDER BY id", tuple(params))]


def tasks_under(state: State, ref: str) -> list[dict[str, Any]]:
    """Tasks whose ref is `ref` or starts with `ref:` (a leaver's: 'leaver:ID' and 'leaver:ID:KIND:ITEM'), oldest first."""
    return [
        dict(r)
        for r in state.query(
            "SELECT * FROM tasks WHERE ref = ? OR substr(ref, 1, ?) = ? ORDER BY id", (ref, len(ref) + 1, ref + ":")
        )
    ]
