"""The SQLite store: approvals, AUP signatures, roles, devices, check-ins, leaver snapshots, tasks,
the plan journal and the hash-chained audit log.

WAL and a busy timeout let cron and a technician use it at once; every write is a short
transaction. The audit log is append-only: each entry carries the hash of the one before, so an
entry edited by hand breaks the chain at that entry (`log verify`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AupctlError, ConfigError

GENESIS = "0" * 64

# Each entry moves the schema one version on; never edit an entry that has shipped.
MIGRATIONS: list[str] = [
    # 1: everything the first release needs
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_target ON audit(target);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    CREATE TABLE roles (
        username TEXT PRIMARY KEY COLLATE NOCASE,
        role TEXT NOT NULL,
        source TEXT NOT NULL,          -- 'created' (by aupctl) or 'set' (by hand)
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );

    CREATE TABLE signatures (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL COLLATE NOCASE,
        version TEXT NOT NULL,
        signed_on TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        text_hash TEXT,
        UNIQUE (username, version)
    );

    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL COLLATE NOCASE,
        system TEXT NOT NULL,
        approver TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,          -- 'active', 'waiting' (for an AUP signature), 'ended'
        source TEXT NOT NULL,          -- 'grant', 'adopt', 'import', 'restore'
        granted_at TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        until TEXT,
        ended_at TEXT,
        ended_by TEXT,
        ended_reason TEXT
    );
    CREATE INDEX approvals_user ON approvals(username, system, status);

    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        username TEXT COLLATE NOCASE,
        system TEXT,
        kind TEXT NOT NULL,            -- 'grant', 'revoke', 'collect-laptop', 'mailbox', ...
        text TEXT NOT NULL,
        ref TEXT,                      -- what opened it (e.g. 'leaver:42'); lets a re-run not open it twice
        opened_at TEXT NOT NULL,
        opened_by TEXT NOT NULL,
        closed_at TEXT,
        closed_by TEXT,
        note TEXT
    );
    CREATE INDEX tasks_open ON tasks(closed_at, username);

    CREATE TABLE devices (
        tag TEXT PRIMARY KEY COLLATE NOCASE,
        host TEXT NOT NULL,
        port INTEGER NOT NULL DEFAULT 22,
        os TEXT NOT NULL,
        host_key_type TEXT NOT NULL,
        host_key TEXT NOT NULL,        -- base64 of the pinned public key
        fingerprint TEXT NOT NULL,     -- SHA256:...
        assigned_to TEXT COLLATE NOCASE,
        status TEXT NOT NULL DEFAULT 'active',   -- 'active', 'retired'
        enrolled_at TEXT NOT NULL,
        last_seen TEXT,
        next_due TEXT
    );
    CREATE TABLE device_events (
        id INTEGER PRIMARY KEY,
        tag TEXT NOT NULL COLLATE NOCASE,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        username TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE checkins (
        id INTEGER PRIMARY KEY,
        tag TEXT NOT NULL COLLATE NOCASE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,            -- 'checkin', 'update', 'audit'
        ok INTEGER NOT NULL,
        facts TEXT NOT NULL,           -- JSON from the probe
        findings TEXT NOT NULL         -- JSON list of findings
    );
    CREATE INDEX checkins_tag ON checkins(tag, at);

    CREATE TABLE leavers (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL COLLATE NOCASE,
        dn TEXT,
        status TEXT NOT NULL,          -- 'scheduled', 'withdrawing', 'done', 'cancelled', 'restored'
        leave_on TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        snapshot TEXT,                 -- JSON: OU, groups, attributes, approvals
        scheduled_at TEXT NOT NULL,
        scheduled_by TEXT NOT NULL,
        done_at TEXT,
        restored_at TEXT
    );
    CREATE INDEX leavers_user ON leavers(username, status);

    CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        plan_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,          -- 'done', 'failed'
        at TEXT NOT NULL,
        error TEXT
    );

    CREATE TABLE provisioned (
        username TEXT PRIMARY KEY COLLATE NOCASE,
        dn TEXT NOT NULL,
        staff_code TEXT,
        credentials_file TEXT,         -- where its first password was written (never the password)
        created_at TEXT NOT NULL,
        run_id TEXT NOT NULL
    );
    """,
    # 2: the intake marks an account 'creating' before it touches the directory and 'done' once it has its
    # password, is enabled and in its groups, so a re-run after a crash knows which ones to finish.
    """
    ALTER TABLE provisioned ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
    ALTER TABLE provisioned ADD COLUMN role TEXT;
    """,
]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().isoformat()


