"""What the termly report counts over a period (start <= at < end, ISO text): joiners, movers, leavers,
check-ins, approvals. Read only; the report's other figures come from snapshots and evidence."""

from __future__ import annotations

from typing import Any

from ..state import State


def joiners(state: State, start: str, end: str) -> list[dict[str, Any]]:
    """Accounts aupctl created (import or MIS sync) in the period."""
    rows = state.query(
        "SELECT username, role, created_at FROM provisioned WHERE created_at >= ? AND created_at < ? "
        "AND status = 'done' ORDER BY created_at",
        (start, end),
    )
    return [dict(r) for r in rows]


def audited_targets(state: State, actions: tuple[str, ...], start: str, end: str) -> set[str]:
    """Distinct targets (lower-cased) of audit entries with these actions in the period (e.g. role changes)."""
    marks = ",".join("?" * len(actions))
    rows = state.query(
        f"SELECT DISTINCT target FROM audit WHERE action IN ({marks}) AND at >= ? AND at < ?", (*actions, start, end)
    )
    return {r["target"].lower() for r in rows}


def leavers_done(state: State, start: str, end: str) -> list[dict[str, Any]]:
    """Leavers whose access was withdrawn in the period (restored ones included: they were withdrawn)."""
    rows = state.query(
        "SELECT id, username, status, leave_on, done_at, reason FROM leavers WHERE done_at IS NOT NULL "
        "AND done_at >= ? AND done_at < ? ORDER BY done_at",
        (start, end),
    )
    return [dict(r) for r in rows]


def withdrawn_leavers(state: State) -> list[dict[str, Any]]:
    """Every leaver whose withdrawal stands (status 'done'): their accounts should stay disabled."""
    return [dict(r) for r in state.query("SELECT id, username, dn, leave_on, done_at FROM leavers WHERE status='done'")]


def scheduled_leavers(state: State) -> int:
    return int(state.query("SELECT count(*) AS n FROM leavers WHERE status = 'scheduled'")[0]["n"])


def checked_in(state: State, start: str, end: str) -> set[str]:
    """Tags (lower-cased) of laptops with a successful check-in or audit probe in the period."""
    rows = state.query("SELECT DISTINCT tag FROM checkins WHERE ok = 1 AND at >= ? AND at < ?", (start, end))
    return {r["tag"].lower() for r in rows}


def approvals_between(state: State, start: str, end: str) -> dict[str, int]:
    """Approvals granted and ended in the period."""
    granted = state.query("SELECT count(*) AS n FROM approvals WHERE granted_at >= ? AND granted_at < ?", (start, end))
    ended = state.query(
        "SELECT count(*) AS n FROM approvals WHERE ended_at IS NOT NULL AND ended_at >= ? AND ended_at < ?",
        (start, end),
    )
    return {"granted": int(granted[0]["n"]), "ended": int(ended[0]["n"])}
