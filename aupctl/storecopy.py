"""Moving, backing up and checking a state store, on either backend (`aupctl state migrate|backup|verify`).

A copy takes every table row for row (ids kept: the audit chain's MACs cover them, and the store id in
audit_keying comes across too, so the copy verifies with the same key), then verifies the audit chain
on both sides and compares their heads. A copy goes only into an empty store: one that already holds a
school's records is refused, never merged. A PostgreSQL store's backup is a SQLite file written the same
way, so `state verify FILE` checks it and `state migrate --from FILE` restores it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreError
from .state import MIGRATIONS, State, _split_sql, describe_store_error, remove_sqlite_files

# Tables a new store already fills itself: not "records" when deciding whether a target is empty.
_OWN_ROWS = {"audit_keying", "aupctl_schema"}
_KEYING_TRIGGERS = [
    s for s in _split_sql(MIGRATIONS[2]) if re.match(r"CREATE\s+TRIGGER\s+audit_keying_", s, re.IGNORECASE)
]


def _tables_in_order(st: State) -> list[str]:
    return sorted(t for t in st.tables() if t != "aupctl_schema")


def _columns(st: State, table: str) -> list[str]:
    cur = st.db.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - names from the store's own catalogue
    return [str(d[0]).lower() for d in cur.description or ()]


def holds_records(st: State) -> dict[str, int]:
    """Tables with rows a school wrote (table -> rows): a store that is not empty."""
    out = {}
    for table in _tables_in_order(st):
        if table in _OWN_ROWS:
            continue
        n = st.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        if n:
            out[table] = int(n)
    return out


@dataclass
class CopyResult:
    rows: dict[str, int] = field(default_factory=dict)
    entries: int = 0
    head: str = ""
    broken: Any = None  # the copy's first chain break (a backup of a broken log), else None


def _head(st: State) -> str:
    row = st.db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return str(row[0]) if row else ""


def copy_store(src: State, dst: State, *, require_intact: bool = True) -> CopyResult:
    """Every table of src into the empty store dst, in one transaction of dst, read from one snapshot of src
    (others may go on writing to it); then both chains verified. require_intact=False (a backup): a broken
    log is copied as it is, and result.broken says where."""
    if src.backend == "postgresql":
        src.db.execute_raw("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # type: ignore[attr-defined]
    else:
        src.db.execute("BEGIN")  # a read transaction: one snapshot of the WAL
    try:
        return _copy(src, dst, require_intact)
    finally:
        try:
            src.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _copy(src: State, dst: State, require_intact: bool) -> CopyResult:
    if src.schema_version() != dst.schema_version():
        raise StoreError(
            f"the store {src.path} has schema {src.schema_version()}, {dst.path} has {dst.schema_version()}",
            hint="run any aupctl command on the older one first (it migrates), then copy again",
        )
    broken = src.verify_audit()[1]
    if broken is not None and require_intact:
        raise StoreError(
            f"the audit log of {src.path} does not verify (entry {broken.id}: {broken.reason}): not copied",
            hint="`aupctl log verify` says more; a broken log is not moved, so it cannot look sound elsewhere",
        )
    held = holds_records(dst)
    if held:
        what = ", ".join(f"{t} ({n})" for t, n in sorted(held.items()))
        raise StoreError(
            f"the target store {dst.path} already holds records: {what}; nothing was copied",
            hint="copy into an empty store: another namespace (--namespace), or another database",
        )
    result = CopyResult()
    shared = sorted(set(_tables_in_order(src)) & set(_tables_in_order(dst)))
    with dst.transaction() as db:
        _keying_writable(dst, True)
        db.execute("DELETE FROM audit_keying")
        for table in shared:
            cols = [c for c in _columns(src, table) if c in set(_columns(dst, table))]
            names = ", ".join(cols)
            rows = src.db.execute(f"SELECT {names} FROM {table}").fetchall()  # noqa: S608
            if rows:
                db.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({','.join('?' * len(cols))})",  # noqa: S608
                    [tuple(r) for r in rows],
                )
            result.rows[table] = len(rows)
        _keying_writable(dst, False)
        if dst.backend == "postgresql":
            from .pgstore import identity_tables

            for table in sorted(identity_tables(MIGRATIONS) & set(shared)):
                db.execute_raw(  # type: ignore[attr-defined]
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                )
    counts = []
    for side in (src, dst):
        count, side_broken = side.verify_audit()
        if side_broken is not None and require_intact:
            raise StoreError(
                f"after the copy, the audit log of {side.path} breaks at entry {side_broken.id}: {side_broken.reason}"
            )
        counts.append(count)
        result.broken = side_broken
    if _head(src) != _head(dst) or counts[0] != counts[1]:
        raise StoreError(f"after the copy, {dst.path} does not end where {src.path} does (entries or head differ)")
    result.entries, result.head = counts[1], _head(dst)
    return result


def _keying_writable(st: State, writable: bool) -> None:
    """The keying record is fixed by triggers; a copy replaces it once, inside its transaction."""
    if st.backend == "postgresql":
        st.db.execute_raw(f"ALTER TABLE audit_keying {'DISABLE' if writable else 'ENABLE'} TRIGGER USER")  # type: ignore[attr-defined]
        return
    for stmt in _KEYING_TRIGGERS:
        name = stmt.split()[2]
        st.db.execute(f"DROP TRIGGER IF EXISTS {name}" if writable else stmt)


def backup(st: State, target: Path) -> CopyResult:
    """A SQLite file holding the whole store: SQLite's backup API for a SQLite store, a copy row for row for a
    PostgreSQL one. Written aside and moved into place; refuses a file that exists."""
    if target.exists():
        raise StoreError(f"{target} already exists: refusing to overwrite it", hint="name a new file")
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    remove_sqlite_files(tmp)
    try:
        if st.backend == "sqlite":
            old = os.umask(0o077)
            try:
                out = sqlite3.connect(tmp)
            finally:
                os.umask(old)
            try:
                st.db.backup(out)
            finally:
                out.close()
            copy = State(tmp)
            if st.audit_key_source is not None:
                copy.use_audit_key(st.audit_key_source)
            try:
                count, broken = copy.verify_audit()
                result = CopyResult(entries=count, head=_head(copy), broken=broken)
            finally:
                copy.close()
        else:
            copy = State(tmp)
            if st.audit_key_source is not None:
                copy.use_audit_key(st.audit_key_source)
            try:
                result = copy_store(st, copy, require_intact=False)
            finally:
                copy.close()
        os.replace(tmp, target)
    except sqlite3.Error as exc:
        raise describe_store_error(exc, target) from None
    finally:
        remove_sqlite_files(tmp)
    return result


@dataclass
class StoreCheck:
    where: str
    backend: str
    schema: int
    current: int
    integrity: list[str]
    entries: int
    broken: Any
    problems: list[str] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        return self.schema == self.current and not self.integrity and self.broken is None and not self.problems

    def lines(self) -> list[str]:
        out = [f"store {self.where} ({self.backend})"]
        state = "current" if self.schema == self.current else f"aupctl's is {self.current}"
        out.append(f"schema {self.schema} ({state})")
        out.append("integrity: ok" if not self.integrity else "integrity: " + "; ".join(self.integrity))
        if self.broken is None:
            out.append(f"audit log: {self.entries} entries, hash chain verified")
        else:
            out.append(f"audit log BROKEN at entry {self.broken.id}: {self.broken.reason}")
        out.extend(f"BROKEN: {p}" for p in self.problems)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "store": self.where, "backend": self.backend, "schema": self.schema, "current_schema": self.current,
            "integrity": self.integrity or "ok", "entries": self.entries, "sound": self.sound,
            "broken": None if self.broken is None else {"entry": self.broken.id, "reason": self.broken.reason},
            "problems": self.problems,
        }  # fmt: skip


def check_store(st: State, problems: list[str] | None = None, entries: int | None = None) -> StoreCheck:
    """Schema version, integrity and the audit chain (problems/entries: from a fuller auditlog.verify)."""
    count, broken = st.verify_audit()
    return StoreCheck(
        str(st.path), st.backend, st.schema_version(), len(MIGRATIONS), st.integrity_check(full=True),
        count if entries is None else entries, broken, problems or [],
    )  # fmt: skip
