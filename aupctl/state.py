"""The SQLite store: approvals, AUP signatures, roles, devices, check-ins, leaver snapshots, tasks,
the plan journal and the hash-chained audit log.

WAL and a busy timeout let cron and a technician use it at once; every write is a short
transaction. The audit log is append-only and a keyed hash chain (its key, checkpoints and
verification: aupctl/auditlog.py), so an entry edited, removed or forged by hand is found (`log verify`).
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
    # 3: the audit chain is keyed (HMAC-SHA256; the key is kept apart from the store, aupctl/auditlog.py).
    # Entries from keyed_from on carry their key's fingerprint; earlier ones stay plain SHA-256 and still
    # verify. store_id is in every keyed entry and checkpoint, so entries or a whole store copied from
    # another are caught. Checkpoints taken are recorded here too, so a missing checkpoints file is noticed.
    """
    ALTER TABLE audit ADD COLUMN key_id TEXT;
    CREATE TABLE audit_keying (
        store_id TEXT NOT NULL,
        keyed_from INTEGER NOT NULL,   -- the first entry id with a keyed hash
        since TEXT NOT NULL
    );
    INSERT INTO audit_keying (store_id, keyed_from, since)
        SELECT lower(hex(randomblob(16))), COALESCE(MAX(id), 0) + 1, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
        FROM audit;
    CREATE TRIGGER audit_keying_no_insert BEFORE INSERT ON audit_keying
        BEGIN SELECT RAISE(ABORT, 'the audit keying record is fixed'); END;
    CREATE TRIGGER audit_keying_no_update BEFORE UPDATE ON audit_keying
        BEGIN SELECT RAISE(ABORT, 'the audit keying record is fixed'); END;
    CREATE TRIGGER audit_keying_no_delete BEFORE DELETE ON audit_keying
        BEGIN SELECT RAISE(ABORT, 'the audit keying record is fixed'); END;
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        entries INTEGER NOT NULL,
        head TEXT NOT NULL,
        file TEXT NOT NULL,            -- where the signed line was written
        mac TEXT NOT NULL
    );
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'the checkpoint record is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'the checkpoint record is append-only'); END;
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

    # -- audit log (the keyed chain, its key and checkpoints: aupctl/auditlog.py) --
    audit_key_source: Any = None  # an auditlog.KeySource; None = the default file (auditlog.KeySource.default())
    _audit_key: Any = None

    def use_audit_key(self, source: Any) -> None:
        """Where the audit key lives (auditlog.attach(state, cfg) passes the config's)."""
        self.audit_key_source, self._audit_key = source, None

    def audit_key(self, *, create: bool = False) -> Any:
        """The audit key (an auditlog.AuditKey), None if there is none yet. With create, one is made on first
        use, but only for a log with no keyed entry and no checkpoint: a lost key is never silently replaced."""
        if self._audit_key is None:
            from .auditlog import KeySource, missing_key_error

            source = self.audit_key_source or KeySource.default()
            key = source.load()
            if key is None and create:
                row = self.db.execute(
                    "SELECT key_id FROM audit WHERE key_id IS NOT NULL ORDER BY id DESC LIMIT 1"
                ).fetchone()
                signed = self.db.execute("SELECT COUNT(*) FROM audit_checkpoints").fetchone()[0]
                if row or signed:
                    raise missing_key_error(source, row[0] if row else None)
                key = source.load_or_create()
            self._audit_key = key
        return self._audit_key

    def audit(self, action: str, target: str, details: dict[str, Any] | None = None) -> int:
        from .auditlog import keying, wrong_key_error

        body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True, default=str)
        who = actor()
        with self.transaction() as db:
            store_id, _, problem = keying(db)
            if problem:
                raise AupctlError(f"cannot add to the audit log: {problem}", hint="run `aupctl log verify`")
            row = db.execute("SELECT id, hash, key_id FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            key = self.audit_key(create=True)
            if row and row["key_id"] and row["key_id"] != key.fingerprint:
                raise wrong_key_error(key, row["key_id"])
            entry_id = row["id"] + 1 if row else 1
            prev = row["hash"] if row else GENESIS
            at = now_iso()
            digest = key.entry_hash(store_id, entry_id, prev, at, who, action, target, body)
            db.execute(
                "INSERT INTO audit (id, at, actor, action, target, details, prev_hash, hash, key_id)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (entry_id, at, who, action, target, body, prev, digest, key.fingerprint),
            )
            return entry_id

    def audit_entries(self, since: str | None = None, target: str | None = None) -> Iterator[AuditEntry]:
        sql, params = "SELECT * FROM audit WHERE 1=1", []
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if target:
            sql += " AND target = ? COLLATE NOCASE"
            params.append(target)
        try:
            rows = self.db.execute(sql + " ORDER BY id", params)  # "no such table" comes here, not mid-walk
        except sqlite3.OperationalError as exc:  # e.g. the table dropped by hand
            raise AupctlError(f"cannot read the audit log: {exc}", hint="run `aupctl log verify`") from None
        for row in rows:
            try:
                details = json.loads(row["details"])
            except ValueError:
                details = {"unreadable": row["details"]}
            yield AuditEntry(row["id"], row["at"], row["actor"], row["action"], row["target"], details)

    def verify_audit(self) -> tuple[int, ChainBreak | None]:
        """Walk the chain; return (entries checked, the first break or None). The checkpoints, triggers and
        tables are checked by auditlog.verify (`log verify`)."""
        from .auditlog import keying, walk_chain

        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='audit'").fetchone():
            return 0, ChainBreak(0, "the audit table is missing from the store (dropped)")
        store_id, keyed_from, problem = keying(self.db)
        if problem:
            return 0, ChainBreak(0, problem)
        count, broken, _ = walk_chain(self, store_id=store_id, keyed_from=keyed_from)
        return count, broken

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
