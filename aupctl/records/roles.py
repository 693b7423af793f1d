"""The roles record: a person's role as aupctl recorded it (at creation, or set by hand)."""

from __future__ import annotations

from ..state import State, actor, now_iso


def recorded_roles(state: State) -> dict[str, tuple[str, str]]:
    """username (lower) -> (role, source), source 'created' or 'set'."""
    return {r["username"].lower(): (r["role"], r["source"]) for r in state.query("SELECT * FROM roles")}


def set_role(state: State, username: str, role: str, source: str = "set") -> None:
    state.execute(
        "INSERT INTO roles (username, role, source, recorded_by, recorded_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT(username) DO UPDATE SET role=excluded.role, source=excluded.source, "
        "recorded_by=excluded.recorded_by, recorded_at=excluded.recorded_at",
        (username, role, source, actor(), now_iso()),
    )


def clear_role(state: State, username: str) -> None:
    """Forget a person's role here (a person of two schools who left this one)."""
    state.execute("DELETE FROM roles WHERE lower(username) = ?", (username.lower(),))
