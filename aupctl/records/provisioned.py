"""The provisioned table: accounts `staff import` made, 'creating' from the moment their password is on
disk until they are whole ('done'), so a re-run finishes them with the password already written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..state import State, now_iso


@dataclass(frozen=True)
class Creating:
    """One account about to be made, its password already in `credentials_file`."""

    username: str
    dn: str
    staff_code: str | None
    role: str


def by_username(state: State) -> dict[str, dict[str, Any]]:
    """Every row, keyed by the lower-cased username."""
    return {r["username"].lower(): dict(r) for r in state.query("SELECT * FROM provisioned")}


def mark_creating(state: State, accounts: list[Creating], *, credentials_file: str, run_id: str) -> None:
    with state.transaction() as db:
        for a in accounts:
            db.execute(
                "INSERT INTO provisioned (username, dn, staff_code, credentials_file, created_at, run_id,"
                " status, role) VALUES (?,?,?,?,?,?,'creating',?) ON CONFLICT(username) DO UPDATE SET"
                " dn=excluded.dn, staff_code=excluded.staff_code, credentials_file=excluded.credentials_file,"
                " created_at=excluded.created_at, run_id=excluded.run_id, status='creating',"
                " role=excluded.role",
                (a.username, a.dn, a.staff_code, credentials_file, now_iso(), run_id, a.role),
            )


def mark_done(state: State, username: str) -> None:
    """Inside the caller's transaction when there is one (with the role and the audit entry)."""
    state.execute("UPDATE provisioned SET status='done' WHERE username=?", (username,))
