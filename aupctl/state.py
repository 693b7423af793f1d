"""The SQLite store: approvals, AUP signatures, roles, devices, check-ins, leaver snapshots, tasks,
the plan journal, leases and the hash-chained audit log.

WAL and a busy timeout let cron and a technician use it at once; every write is a short
transaction. The audit log is append-only and a keyed hash chain (its key, checkpoints and
verification: aupctl/auditlog.py), so an entry edited, removed or forged by hand is found (`log verify`).

The store is guarded: a file that exists but is empty or not aupctl's is refused, never re-created
(a new store only where no file exists, or by `aupctl state init`); it is made owner-only, -wal and
-shm included. Each change is journalled as intended before it runs (plan.apply), so one the store
failed to record is found and reconciled by the next run (plan.reconcile, `aupctl log repair`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auditchain import (
    GENESIS,
    ChainBreak,
    KeySource,
    keying,
    missing_key_error,
    walk_chain,
    wrong_key_error,
)
from .errors import AupctlError, ConfigError, StoreBusyError, StoreError

if TYPE_CHECKING:
    from . import config

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
    # 4: each change journalled as 'intended' before it runs, with what reconciling it needs (what it was,
    # how to check it in the directory, which run owns it); leases that keep bulk runs apart.
    """
    ALTER TABLE journal ADD COLUMN description TEXT;
    ALTER TABLE journal ADD COLUMN details TEXT;
    ALTER TABLE journal ADD COLUMN check_spec TEXT;
    ALTER TABLE journal ADD COLUMN local INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE journal ADD COLUMN owner TEXT;
    ALTER TABLE journal ADD COLUMN actor TEXT;
    ALTER TABLE journal ADD COLUMN outcome TEXT;
    ALTER TABLE journal ADD COLUMN closed_at TEXT;
    CREATE INDEX journal_status ON journal(status);

    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,          -- actor@host pid N, for the message a second run shows
        owner TEXT NOT NULL,           -- host:pid:start, to tell a live holder from a killed one
        what TEXT NOT NULL,            -- the command holding it
        since TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    """,
    # 5: the MIS export's header set as last seen, per profile (`staff sync` refuses a changed set)
    """
    CREATE TABLE IF NOT EXISTS mis_headers (
        profile TEXT PRIMARY KEY,
        headers TEXT NOT NULL,
        seen_at TEXT
    );
    """,
    # 6: termly recertification (`access recertify`): a campaign asks each system's approvers about its
    # members as they were when it started (the member list kept per system in `systems`, JSON, so a
    # changed list is found); each decision is kept; an approval kept by an approver has its review clock
    # renewed (recertified_at), not its grant rewritten.
    """
    CREATE TABLE recert_campaigns (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,     -- in file names and the files' campaign column
        status TEXT NOT NULL,          -- 'open', 'closed'
        due TEXT NOT NULL,             -- YYYY-MM-DD
        systems TEXT NOT NULL,         -- JSON: key -> name, approvers, member keys, fingerprint, by_hand
        out_dir TEXT,
        opened_at TEXT NOT NULL,
        opened_by TEXT NOT NULL,
        closed_at TEXT,
        closed_by TEXT
    );
    CREATE TABLE recert_items (
        id INTEGER PRIMARY KEY,
        campaign_id INTEGER NOT NULL,
        system TEXT NOT NULL,
        username TEXT NOT NULL,
        user_key TEXT NOT NULL,        -- username lower-cased (matched in Python, not by collation)
        member_key TEXT NOT NULL,      -- normalised member DN, or user:NAME for a system managed by hand
        member_dn TEXT,
        via TEXT,                      -- the nested group that brings them in (AD), else NULL
        name TEXT NOT NULL,
        role TEXT,
        access TEXT NOT NULL,          -- how they got access: grant, adopted, import, no record, ...
        approval_id INTEGER,
        approved_on TEXT,
        approved_by TEXT,
        last_logon TEXT,
        aup_signed INTEGER NOT NULL,
        enacted TEXT,                  -- 'keep' or 'remove' once carried out
        enacted_at TEXT,
        UNIQUE (campaign_id, system, user_key)
    );
    CREATE TABLE recert_decisions (
        id INTEGER PRIMARY KEY,
        campaign_id INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        decision TEXT NOT NULL,        -- 'keep', 'remove'
        approver TEXT NOT NULL,        -- as the config spells it
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,          -- 'decide', 'file', 'unanswered'
        decided_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL
    );
    CREATE INDEX recert_decisions_item ON recert_decisions(campaign_id, item_id);
    ALTER TABLE approvals ADD COLUMN recertified_at TEXT;
    ALTER TABLE approvals ADD COLUMN recertified_by TEXT;
    """,
    # 7: reminders sent (`aupctl notify`): one row per key and stage, written once the SMTP server took the
    # letter, so a re-run sends nothing twice and a run stopped by the server sends the rest next time
    """
    CREATE TABLE IF NOT EXISTS notices (
        id INTEGER PRIMARY KEY,
        notice_key TEXT NOT NULL,      -- what it is about, e.g. 'laptop:HB-LT-0042:2026-12-07:jdoe'
        stage TEXT NOT NULL,           -- e.g. 'before', 'due', 'overdue-2', 'week-0'
        sent_at TEXT NOT NULL,
        recipients TEXT NOT NULL,
        subject TEXT NOT NULL,
        UNIQUE (notice_key, stage)
    );
    """,
    # 8: `domain audit` counts the admin accounts each run, so the next run can say what changed since
    """
    CREATE TABLE admin_counts (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        directory TEXT NOT NULL,       -- the base DN audited, normalised: one store may serve several
        admins INTEGER NOT NULL,
        accounts TEXT NOT NULL         -- JSON list of the admin accounts' usernames (or DNs)
    );
    CREATE INDEX admin_counts_directory ON admin_counts(directory, id);
    """,
    # 9: one small row per audit or review run (its counts, for the termly report's trends), and the
    # evidence no tool can check (backups tested, training, risk assessment...), recorded by hand.
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,            -- 'access-review', 'password-audit', 'laptop-audit', ...
        at TEXT NOT NULL,
        subjects INTEGER NOT NULL,     -- accounts, members or laptops looked at
        total INTEGER NOT NULL,        -- findings
        counts TEXT NOT NULL,          -- JSON: {"by_check": {...}, "by_severity": {...}}
        actor TEXT NOT NULL
    );
    CREATE INDEX snapshots_kind_at ON snapshots(kind, at);
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,            -- 'backup-tested', 'cyber-training', ... (aupctl/records/evidence.py)
        happened_on TEXT NOT NULL,     -- YYYY-MM-DD
        note TEXT NOT NULL DEFAULT '',
        file_path TEXT,                -- where the evidence is kept (not copied)
        file_sha256 TEXT,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX evidence_kind ON evidence(kind, happened_on);
    """,
]

