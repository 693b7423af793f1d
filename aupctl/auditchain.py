"""The audit chain's primitives: the key and where it lives, the entry hashes (plain and keyed), the
keying record, and walking the chain.

Below both state.py (which appends keyed entries) and auditlog.py (verification and checkpoints), so
neither has to import the other's insides: state -> auditchain <- auditlog -> state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import winacl
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config
    from .state import State

GENESIS = "0" * 64


def _entry_hash(prev_hash: str, at: str, who: str, action: str, target: str, details: str) -> str:
    payload = json.dumps([prev_hash, at, who, action, target, details], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    id: int
    reason: str


KEYRING_ACCOUNT = "audit-key"  # service "aupctl", like the bind password
KEY_FILE_NAME = "audit.key"
_ENTRY_DOMAIN = "aupctl-audit-entry-v1"
_CHECKPOINT_DOMAIN = b"aupctl-audit-checkpoint-v1"
_CHECKPOINT_FIELDS = ("v", "seq", "at", "store", "entries", "head", "keyed_from", "key_id", "prev")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class AuditKeyError(ConfigError):
    """The audit key is missing, unreadable or not the one the log was keyed with (exit 2)."""


# -- the key --


def fingerprint(secret: bytes) -> str:
    """What doctor shows and each keyed entry records: enough to tell keys apart, nothing to forge with."""
    return hashlib.sha256(secret).hexdigest()[:16]


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)
    where: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    def entry_hash(
        self, store_id: str, entry_id: int, prev: str, at: str, who: str, action: str, target: str, details: str
    ) -> str:
        # The id and the store are inside the MAC: shifting ids or copying entries between stores breaks it.
        payload = json.dumps(
            [_ENTRY_DOMAIN, store_id, entry_id, prev, at, who, action, target, details],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hmac.new(self.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()

    def checkpoint_mac(self, fields: dict[str, Any]) -> str:
        # A key of its own (derived), so an entry MAC can never pass for a checkpoint MAC or back.
        ckey = hmac.new(self.secret, _CHECKPOINT_DOMAIN, hashlib.sha256).digest()
        payload = json.dumps({k: fields.get(k) for k in _CHECKPOINT_FIELDS}, sort_keys=True, separators=(",", ":"))
        return hmac.new(ckey, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def default_key_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("aupctl")) / KEY_FILE_NAME


@dataclass(frozen=True)
class KeySource:
    """Where the audit key lives: a 0600 file (the default, works for cron) or the OS keyring."""

    kind: str  # "file" or "keyring"
    path: Path | None = None

    @classmethod
    def default(cls) -> KeySource:
        return cls("file", default_key_path())

    @classmethod
    def from_config(cls, cfg: Config) -> KeySource:
        if cfg.state.audit_key == "keyring":
            return cls("keyring")
        return cls("file", Path(cfg.state.audit_key_file) if cfg.state.audit_key_file else default_key_path())

    @property
    def where(self) -> str:
        return f"the keyring (service 'aupctl', user {KEYRING_ACCOUNT!r})" if self.kind == "keyring" else str(self.path)

    def load(self) -> AuditKey | None:
        """The key, or None if none was ever made here; ConfigError if it exists but cannot be used."""
        return self._load_keyring() if self.kind == "keyring" else self._load_file()

    def load_or_create(self) -> AuditKey:
        key = self.load()
        if key is not None:
            return key
        return self._create_keyring() if self.kind == "keyring" else self._create_file()

    # file
    def _load_file(self) -> AuditKey | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit key file {self.path}: {exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise AuditKeyError(f"the audit key file {self.path} is not a regular file")
        if os.name != "nt" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):  # Windows has no such bits
            raise AuditKeyError(
                f"the audit key file {self.path} can be read by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"chmod 600 {self.path}",
            )
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditKeyError(f"cannot read the audit key file {self.path}: {exc}") from None
        return AuditKey(_parse_key(text, str(self.path)), str(self.path))

    def _create_file(self) -> AuditKey:
        assert self.path is not None
        secret = secrets.token_bytes(32)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            acl = winacl.active()  # Windows: an ACL for this user alone (mode bits mean nothing there)
            if acl is not None:
                fd = winacl.create_owner_only(str(self.path), acl)
            else:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = self._load_file()
            assert key is not None
            return key
        except OSError as exc:
            raise AuditKeyError(
                f"cannot create the audit key file {self.path}: {exc}", hint="set [state] audit_key_file"
            ) from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return AuditKey(secret, str(self.path))

    # keyring
    def _load_keyring(self) -> AuditKey | None:
        from .credentials import _keyring_get

        text, problem = _keyring_get(KEYRING_ACCOUNT)
        if problem:
            raise AuditKeyError(
                f"[state] audit_key is 'keyring', but {problem}",
                hint='set [state] audit_key = "file" (a 0600 file) on a machine without a keyring',
            )
        return AuditKey(_parse_key(text.strip(), self.where), self.where) if text else None

    def _create_keyring(self) -> AuditKey:
        import keyring

        secret = secrets.token_bytes(32)
        try:
            keyring.set_password("aupctl", KEYRING_ACCOUNT, secret.hex())
        except Exception as exc:  # noqa: BLE001 - third-party backends raise anything
            raise AuditKeyError(f"the keyring refused the new audit key: {exc}") from None
        return AuditKey(secret, self.where)


def _parse_key(text: str, where: str) -> bytes:
    if not _HEX64.match(text):
        raise AuditKeyError(f"the audit key in {where} is not 64 hex digits (damaged?)")
    return bytes.fromhex(text)


def missing_key_error(source: KeySource, needed: str | None) -> AuditKeyError:
    what = f"the log is keyed with key {needed}" if needed else "the checkpoints are signed with it"
    return AuditKeyError(
        f"the audit key is missing from {source.where}, and {what}: nothing can be verified or added without it",
        hint="restore the key from its backup (or point [state] audit_key_file / audit_key at it); "
        "aupctl makes a new key only for a log that has no keyed entries yet",
    )


def wrong_key_error(key: AuditKey, needed: str) -> AuditKeyError:
    return AuditKeyError(
        f"the audit key in {key.where} has fingerprint {key.fingerprint}, but the log is keyed with {needed}",
        hint="point [state] audit_key_file / audit_key at the right key; a new key would break the chain",
    )


def keying(db: sqlite3.Connection) -> tuple[str | None, int, str | None]:
    """(store id, first keyed entry id, problem)."""
    try:
        rows = db.execute("SELECT store_id, keyed_from FROM audit_keying").fetchall()
    except sqlite3.DatabaseError:
        return None, 1, "the audit keying record (table audit_keying) is missing from the store (dropped)"
    if len(rows) != 1:
        return (
            None,
            1,
            f"the audit keying record has {len(rows)} rows, not 1 (edited): where keyed hashing starts is unknown",
        )
    return str(rows[0][0]), int(rows[0][1]), None


def walk_chain(
    state: State, want: set[int] | frozenset[int] = frozenset(), store_id: str | None = None, keyed_from: int = 1
) -> tuple[int, ChainBreak | None, dict[int, str]]:
    """Walk the chain from entry 1: (entries read, the first break or None, {entry id: hash} for `want`).
    The key is loaded only when the walk reaches a keyed entry (AuditKeyError if it is missing)."""
    count = 0
    broken: ChainBreak | None = None
    heads: dict[int, str] = {}
    prev = GENESIS
    key: AuditKey | None = None
    rows = state.db.execute(
        "SELECT id, at, actor, action, target, details, prev_hash, hash, key_id FROM audit ORDER BY id"
    )
    for entry_id, at, who, action, target, details, prev_hash, digest, key_id in rows:
        count += 1
        if entry_id in want:
            heads[entry_id] = digest
        if broken is not None:
            continue
        if entry_id != count:
            if count == 1:
                reason = f"the log starts at entry {entry_id}, not 1: the entries before it were removed, or every id shifted"
                broken = ChainBreak(1, reason)
            else:
                broken = ChainBreak(count, f"entry {count} is missing (next is {entry_id}), or the ids were changed")
            continue
        if prev_hash != prev:
            broken = ChainBreak(entry_id, "its link to the entry before does not match")
            continue
        if entry_id < keyed_from:
            if key_id is not None:
                broken = ChainBreak(
                    entry_id, f"it is keyed, but the store says keyed hashing starts at entry {keyed_from} (moved)"
                )
            elif _entry_hash(prev_hash, at, who, action, target, details) != digest:
                broken = ChainBreak(entry_id, "its content does not match its hash (edited after it was written)")
        else:
            if key_id is None:
                broken = ChainBreak(
                    entry_id,
                    f"it is not keyed, but keyed hashing started at entry {keyed_from}: "
                    "rewritten without the key (a downgrade to hashes that need no secret)",
                )
            else:
                if key is None:
                    key = state.audit_key()
                    if key is None:
                        raise missing_key_error(state.audit_key_source or KeySource.default(), key_id)
                if key_id != key.fingerprint:
                    broken = ChainBreak(
                        entry_id,
                        f"it was keyed with key {key_id}, but the audit key ({key.where}) is {key.fingerprint}: "
                        "the wrong key is configured, or the entry was rewritten",
                    )
                elif not hmac.compare_digest(
                    key.entry_hash(store_id or "", entry_id, prev_hash, at, who, action, target, details), digest
                ):
                    broken = ChainBreak(
                        entry_id, "its content does not match its keyed hash (edited or rewritten after it was written)"
                    )
        prev = digest
    return count, broken, heads