def today() -> dt.date:
    return dt.date.today()


def actor() -> str:
    """Who is acting: the OS user (cron runs show as their user too)."""
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        return f"uid{os.getuid()}"


def default_state_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("aupctl")) / "state.db"


def _entry_hash(prev_hash: str, at: str, who: str, action: str, target: str, details: str) -> str:
    payload = json.dumps([prev_hash, at, who, action, target, details], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ChainBreak:
    id: int
    reason: str


class State:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_state_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the state store {self.path}: {exc}", hint="check [state] path") from None
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"the state store {self.path} is not usable: {exc}") from None
        try:
            os.chmod(self.path, 0o600)  # it holds who has access to what
        except OSError:
            pass

    # -- plumbing --
    def _migrate(self) -> None:
        with self.transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise AupctlError(
                    f"the state store {self.path} is from a newer aupctl (schema {version}); upgrade aupctl"
                )
            for i in range(version, len(MIGRATIONS)):
                for stmt in _split_sql(MIGRATIONS[i]):
                    self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version = {i + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so two processes queue instead of deadlocking."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple | dict = ()) -> int:
        """One write in its own transaction (or the caller's); returns lastrowid."""
        with self.transaction() as db:
            return db.execute(sql, params).lastrowid or 0

    # -- audit log --
    def audit(self, action: str, target: str, details: dict[str, Any] | None = None) -> int:
        body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True, default=str)
        who = actor()
        with self.transaction() as db:
            row = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev = row["hash"] if row else GENESIS
            at = now_iso()
            digest = _entry_hash(prev, at, who, action, target, body)
            cur = db.execute(
                "INSERT INTO audit (at, actor, action, target, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                (at, who, action, target, body, prev, digest),
            )
            return cur.lastrowid or 0

    def audit_entries(self, since: str | None = None, target: str | None = None) -> Iterator[AuditEntry]:
        sql, params = "SELECT * FROM audit WHERE 1=1", []
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if target:
            sql += " AND target = ? COLLATE NOCASE"
            params.append(target)
        for row in self.db.execute(sql + " ORDER BY id", params):
            try:
                details = json.loads(row["details"])
            except ValueError:
                details = {"unreadable": row["details"]}
            yield AuditEntry(row["id"], row["at"], row["actor"], row["action"], row["target"], details)

    def verify_audit(self) -> tuple[int, ChainBreak | None]:
        """Walk the chain; return (entries checked, the first break or None)."""
        prev = GENESIS
        count = 0
        expected_id = None
        for row in self.db.execute("SELECT * FROM audit ORDER BY id"):
            count += 1
            if expected_id is not None and row["id"] != expected_id:
                return count, ChainBreak(expected_id, f"entry {expected_id} is missing (next is {row['id']})")
            if row["prev_hash"] != prev:
                return count, ChainBreak(row["id"], "its link to the entry before does not match")
            digest = _entry_hash(
                row["prev_hash"], row["at"], row["actor"], row["action"], row["target"], row["details"]
            )
            if digest != row["hash"]:
                return count, ChainBreak(row["id"], "its content does not match its hash (edited after it was written)")
            prev = row["hash"]
            expected_id = row["id"] + 1
        return count, None

    # -- plan journal --
    def journal(self, plan_id: str, seq: int, action: str, target: str, status: str, error: str | None = None) -> None:
        self.execute(
            "INSERT INTO journal (plan_id, seq, action, target, status, at, error) VALUES (?,?,?,?,?,?,?)",
            (plan_id, seq, action, target, status, now_iso(), error),
        )


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; sqlite3 itself says when one is complete (triggers included)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s.strip(" ;\n")]


def open_state(path: str | None) -> State:
    return State(path)
