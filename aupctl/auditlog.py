"""The audit log a school can prove: a keyed hash chain whose key is kept apart from the store,
signed checkpoints kept apart too (a file, and syslog where there is one), and one verification
that says in words what it found.

The shape is borrowed from systems that do this well:
- Certificate Transparency's signed tree heads: a checkpoint signs (size, head hash, time), so a log
  that later shrinks below it, or differs from it, is caught. Like a tree head, a checkpoint only
  protects if a copy is kept where the log's attacker cannot reach (syslog to another machine).
- CloudTrail's digest files: each checkpoint names the one before it (`prev`), so a checkpoint cut
  from the middle or end of the file is caught as well as an edited one.
- journald's sealing: the verifying secret lives away from the log. journald's key also evolves
  (forward-secure), so a thief of today's key cannot forge yesterday; that is not done here, and
  docs/security.md says what it leaves open.

Entries written before the keyed chain (plain SHA-256, schema 2 and older) still verify as before, up
to `audit_keying.keyed_from`; every entry from there on must be keyed, so a store cannot be quietly
downgraded to hashes that need no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import re
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auditchain import (
    _CHECKPOINT_FIELDS,
    GENESIS,
    AuditKey,
    ChainBreak,
    KeySource,
    keying,
    missing_key_error,
    walk_chain,
)
from .auditchain import (
    AuditKeyError as AuditKeyError,  # named here too: callers of auditlog catch it
)
from .errors import AupctlError, ConfigError
from .state import MIGRATIONS, _split_sql, now_iso

if TYPE_CHECKING:
    from .config import Config
    from .state import State

SYSLOG_SOCKET = "/dev/log"
SYSLOG_TAG = "aupctl-checkpoint: "


def source_for(cfg: Config) -> KeySource:
    return KeySource.from_config(cfg)


def attach(state: State, cfg: Config) -> State:
    """Give a State the config's audit key source (a State opened without a config uses the default file)."""
    state.use_audit_key(KeySource.from_config(cfg))
    return state


def audit_key_fingerprint(cfg: Config) -> str | None:
    """For doctor: the fingerprint of the audit key, None if none exists yet (made on first use).
    Raises AuditKeyError (an AupctlError) if it exists but cannot be used. Never creates one."""
    key = KeySource.from_config(cfg).load()
    return key.fingerprint if key else None


def audit_key_status(cfg: Config) -> tuple[bool, str]:
    """For doctor: (ok, what it says)."""
    source = KeySource.from_config(cfg)
    try:
        key = source.load()
    except AupctlError as exc:
        return False, exc.message
    if key is None:
        return True, f"none yet at {source.where} (made at the first audit entry)"
    return True, f"fingerprint {key.fingerprint} ({source.where})"


# -- checkpoints file --