SQLITE_MAGIC = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a write waits for another's transaction ([state] busy_timeout)
DEFAULT_LEASE_TTL = 3600.0  # a bulk run's lease lapses this long after its last renewal ([state] lease_ttl)
OPEN_STATUSES = ("intended", "interrupted")  # journal rows whose outcome nobody has recorded yet


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().isoformat()


def today() -> dt.date:
    return dt.date.today()


@functools.cache
def actor() -> str:
    """Who is acting: the OS account running this process, asked of the OS (never of $USER or
    $SUDO_USER, which anyone can set), with sudo's invoking user beside it: "root (sudo by alice)"."""
    who = os_account()
    by = sudo_invoker()
    return f"{who} (sudo by {by})" if by and by != who else who


def os_account() -> str:
    """The effective account: pwd on POSIX, GetUserNameW on Windows (no top-level pwd import)."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes

        size = ctypes.c_ulong(257)
        buf = ctypes.create_unicode_buffer(size.value)
        if ctypes.windll.advapi32.GetUserNameW(buf, ctypes.byref(size)):
            return buf.value
        return "unknown"
    return _uid_name(os.geteuid())


def _uid_name(uid: int) -> str:
    if sys.platform == "win32":  # POSIX only (pwd); os_account() never calls this on Windows
        raise OSError("no uid names on Windows")
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (a container): the number is still the truth
        return f"uid {uid}"


def sudo_invoker() -> str | None:
    """The user who ran sudo, from the process tree (the nearest `sudo` ancestor runs with the
    invoker's real uid), so a $SUDO_USER set by hand records nothing. None without sudo or /proc."""
    pid = os.getppid()
    for _ in range(64):  # ancestors, nearest first; the bound guards a cycle in odd /proc views
        if pid <= 1:
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Name", "").strip() == "sudo":
            return _uid_name(int(fields["Uid"].split()[0]))
        try:
            pid = int(fields["PPid"].strip())
        except (KeyError, ValueError):
            return None
    return None


def _start_time(pid: int) -> str:
    """A process's start time (Linux): with the pid it tells a live run from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 (starttime), counted after "(comm)"


def run_owner() -> str:
    """This process, as journal intents and leases record it: host:pid:start."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    """Is the run that wrote this owner still running? Only knowable on this host; this process never
    counts (it holds no intent while it asks), nor a pid reused by another program."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's run: its lease expires instead
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill would end the process there
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by someone else
    return not start or _start_time(pid) in ("", start)


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    if sys.platform != "win32":  # ctypes.windll is Windows only; callers check the platform first
        raise OSError("Windows only")
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    try:
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    finally:
        kernel32.CloseHandle(handle)
    return bool(ok) and code.value == 259  # STILL_ACTIVE


def describe_store_error(
    exc: sqlite3.Error, path: Path | str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> AupctlError:
    """A failure of the store as a message naming the file and what to do (never an internal error)."""
    text = str(exc)
    low = text.lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if getattr(exc, "pg", None) is not None:  # PostgreSQL (aupctl/pgstore.py): its own words for the same cases
        from .errors import UnreachableError
        from .pgstore import lost

        if lost(exc):
            return UnreachableError(
                f"the state store server went away or cannot be reached ({path}): {text}",
                hint="check that PostgreSQL is running, then run the same command again: it picks up from where "
                "it stopped",
            )
        if sqlstate == "55P03":  # lock_not_available: lock_timeout ([state] busy_timeout) passed
            low = "locked " + low
        elif sqlstate in ("42P01", "42703"):  # undefined table / column
            low = "no such table " + low
        elif sqlstate.startswith("53"):  # insufficient resources: disk full, out of memory
            low = "full " + low
        elif sqlstate == "42501":  # insufficient privilege
            return StoreError(
                f"the state store {path} refused aupctl's role: {text}",
                hint="grant the role the rights docs/trust.md lists (\"The shared database\")",
            )
    if "locked" in low or "busy" in low:
        return StoreBusyError(
            f"the state store {path} is locked by another aupctl run or a sqlite3 shell "
            f"(waited {busy_timeout:g} s): {text}",
            hint="wait for the other run to finish (or close the shell), then run the same command again; "
            "[state] busy_timeout sets how long to wait",
        )
    if "full" in low:
        return StoreError(
            f"the disk holding the state store {path} is full: {text}",
            hint="free some space on that disk, then run the same command again",
        )
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(
            f"the state store {path} is damaged: {text}",
            hint="restore it from a backup (`aupctl doctor` runs an integrity check)",
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return StoreError(
            f"cannot write the state store {path}: {text}",
            hint="check the permissions of the file and its folder, and that the disk is mounted read-write",
        )
    if "no such table" in low or "no such column" in low:
        return StoreError(
            f"the state store {path} is missing part of aupctl's schema: {text}",
            hint="it was edited by hand or is not aupctl's: restore it from a backup",
        )
    return StoreError(f"the state store {path} failed: {type(exc).__name__}: {text}", hint="`aupctl doctor` checks it")


def default_state_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("aupctl")) / "state.db"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class State:
    def __init__(
        self,
        path: str | Path | None = None,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        url: str | None = None,
        namespace: str | None = None,
        ca_file: str | None = None,
        allow_insecure: bool = False,
        password: str | None = None,
    ) -> None:
        """A SQLite file (path), or with url a PostgreSQL server (aupctl/pgstore.py), in the schema named by
        namespace (a school key; "aupctl" without one). On SQLite a namespace is a different file: the
        caller passes its path."""
        self.busy_timeout = busy_timeout
        self.lease_ttl = lease_ttl
        self._leases: dict[str, float] = {}  # lease name -> when this process last renewed it
        self.audited = 0  # audit entries this process added (--quiet: did this run change anything?)
        self.school: str | None = None  # a trust's school this store is for: named in every audit entry
        self.backend = "postgresql" if url else "sqlite"
        self.namespace = namespace
        if url:
            self._open_postgresql(url, namespace, ca_file, allow_insecure, password)
            return
        if namespace is not None:
            from .pgstore import check_namespace

            check_namespace(namespace)
        self.path = Path(path) if path else default_state_path()
        check_existing(self.path)
        try:
            if not self.path.exists():
                create_store(self.path)
            self.db = _connect(self.path, busy_timeout)
        except OSError as exc:
            raise ConfigError(f"cannot open the state store {self.path}: {exc}", hint="check [state] path") from None
        except sqlite3.Error as exc:
            raise describe_store_error(exc, self.path, busy_timeout) from None
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise describe_store_error(exc, self.path, busy_timeout) from None
        try:
            os.chmod(self.path, 0o600)  # it holds who has access to what
        except OSError:
            pass

    def _open_postgresql(
        self, url: str, namespace: str | None, ca_file: str | None, allow_insecure: bool, password: str | None
    ) -> None:
        from . import pgstore

        schema = pgstore.check_namespace(namespace)
        self.schema = schema
        self.path = f"{pgstore.redact(url)} (schema {schema})"  # type: ignore[assignment]  # what messages name
        self.url = url
        if password is None:
            from .credentials import state_password

            password = state_password(pgstore.redact(url), None)
        try:
            conn = pgstore.connect(
                url,
                schema=schema,
                password=password,
                ca_file=ca_file,
                allow_insecure=allow_insecure,
                busy_timeout=self.busy_timeout,
            )
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise pgstore.describe_connect_error(exc, url) from None
            raise
        self.db = pgstore.Connection(conn, schema, pgstore.identity_tables(MIGRATIONS))  # type: ignore[assignment]
        self._lock_key = pgstore.advisory_key(schema)
        try:
            self._migrate_postgresql()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise describe_store_error(exc, self.path, self.busy_timeout) from None

    def integrity_check(self, full: bool = False) -> list[str]:
        """SQLite's own check of every page (quick_check, or integrity_check with full): [] when sound,
        else the problems it names. On PostgreSQL (the server keeps its pages): every table is there. For doctor."""
        if self.backend == "postgresql":
            missing = sorted(expected_tables() - self.tables())
            return [f"table {t} is missing" for t in missing]
        pragma = "integrity_check" if full else "quick_check"
        try:
            rows = [r[0] for r in self.db.execute(f"PRAGMA {pragma}")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else [str(r) for r in rows]

    def tables(self) -> set[str]:
        """The store's tables (lower-case names)."""
        if self.backend == "postgresql":
            # pg_catalog, not information_schema.tables: that view checks privileges on every table of the
            # database (a trust's every schema), ~10 ms on each store's open, growing with the schools
            rows = self.db.execute(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ?", (self.schema,)
            ).fetchall()
        else:
            rows = self.db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        return {str(r[0]).lower() for r in rows}

    def triggers(self) -> dict[str, str]:
        """The store's triggers, by name, with their SQL normalised (what auditlog.verify compares)."""
        if self.backend == "postgresql":
            rows = self.db.execute(
                "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND NOT t.tgisinternal "
                "AND t.tgenabled <> 'D'",
                (self.schema,),
            ).fetchall()
            prefix = f" on {self.schema}."
            return {r[0]: _normal_sql(r[1]).replace(prefix, " on ") for r in rows}
        rows = self.db.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'").fetchall()
        return {r[0]: _normal_sql(r[1] or "") for r in rows}

    def schema_version(self) -> int:
        if self.backend == "postgresql":
            row = self.db.execute(f"SELECT version FROM {_PG_VERSION_TABLE}").fetchone()
            return int(row[0]) if row else 0
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    # -- plumbing --
    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return  # up to date: no write lock, so readers open the store while another run writes
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

    def _migrate_postgresql(self) -> None:
        """The schema (namespace) and its migrations, under the store's write lock so two first runs do not race;
        each migration's statements translated (pgstore.translate_ddl) and run in one transaction."""
        from . import pgstore

        db = self.db
        assert isinstance(db, pgstore.Connection)
        if _PG_VERSION_TABLE in self.tables() and self.schema_version() == len(MIGRATIONS):
            return  # up to date: no lock, no DDL (a role with no CREATE right opens it: docs/trust.md)
        with self.transaction():
            db.execute_raw(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            db.execute_raw("CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public")
            have = self.tables()
            if _PG_VERSION_TABLE not in have:
                if have:
                    raise StoreError(
                        f"the schema {self.schema} on {pgstore.redact(self.url)} holds tables but not aupctl's "
                        "schema: refusing to use it",
                        hint="name another namespace, or another database in state.url",
                    )
                db.execute_raw(f"CREATE TABLE {_PG_VERSION_TABLE} (version BIGINT NOT NULL)")
                db.execute_raw(f"INSERT INTO {_PG_VERSION_TABLE} (version) VALUES (0)")
            version = self.schema_version()
            if version > len(MIGRATIONS):
                raise AupctlError(f"the state store {self.path} is from a newer aupctl (schema {version}); upgrade aupctl")
            if version < len(MIGRATIONS):
                db.execute_raw(pgstore.REFUSE_FUNCTION)
            for i in range(version, len(MIGRATIONS)):
                for stmt in _split_sql(MIGRATIONS[i]):
                    for pg_stmt in pgstore.translate_ddl(stmt):
                        db.execute_raw(pg_stmt)
                db.execute_raw(f"UPDATE {_PG_VERSION_TABLE} SET version = {i + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so two processes queue instead of deadlocking.
        PostgreSQL: BEGIN and the store's advisory lock (one writer per schema at a time, as on SQLite)."""
        if self.db.in_transaction:
            yield self.db
            return
        if self.backend == "postgresql":
            self.db.execute_raw("BEGIN")  # type: ignore[attr-defined]
            try:
                self.db.execute_raw(f"SELECT pg_advisory_xact_lock({self._lock_key})")  # type: ignore[attr-defined]
            except BaseException:
                self._rollback()
                raise
        else:
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self._rollback()
            raise
        else:
            self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite may have rolled back itself (disk full)
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the first error is the one to report

    def close(self) -> None:
        self.db.close()

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple | dict = ()) -> int:
        """One write in its own transaction (or the caller's); returns lastrowid."""
        with self.transaction() as db:
            return db.execute(sql, params).lastrowid or 0

    # -- audit log (the keyed chain: aupctl/auditchain.py; verification and checkpoints: aupctl/auditlog.py) --
    audit_key_source: KeySource | None = None  # None: the default file (KeySource.default())
    _audit_key: Any = None

    def use_audit_key(self, source: KeySource) -> None:
        """Where the audit key lives (auditlog.attach(state, cfg) passes the config's)."""
        self.audit_key_source, self._audit_key = source, None

    def audit_key(self, *, create: bool = False) -> Any:
        """The audit key (an auditchain.AuditKey), None if there is none yet. With create, one is made on first
        use, but only for a log with no keyed entry and no checkpoint: a lost key is never silently replaced."""
        if self._audit_key is None:
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
        if self.school is not None:  # a trust: which school, in the entry itself (and so in its hash)
            details = {**(details or {}), "school": self.school}
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
        self.audited += 1
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
        if "audit" not in self.tables():
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

    def journal_intent(
        self,
        plan_id: str,
        seq: int,
        action: str,
        target: str,
        description: str,
        details: dict[str, Any],
        check: dict[str, Any] | None,
        local: bool,
    ) -> int:
        """Write down a change as intended before it runs; returns the journal row to close after."""
        body = json.dumps(details, ensure_ascii=False, sort_keys=True, default=str)
        spec = json.dumps(check, ensure_ascii=False, sort_keys=True, default=str) if check is not None else None
        return self.execute(
            "INSERT INTO journal (plan_id, seq, action, target, status, at, description, details, check_spec, "
            "local, owner, actor) VALUES (?,?,?,?,'intended',?,?,?,?,?,?,?)",
            (plan_id, seq, action, target, now_iso(), description, body, spec, int(local), run_owner(), actor()),
        )

    def journal_close(self, journal_id: int, status: str, error: str | None = None) -> None:
        """Mark an intent done, failed or interrupted (inside the caller's transaction, if any)."""
        self.execute(
            "UPDATE journal SET status = ?, error = ?, closed_at = ? WHERE id = ?",
            (status, error, now_iso(), journal_id),
        )

    def open_intents(self, include_live: bool = False) -> list[dict[str, Any]]:
        """Changes begun and never recorded as done or failed, by runs no longer running (oldest first)."""
        rows = self.query(
            f"SELECT * FROM journal WHERE status IN ({','.join('?' * len(OPEN_STATUSES))}) AND owner IS NOT NULL "
            "ORDER BY id",
            OPEN_STATUSES,
        )
        out = []
        for r in rows:
            if not include_live and owner_alive(r["owner"]):
                continue  # another run is doing it right now
            item = dict(r)
            item["details"] = _loads(r["details"]) or {}
            item["check"] = _loads(r["check_spec"])
            out.append(item)
        return out

    def close_intent(self, journal_id: int, outcome: str, why: str) -> bool:
        """Record what became of an open intent, once: the journal row closed and a `reconciled` audit entry,
        in one transaction. False if another run closed it first."""
        with self.transaction() as db:
            row = db.execute(
                f"SELECT * FROM journal WHERE id = ? AND status IN ({','.join('?' * len(OPEN_STATUSES))})",
                (journal_id, *OPEN_STATUSES),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE journal SET status = 'reconciled', outcome = ?, closed_at = ? WHERE id = ?",
                (outcome, now_iso(), journal_id),
            )
            self.audit(
                "reconciled",
                row["target"],
                {
                    **(_loads(row["details"]) or {}),
                    "action": row["action"],
                    "description": row["description"],
                    "outcome": outcome,
                    "why": why,
                    "plan": row["plan_id"],
                    "step": row["seq"],
                    "intended_at": row["at"],
                    "intended_by": row["actor"],
                },
            )
        return True

    # -- leases: one bulk changing run at a time --
    def try_lease(self, name: str, what: str) -> dict[str, Any] | None:
        """Take the lease `name` for this process, or return who holds it. A holder that was killed (its pid
        gone on this host) or whose lease expired does not count."""
        now = now_iso()
        with self.transaction() as db:
            row = db.execute("SELECT * FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row["owner"] != run_owner() and row["expires"] > now and owner_alive(row["owner"]):
                return dict(row)
            expires = (now_dt := now_utc()) + dt.timedelta(seconds=self.lease_ttl)
            db.execute(
                "INSERT INTO leases (name, holder, owner, what, since, expires) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, owner = excluded.owner, "
                "what = excluded.what, since = excluded.since, expires = excluded.expires",
                (
                    name,
                    f"{actor()}@{socket.gethostname()} pid {os.getpid()}",
                    run_owner(),
                    what,
                    now_dt.isoformat(),
                    expires.isoformat(),
                ),
            )
        self._leases[name] = time.monotonic()
        return None

    def lease(
        self,
        name: str,
        what: str,
        *,
        wait: bool = True,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.5,
    ) -> None:
        """Take the lease, waiting for the holder to finish (on_wait is told once whom for), or refusing
        at once with StoreBusyError when wait is False."""
        told = None
        while True:
            holder = self.try_lease(name, what)
            if holder is None:
                return
            if not wait:
                raise StoreBusyError(
                    f"another changing run holds the lease on {self.path}: {holder['what']} by {holder['holder']} "
                    f"since {holder['since']}; nothing was changed",
                    hint="run again when it has finished, or without --no-wait to wait for it",
                )
            if on_wait is not None and holder["owner"] != told:
                on_wait(holder)
                told = holder["owner"]
            time.sleep(poll)

    def renew_leases(self) -> None:
        """Push back the expiry of the leases this process holds (a long run; at most every ttl/4)."""
        for name, last in list(self._leases.items()):
            if time.monotonic() - last < self.lease_ttl / 4:
                continue
            expires = (now_utc() + dt.timedelta(seconds=self.lease_ttl)).isoformat()
            self.execute("UPDATE leases SET expires = ? WHERE name = ? AND owner = ?", (expires, name, run_owner()))
            self._leases[name] = time.monotonic()

    def release_lease(self, name: str) -> None:
        if self._leases.pop(name, None) is None:
            return
        self.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, run_owner()))


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; sqlite3 itself says when one is complete (triggers included)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s.strip(" ;\n")]


_PG_VERSION_TABLE = "aupctl_schema"  # PostgreSQL's PRAGMA user_version: one row, the schema version


def _normal_sql(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip().lower()


def expected_tables() -> set[str]:
    """Every table the migrations make."""
    import re

    return {
        m.group(1).lower()
        for script in MIGRATIONS
        for m in re.finditer(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", script, re.IGNORECASE)
    }


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"unreadable": text}


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _foreign(path: Path, what: str) -> StoreError:
    return StoreError(
        f"the state store {path} is {what}: refusing to use it (or to make a new store over it)",
        hint="if it should hold aupctl's history, restore it from a backup; if it is a new install, move the "
        "file away and run `aupctl state init`, or point [state] path at another file",
    )


def _wal_has_data(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        return False


def check_existing(path: Path) -> None:
    """Refuse a file that exists but cannot be aupctl's store: empty (a lost store would otherwise come
    back silently as a new, empty one) or not SQLite at all. A missing file is for create_store."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot open the state store {path}: {exc}", hint="check [state] path") from None
    if not path.is_file():
        raise _foreign(path, "not a regular file")
    if st.st_size == 0:
        if _wal_has_data(path):
            raise _foreign(path, "an empty file beside a -wal file holding data (copied without it?)")
        raise _foreign(path, "an empty (zero-length) file, not a store")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise ConfigError(f"cannot read the state store {path}: {exc}", hint="check its permissions") from None
    if head != SQLITE_MAGIC:
        raise _foreign(path, "not a SQLite database")


@contextmanager
def _owner_only() -> Iterator[None]:
    """umask 077 while SQLite creates files, so the db, -wal and -shm are never readable by others."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _connect(path: Path, busy_timeout: float, *, new: bool = False) -> sqlite3.Connection:
    with _owner_only():
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # Not aupctl's: refused before anything is written to it (switching to WAL writes the header).
            if not new and db.execute("PRAGMA user_version").fetchone()[0] == 0:
                raise _foreign(path, "a SQLite database without aupctl's schema")
            db.execute("PRAGMA journal_mode = WAL")  # -wal and -shm are made here, under the umask
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            db.close()
            raise
    return db


def remove_sqlite_files(path: Path) -> None:
    """A SQLite file and the -wal and -shm files WAL mode keeps beside it (a temporary store left half made)."""
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def create_store(path: Path, *, replace_empty: bool = False) -> None:
    """A new store, schema and all, made aside and linked into place, so `path` is either missing or a
    whole store: a crash never leaves an empty file behind, and a file made meanwhile is not overwritten."""
    with _owner_only():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    remove_sqlite_files(tmp)
    try:
        db = _connect(tmp, DEFAULT_BUSY_TIMEOUT, new=True)
        try:
            db.execute("BEGIN IMMEDIATE")
            for i, migration in enumerate(MIGRATIONS):
                for stmt in _split_sql(migration):
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version = {i + 1}")
            db.execute("COMMIT")
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        if replace_empty:
            if path.exists() and path.stat().st_size != 0:
                raise _foreign(path, "not empty")
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if a file appeared meanwhile: that one is used, not overwritten
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not path.exists():
                    os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise describe_store_error(exc, path) from None
    finally:
        remove_sqlite_files(tmp)


def init_store(path: Path) -> str:
    """`aupctl state init`: a new store where there is none or only an empty file; never over data."""
    if path.exists():
        if not path.is_file() or path.stat().st_size != 0 or _wal_has_data(path):
            raise StoreError(
                f"{path} already exists and is not empty: refusing to make a new store over it",
                hint="move it away first if you really mean to start again (keep it: it is the record)",
            )
        create_store(path, replace_empty=True)
        return f"made a new state store at {path} (it was an empty file)"
    create_store(path)
    return f"made a new state store at {path}"


def open_state(path: str | None) -> State:
    return State(path)


def open_store(cfg: config.State, namespace: str | None = None, *, path: str | Path | None = None) -> State:
    """The store a config's [state] names (cfg: config.State): PostgreSQL when `url` is set (the namespace is
    its schema, made and migrated on first use), else the SQLite file `path` (default cfg.path; a school's
    own file is passed by the caller, the namespace is only checked). Not attached to an audit key: use
    auditlog.attach(state, config)."""
    if cfg.url:
        from .credentials import state_password
        from .pgstore import redact

        return State(
            busy_timeout=cfg.busy_timeout,
            lease_ttl=cfg.lease_ttl,
            url=cfg.url,
            namespace=namespace,
            ca_file=cfg.ca_file,
            allow_insecure=cfg.allow_insecure,
            password=state_password(redact(cfg.url), cfg.password_file),
        )
    return State(path or cfg.path, busy_timeout=cfg.busy_timeout, lease_ttl=cfg.lease_ttl, namespace=namespace)
