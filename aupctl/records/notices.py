"""The reminders sent (`aupctl notify`): one row per (key, stage), so each reminder goes once per stage."""

from __future__ import annotations

from collections.abc import Iterable

from ..state import State, now_iso


def sent(state: State, keys: Iterable[str]) -> set[tuple[str, str]]:
    """(key, stage) already sent, of these keys."""
    wanted = sorted(set(keys))
    out: set[tuple[str, str]] = set()
    for i in range(0, len(wanted), 500):  # well under every backend's limit on parameters
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = state.query(f"SELECT notice_key, stage FROM notices WHERE notice_key IN ({marks})", tuple(chunk))
        out |= {(r["notice_key"], r["stage"]) for r in rows}
    return out


def mark_sent(state: State, marks: Iterable[tuple[str, str]], recipients: str, subject: str) -> int:
    """Record (key, stage) pairs as sent now; one already there is kept (returns how many were new)."""
    new = 0
    at = now_iso()
    with state.transaction() as db:
        for key, stage in marks:
            cur = db.execute(
                "INSERT INTO notices (notice_key, stage, sent_at, recipients, subject) VALUES (?,?,?,?,?) "
                "ON CONFLICT (notice_key, stage) DO NOTHING",
                (key, stage, at, recipients, subject),
            )
            new += cur.rowcount or 0
    return new


def history(state: State, key: str) -> list[dict[str, str]]:
    return [
        dict(r)
        for r in state.query(
            "SELECT notice_key, stage, sent_at, recipients, subject FROM notices WHERE notice_key = ? ORDER BY id",
            (key,),
        )
    ]