def default_checkpoints_path(store: Path | str) -> Path:
    """One file per store (named after the store's full path, or a PostgreSQL store's URL and schema), in the
    user config folder."""
    from platformdirs import user_config_dir

    if isinstance(store, str) and store.startswith("postgresql://"):
        ident = hashlib.sha256(store.encode("utf-8")).hexdigest()[:12]
        stem = store.rsplit("(schema ", 1)[-1].rstrip(")") if "(schema " in store else "postgresql"
        return Path(user_config_dir("aupctl")) / "checkpoints" / f"pg-{stem}-{ident}.jsonl"
    store = Path(store)
    ident = hashlib.sha256(str(store.resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(user_config_dir("aupctl")) / "checkpoints" / f"{store.stem}-{ident}.jsonl"


def checkpoints_path(cfg: Config, state: State) -> Path:
    return Path(cfg.state.checkpoints) if cfg.state.checkpoints else default_checkpoints_path(state.path)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: str
    store: str
    entries: int
    head: str
    keyed_from: int
    key_id: str
    prev: str
    mac: str
    line: int = 0

    def fields(self) -> dict[str, Any]:
        return {
            "v": 1, "seq": self.seq, "at": self.at, "store": self.store, "entries": self.entries,
            "head": self.head, "keyed_from": self.keyed_from, "key_id": self.key_id, "prev": self.prev,
        }  # fmt: skip

    def json_line(self) -> str:
        return json.dumps({**self.fields(), "mac": self.mac}, separators=(",", ":"))


def read_checkpoints(path: Path, key: AuditKey, store_id: str | None) -> tuple[list[Checkpoint], list[str]]:
    """The valid checkpoints in order, and what is wrong with the file in words. Lines may carry a syslog
    prefix (a copy grepped from the log server): the checkpoint is the JSON from the first '{'."""
    problems: list[str] = []
    good: list[Checkpoint] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"the checkpoints file {path} cannot be read: {exc}"]
    for n, raw in enumerate(text.splitlines(), 1):
        if len(problems) >= 5:
            problems.append("(further lines not checked)")
            break
        if not raw.strip():
            continue
        where = f"the checkpoints file {path}, line {n}"
        start = raw.find("{")
        try:
            if start < 0:
                raise ValueError("no JSON object on the line")
            data = json.JSONDecoder().raw_decode(raw, start)[0]  # a NUL may follow
            cp = Checkpoint(
                seq=int(data["seq"]), at=str(data["at"]), store=str(data["store"]), entries=int(data["entries"]),
                head=str(data["head"]), keyed_from=int(data["keyed_from"]), key_id=str(data["key_id"]),
                prev=str(data["prev"]), mac=str(data["mac"]), line=n,
            )  # fmt: skip
            if data.get("v") != 1:
                raise ValueError("unknown version")
        except (ValueError, TypeError, KeyError):
            problems.append(f"{where} is not a checkpoint (edited or damaged)")
            continue
        if not hmac.compare_digest(key.checkpoint_mac(cp.fields()), cp.mac):
            problems.append(f"{where}: its signature does not match (edited, or signed with another key)")
            continue
        if store_id is not None and cp.store != store_id:
            problems.append(
                f"{where} is a checkpoint of another store (id {cp.store}, this one is {store_id}): "
                "the store was replaced, or two stores share one checkpoints file (give each its own [state] checkpoints)"
            )
            continue
        expected_seq, expected_prev = (good[-1].seq + 1, good[-1].mac) if good else (1, GENESIS)
        if cp.seq != expected_seq or cp.prev != expected_prev:
            problems.append(
                f"{where} is checkpoint {cp.seq}, but checkpoint {expected_seq} should come next: "
                "checkpoints were removed or reordered"
            )
            continue
        if good and cp.entries < good[-1].entries:
            problems.append(
                f"{where}: checkpoint {cp.seq} ({cp.entries} entries) is smaller than checkpoint "
                f"{good[-1].seq} ({good[-1].entries}): the log shrank between them"
            )
        good.append(cp)
    return good, problems


def _append_line(path: Path, line: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the checkpoints file {path}: {exc}", hint="check [state] checkpoints") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"the checkpoints file {path} is not a regular file")
        if os.name != "nt" and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                f"the checkpoints file {path} can be written by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"chmod 600 {path}",
            )
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


class _SysLog(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        raise  # to send_to_syslog, not a traceback on stderr


def send_to_syslog(line: str, socket_path: str | None = None) -> bool:
    """One line to the local syslog (authpriv), if there is one; False where not (Windows, a container)
    or if it failed: the checkpoint still stands in its file."""
    address = socket_path or SYSLOG_SOCKET
    if not os.path.exists(address):
        return False
    try:
        handler = _SysLog(address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
    except OSError:
        return False
    try:
        handler.ident = "aupctl: "
        handler.emit(logging.LogRecord("aupctl", logging.INFO, __file__, 0, SYSLOG_TAG + line, None, None))
        return True
    except OSError:
        return False
    finally:
        handler.close()


# -- verification --


def _normal(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip().lower()


def expected_triggers(backend: str = "sqlite") -> dict[str, str]:
    """The audit triggers every migrated store must hold, by name, with their SQL normalised (on PostgreSQL,
    as aupctl/pgstore.py translates them)."""
    out: dict[str, str] = {}
    for script in MIGRATIONS:
        for stmt in _split_sql(script):
            m = re.match(r"CREATE\s+TRIGGER\s+(\w+)", stmt, re.IGNORECASE)
            if m and m.group(1).lower().startswith("audit"):
                if backend == "postgresql":
                    from .pgstore import translate_ddl

                    for pg in translate_ddl(stmt):
                        name = re.match(r"CREATE\s+TRIGGER\s+(\w+)", pg, re.IGNORECASE)
                        assert name is not None
                        out[name.group(1)] = _normal(pg)
                else:
                    out[m.group(1)] = _normal(stmt)
    return out


@dataclass
class Verification:
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    broken: ChainBreak | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoints_file: Path | None = None
    notes: list[str] = field(default_factory=list)
    head: str = GENESIS
    store_id: str | None = None
    keyed_from: int = 1

    @property
    def intact(self) -> bool:
        return not self.problems and self.broken is None

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def findings(self) -> list[str]:
        """Every problem in words, the chain's first break first."""
        out = [f"BROKEN at entry {self.broken.id}: {self.broken.reason}"] if self.broken else []
        return out + [f"BROKEN: {p}" for p in self.problems]

    def summary(self) -> str:
        cp = self.last_checkpoint
        if cp is None:
            tail = "no checkpoint yet (run `aupctl log checkpoint`, daily from cron: docs/security.md)"
        else:
            tail = f"last checkpoint at {cp.at} ({cp.entries} entries)"
            if self.entries > cp.entries:
                since = self.entries - cp.entries
                tail += f"; {since} entr{'y' if since == 1 else 'ies'} since, not yet checkpointed"
        return f"intact: {self.entries} entries, hash chain verified, {tail}"


def verify(state: State, checkpoints: Path) -> Verification:
    """Everything `log verify` checks: the tables and triggers, the chain, and the checkpoints against it."""
    v = Verification(checkpoints_file=checkpoints)
    db = state.db
    tables = state.tables()

    found = state.triggers()
    for name, sql in expected_triggers(state.backend).items():
        if name not in found:
            v.problems.append(
                f"the store's trigger {name} is missing (dropped): the audit records can be changed without the store refusing"
            )
        elif found[name] != sql:
            v.problems.append(f"the store's trigger {name} was replaced by a different one")
    if state.backend == "postgresql":
        body = db.execute(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname = 'aupctl_refuse' AND n.nspname = ?",
            (getattr(state, "schema", ""),),
        ).fetchone()
        if body is None or "RAISE EXCEPTION" not in body[0]:
            v.problems.append("the store's function aupctl_refuse (what the audit triggers call) was replaced or dropped")

    v.store_id, v.keyed_from, problem = keying(db)
    if problem:
        v.problems.append(problem)

    # The checkpoints, read first: the walk collects the hashes they name.
    recorded = _recorded_checkpoints(db) if "audit_checkpoints" in tables else None
    if recorded is None:
        v.problems.append("the store's record of checkpoints (table audit_checkpoints) is missing (dropped)")
        recorded = []
    key: AuditKey | None = None
    file_exists = checkpoints.exists()
    if (file_exists and checkpoints.stat().st_size > 0) or recorded:
        key = state.audit_key()
        if key is None:
            raise missing_key_error(state.audit_key_source or KeySource.default(), None)
    if key is not None and file_exists:
        v.checkpoints, file_problems = read_checkpoints(checkpoints, key, v.store_id)
        v.problems.extend(file_problems)
    elif recorded:
        last = recorded[-1]
        v.problems.append(
            f"the checkpoints file {checkpoints} is missing, but the store records {len(recorded)} checkpoint(s), "
            f"the last at {last['at']} ({last['entries']} entries, written to {last['file']})"
        )

    if "audit" not in tables:
        v.problems.append("the audit table is missing from the store (dropped): every entry is gone")
    else:
        want = {cp.entries for cp in v.checkpoints if cp.entries > 0}
        v.entries, v.broken, heads = walk_chain(state, want, v.store_id, v.keyed_from)
        if v.entries:
            v.head = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
        _check_against_checkpoints(v, heads)

    if file_exists and recorded:
        _check_against_record(v, recorded)
    if not v.checkpoints and not recorded and not file_exists:
        v.notes.append(f"no checkpoints file yet at {checkpoints}")
    return v


def _recorded_checkpoints(db: sqlite3.Connection) -> list[dict[str, Any]] | None:
    try:
        cur = db.execute("SELECT seq, at, entries, head, file, mac FROM audit_checkpoints ORDER BY seq")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    except sqlite3.DatabaseError:
        return None


def _check_against_checkpoints(v: Verification, heads: dict[int, str]) -> None:
    for cp in v.checkpoints:
        if cp.keyed_from != v.keyed_from:
            v.problems.append(
                f"the checkpoint of {cp.at} says keyed hashing starts at entry {cp.keyed_from}, the store says "
                f"{v.keyed_from}: the start was moved (a downgrade to hashes that need no secret)"
            )
            break
    last = v.last_checkpoint
    if last is not None and v.entries < last.entries:
        gone = last.entries - v.entries
        v.problems.append(
            f"the log has {v.entries} entries, but the checkpoint of {last.at} recorded {last.entries}: "
            f"{gone} entr{'y was' if gone == 1 else 'ies were'} removed from its end (or the store was replaced "
            "by an older copy)"
        )
    for cp in v.checkpoints:
        if cp.entries == 0 or cp.entries > v.entries:
            continue
        if heads.get(cp.entries) != cp.head:
            v.problems.append(
                f"entry {cp.entries} is not the entry checkpointed at {cp.at} (its hash differs): "
                "the log was rewritten up to there"
            )
            break


def _check_against_record(v: Verification, recorded: list[dict[str, Any]]) -> None:
    if not recorded:
        return
    last = recorded[-1]
    file_last = v.last_checkpoint.seq if v.last_checkpoint else 0
    if last["seq"] > file_last:
        v.problems.append(
            f"the store records {last['seq']} checkpoint(s), the last at {last['at']}, but the checkpoints file "
            f"{v.checkpoints_file} holds {file_last} valid one(s): the file was cut short, emptied or replaced"
        )
        return
    by_seq = {cp.seq: cp for cp in v.checkpoints}
    cp = by_seq.get(last["seq"])
    if cp is not None and cp.mac != last["mac"]:
        v.problems.append(f"checkpoint {cp.seq} in the file is not the one the store recorded (the file was replaced)")


def verify_for(cfg: Config, state: State) -> Verification:
    """`log verify` for a caller holding a config and an open store (e.g. doctor): the config's key and
    checkpoints file. Raises AuditKeyError (exit 2) if the key is missing; see Verification.findings()."""
    return verify(attach(state, cfg), checkpoints_path(cfg, state))


# -- taking a checkpoint --


@dataclass(frozen=True)
class CheckpointResult:
    verification: Verification
    checkpoint: Checkpoint | None  # None: the log did not verify, nothing was signed
    path: Path
    syslog: bool = False


def take_checkpoint(state: State, path: Path, *, syslog_socket: str | None = None) -> CheckpointResult:
    """Verify the log, then sign (entries, head, time) into the checkpoints file, the store and syslog.
    Holds the store's write lock throughout, so no entry slips in between the check and the signature."""
    with state.transaction() as db:
        key = state.audit_key(create=True)
        v = verify(state, path)
        if not v.intact or v.store_id is None:
            return CheckpointResult(v, None, path)
        last = v.last_checkpoint
        fields = {
            "v": 1, "seq": (last.seq + 1) if last else 1, "at": now_iso(), "store": v.store_id,
            "entries": v.entries, "head": v.head, "keyed_from": v.keyed_from, "key_id": key.fingerprint,
            "prev": last.mac if last else GENESIS,
        }  # fmt: skip
        mac = key.checkpoint_mac(fields)
        cp = Checkpoint(**{k: fields[k] for k in _CHECKPOINT_FIELDS if k != "v"}, mac=mac)
        db.execute(
            "INSERT INTO audit_checkpoints (seq, at, entries, head, file, mac) VALUES (?,?,?,?,?,?)",
            (cp.seq, cp.at, cp.entries, cp.head, str(path), cp.mac),
        )
        _append_line(path, cp.json_line())  # inside the transaction: a file that cannot be written records nothing
    sent = send_to_syslog(cp.json_line(), syslog_socket)
    v.checkpoints.append(cp)
    return CheckpointResult(v, cp, path, sent)
