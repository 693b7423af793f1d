"""A username changed (`staff sync` with [mis] rename = true): every record kept under it moves with it,
in one transaction, so the person's role, approvals, signatures, tasks, leaver rows, provisioning record
and laptops follow the account."""

from __future__ import annotations

from ..state import State

# (table, the column holding a username)
TABLES = (
    ("roles", "username"),
    ("signatures", "username"),
    ("approvals", "username"),
    ("tasks", "username"),
    ("leavers", "username"),
    ("provisioned", "username"),
    ("devices", "assigned_to"),
)
_DN_TABLES = ("leavers", "provisioned")  # tables that also keep the account's DN


def held(state: State, username: str) -> dict[str, int]:
    """table -> rows kept under this username (tables with none left out)."""
    out: dict[str, int] = {}
    for table, col in TABLES:
        n = state.query(f"SELECT COUNT(*) AS n FROM {table} WHERE lower({col}) = ?", (username.lower(),))[0]["n"]
        if n:
            out[table] = n
    return out


def move(state: State, old: str, new: str, old_dn: str = "", new_dn: str = "") -> dict[str, int]:
    """Every record under `old` to `new` (a no-op for the same name), and DNs kept as old_dn to new_dn;
    table -> rows moved."""
    moved: dict[str, int] = {}
    with state.transaction() as db:
        if old.lower() != new.lower():
            for table, col in TABLES:
                n = db.execute(f"UPDATE {table} SET {col} = ? WHERE lower({col}) = ?", (new, old.lower())).rowcount
                if n:
                    moved[table] = n
        if old_dn and new_dn and old_dn != new_dn:
            for table in _DN_TABLES:
                n = db.execute(
                    f"UPDATE {table} SET dn = ? WHERE lower(username) = ? AND lower(dn) = ?",
                    (new_dn, new.lower(), old_dn.lower()),
                ).rowcount
                if n:
                    moved[f"{table}.dn"] = n
    return moved
