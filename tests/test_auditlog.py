"""The audit log a school can prove (issue 11): the keyed chain, its key, signed checkpoints, and
`aupctl log verify` through the real CLI entry point after every kind of tampering an attacker with the
sqlite3 module can do (triggers dropped first). No directory server is needed: `log` never binds."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import run_main

from aupctl import auditlog
from aupctl.auditchain import _entry_hash
from aupctl.config import load
from aupctl.state import MIGRATIONS, State, _split_sql

CONFIG = """
[school]
name = "Test School"
aup_version = "2026.1"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:1"
bind_dn = "cn=aupctl,dc=school,dc=test"
base_dn = "dc=school,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"

[state]
path = "state.db"
checkpoints = "elsewhere/checkpoints.jsonl"
audit_key_file = "keys/audit.key"
"""

UNTRIGGER = "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;"
# ... and what a careful attacker does after: put them back exactly as they were.
RETRIGGER = "".join(s + "\n" for s in _split_sql(MIGRATIONS[0]) if s.startswith("CREATE TRIGGER audit_no_"))


@dataclass
class Store:
    dir: Path
    config: Path
    db: Path
    checkpoints: Path
    key_file: Path

    def state(self) -> State:
        return auditlog.attach(State(self.db), load(str(self.config)))

    def sql(self, script: str, *, retrigger: bool = False) -> None:
        """What an attacker with the sqlite3 module does: drop the append-only triggers, then edit."""
        db = sqlite3.connect(self.db)
        db.executescript(UNTRIGGER + script + (RETRIGGER if retrigger else ""))
        db.close()

    def run(self, *args: str) -> tuple[int, str, str]:
        return run_main(*args, config=self.config)

    def verify(self) -> tuple[int, str]:
        code, out, err = self.run("log", "verify")
        assert code != 70 and "internal error" not in err, err
        return code, out + err

    def checkpoint(self) -> str:
        code, out, err = self.run("log", "checkpoint")
        assert code == 0, err
        return out

    def rows(self) -> list[tuple]:
        db = sqlite3.connect(self.db)
        rows = db.execute(
            "SELECT id, at, actor, action, target, details, prev_hash, hash, key_id FROM audit ORDER BY id"
        )
        out = rows.fetchall()
        db.close()
        return out


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # nothing lands in the real home
    monkeypatch.setattr(auditlog, "SYSLOG_SOCKET", str(tmp_path / "no-syslog-here"))
    (tmp_path / "aupctl.toml").write_text(CONFIG)
    s = Store(
        tmp_path, tmp_path / "aupctl.toml", tmp_path / "state.db", tmp_path / "elsewhere" / "checkpoints.jsonl",
        tmp_path / "keys" / "audit.key",
    )  # fmt: skip
    st = s.state()
    for i in range(20):
        st.audit("access-grant", f"user{i}", {"system": "sims", "n": i})
    st.close()
    return s


# -- intact --


def test_an_intact_log_verifies_with_and_without_checkpoints(store: Store) -> None:
    code, out = store.verify()
    assert code == 0 and "intact: 20 entries" in out and "no checkpoint yet" in out
    line = store.checkpoint()
    assert "checkpoint 1: 20 entries" in line and str(store.checkpoints) in line
    st = store.state()
    st.audit("access-revoke", "user3")
    st.close()
    code, out = store.verify()
    assert code == 0, out
    assert "intact: 21 entries" in out and "(20 entries)" in out and "1 entry since" in out
    assert "checkpoint 2: 21 entries" in store.checkpoint()


def test_key_and_checkpoints_are_created_owner_only_and_apart_from_the_store(store: Store) -> None:
    store.checkpoint()
    for p in (store.key_file, store.checkpoints):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert store.key_file.parent != store.db.parent
    fp = auditlog.audit_key_fingerprint(load(str(store.config)))
    assert fp and len(fp) == 16
    assert {r[8] for r in store.rows()} == {fp}  # every entry names the key that keyed it
    assert store.key_file.read_text().strip() not in store.db.read_bytes().decode("latin-1")


def test_the_fingerprint_for_doctor_never_creates_a_key(tmp_path: Path) -> None:
    (tmp_path / "aupctl.toml").write_text(CONFIG)
    cfg = load(str(tmp_path / "aupctl.toml"))
    assert auditlog.audit_key_fingerprint(cfg) is None
    assert not (tmp_path / "keys").exists()
    ok, text = auditlog.audit_key_status(cfg)
    assert ok and "none yet" in text


# -- tampering the entries --


def test_an_edited_entry(store: Store) -> None:
    store.sql("UPDATE audit SET target='someone-else' WHERE id=7;")
    code, out = store.verify()
    assert code == 1 and "BROKEN at entry 7" in out and "keyed hash" in out


@pytest.mark.parametrize("n", [1, 10])
def test_deleting_the_last_entries_after_a_checkpoint(store: Store, n: int) -> None:
    store.checkpoint()
    store.sql(f"DELETE FROM audit WHERE id > {20 - n};")
    code, out = store.verify()
    assert code == 1
    assert f"the log has {20 - n} entries, but the checkpoint" in out and "recorded 20" in out
    assert f"{n} entr{'y was' if n == 1 else 'ies were'} removed from its end" in out


def test_deleting_entries_written_after_the_last_checkpoint_is_not_detected(store: Store) -> None:
    """The documented limit (docs/security.md): the tail after the last checkpoint is unprotected."""
    store.checkpoint()
    st = store.state()
    st.audit("access-grant", "late")
    st.close()
    store.sql("DELETE FROM audit WHERE id = 21;", retrigger=True)
    code, out = store.verify()
    assert code == 0 and "intact: 20 entries" in out


def test_emptying_the_table(store: Store) -> None:
    store.checkpoint()
    store.sql("DELETE FROM audit;")
    code, out = store.verify()
    assert code == 1 and "the log has 0 entries" in out and "20 entries were removed" in out


def test_emptying_the_state_file(store: Store) -> None:
    store.checkpoint()
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(store.db) + suffix)
        if p.exists():
            p.write_bytes(b"")
    code, out = store.verify()
    # A store that refuses an empty file (exit 2) or verification against the checkpoint (exit 1); never "intact".
    assert code in (1, 2) and "intact" not in out, out


def test_editing_the_last_entry_and_recomputing_its_hash_without_the_key(store: Store) -> None:
    store.checkpoint()
    last = store.rows()[-1]
    details = json.dumps({"system": "sims", "n": 999})
    forged = _entry_hash(last[6], last[1], last[2], last[3], last[4], details)  # SHA-256: needs no secret
    store.sql(f"UPDATE audit SET details='{details}', hash='{forged}' WHERE id=20;")
    code, out = store.verify()
    assert code == 1 and "BROKEN at entry 20" in out and "keyed hash" in out
    # ... and as an unkeyed entry, pretending it predates the keyed chain:
    store.sql("UPDATE audit SET key_id=NULL WHERE id=20;")
    code, out = store.verify()
    assert code == 1 and "BROKEN at entry 20" in out and "downgrade" in out


def test_rewriting_the_whole_chain_without_the_key(store: Store) -> None:
    """With an attacker's own key, even under the real key's fingerprint: the first entry fails."""
    rows = store.rows()
    fake = auditlog.AuditKey(os.urandom(32), "attacker")
    db = sqlite3.connect(store.db)
    db.executescript(UNTRIGGER)
    store_id = db.execute("SELECT store_id FROM audit_keying").fetchone()[0]
    prev = "0" * 64
    for r in rows:
        digest = fake.entry_hash(store_id, r[0], prev, r[1], "mallory", r[3], r[4], r[5])
        db.execute("UPDATE audit SET actor='mallory', prev_hash=?, hash=? WHERE id=?", (prev, digest, r[0]))
        prev = digest
    db.commit()
    db.close()
    code, out = store.verify()
    assert code == 1 and "BROKEN at entry 1" in out and "keyed hash" in out


def test_rewriting_the_whole_chain_as_an_old_unkeyed_chain(store: Store) -> None:
    """The downgrade: every entry plain SHA-256 and the keyed start moved past the end. With no
    checkpoint this is the documented gap; a checkpoint catches it."""
    store.checkpoint()
    rows = store.rows()
    db = sqlite3.connect(store.db)
    db.executescript(UNTRIGGER + "DROP TRIGGER audit_keying_no_update; UPDATE audit_keying SET keyed_from = 1000;")
    prev = "0" * 64
    for r in rows:
        digest = _entry_hash(prev, r[1], "mallory", r[3], r[4], r[5])
        db.execute(
            "UPDATE audit SET actor='mallory', prev_hash=?, hash=?, key_id=NULL WHERE id=?", (prev, digest, r[0])
        )
        prev = digest
    db.commit()
    db.close()
    code, out = store.verify()
    assert code == 1
    assert "the start was moved" in out and "trigger audit_keying_no_update is missing" in out
    assert "entry 20 is not the entry checkpointed" in out


def test_shifting_every_id(store: Store) -> None:
    store.sql("UPDATE audit SET id = id + 100;")
    code, out = store.verify()
    assert code == 1 and "starts at entry 101" in out


def test_dropped_triggers_alone_are_reported(store: Store) -> None:
    store.sql("")  # drop both, change nothing
    code, out = store.verify()
    assert code == 1
    assert "trigger audit_no_update is missing" in out and "trigger audit_no_delete is missing" in out


def test_a_trigger_replaced_by_a_harmless_one(store: Store) -> None:
    store.sql("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN 0 BEGIN SELECT 1; END;")
    code, out = store.verify()
    assert code == 1 and "audit_no_update was replaced" in out


def test_a_missing_audit_table(store: Store) -> None:
    store.checkpoint()
    store.sql("DROP TABLE audit;")
    code, out = store.verify()
    assert code == 1 and "the audit table is missing" in out


# -- tampering the checkpoints --


def test_checkpoints_file_missing(store: Store) -> None:
    store.checkpoint()
    store.checkpoints.unlink()
    code, out = store.verify()
    assert code == 1 and "is missing, but the store records 1 checkpoint" in out


def test_checkpoints_file_edited(store: Store) -> None:
    store.checkpoint()
    line = json.loads(store.checkpoints.read_text())
    line["entries"] = 10  # pretend the log was shorter, then cut it
    store.checkpoints.write_text(json.dumps(line) + "\n")
    store.sql("DELETE FROM audit WHERE id > 10;")
    code, out = store.verify()
    assert code == 1 and "line 1: its signature does not match" in out


def test_checkpoints_cut_from_the_file(store: Store) -> None:
    store.checkpoint()
    st = store.state()
    st.audit("access-grant", "late")
    st.close()
    store.checkpoint()
    first = store.checkpoints.read_text().splitlines()[0]
    store.checkpoints.write_text(first + "\n")  # the newest checkpoint removed, then the tail after the first
    store.sql("DELETE FROM audit WHERE id = 21;")
    code, out = store.verify()
    assert code == 1 and "the store records 2 checkpoint(s)" in out and "holds 1 valid one" in out


def test_a_checkpoint_removed_from_the_middle(store: Store) -> None:
    for _ in range(3):
        store.checkpoint()
    lines = store.checkpoints.read_text().splitlines()
    store.checkpoints.write_text(lines[0] + "\n" + lines[2] + "\n")
    code, out = store.verify()
    assert code == 1 and "line 2 is checkpoint 3, but checkpoint 2 should come next" in out


def test_a_checkpoint_refuses_to_sign_a_broken_log(store: Store) -> None:
    store.checkpoint()
    store.sql("DELETE FROM audit WHERE id > 15;")
    code, out, err = store.run("log", "checkpoint")
    assert code == 1 and "removed from its end" in err and "no checkpoint taken" in err
    assert len(store.checkpoints.read_text().splitlines()) == 1


def test_checkpoints_of_another_store(store: Store, tmp_path: Path) -> None:
    """A store swapped for another (same key, e.g. the sandbox's) is caught by its checkpoints."""
    store.checkpoint()
    other = auditlog.attach(State(tmp_path / "other.db"), load(str(store.config)))
    for i in range(25):
        other.audit("access-grant", f"x{i}")
    other.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(str(store.db) + suffix).exists():
            os.unlink(str(store.db) + suffix)
    os.rename(tmp_path / "other.db", store.db)
    code, out = store.verify()
    assert code == 1 and "a checkpoint of another store" in out


# -- the key --


def test_key_missing_is_a_clear_message_not_a_crash(store: Store) -> None:
    fp = store.rows()[0][8]
    store.key_file.unlink()
    code, out = store.verify()
    assert code == 2 and "audit key is missing" in out and fp in out and str(store.key_file) in out
    # and no new key is quietly made for a keyed log, by a change or a checkpoint:
    code, _, err = store.run("log", "checkpoint")
    assert code == 2 and "audit key is missing" in err
    assert not store.key_file.exists()


def test_a_different_key(store: Store) -> None:
    store.key_file.write_text(os.urandom(32).hex() + "\n")
    code, out = store.verify()
    assert code == 1 and "the wrong key is configured, or the entry was rewritten" in out
    st = store.state()
    with pytest.raises(auditlog.AuditKeyError, match="keyed with"):
        st.audit("x", "y")
    st.close()


def test_a_key_file_others_can_read_is_refused(store: Store) -> None:
    store.key_file.chmod(0o644)
    code, out = store.verify()
    assert code == 2 and "can be read by others" in out and "chmod 600" in out


# -- an old store (plain SHA-256) migrates without losing verification --


def _old_store(path: Path, n: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for i, script in enumerate(MIGRATIONS[:2]):
        for stmt in _split_sql(script):
            db.execute(stmt)
        db.execute(f"PRAGMA user_version = {i + 1}")
    prev = "0" * 64
    for i in range(1, n + 1):
        at, details = f"2025-09-01T08:00:{i % 60:02d}+00:00", json.dumps({"n": i})
        digest = _entry_hash(prev, at, "tech", "grant", f"u{i}", details)
        db.execute(
            "INSERT INTO audit (id, at, actor, action, target, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
            (i, at, "tech", "grant", f"u{i}", details, prev, digest),
        )
        prev = digest
    db.close()


def test_an_old_store_keeps_verifying_and_is_keyed_from_then_on(store: Store) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(str(store.db) + suffix).exists():
            os.unlink(str(store.db) + suffix)
    store.key_file.unlink()
    _old_store(store.db, 5)
    st = store.state()  # migrates
    assert st.query("SELECT keyed_from FROM audit_keying")[0][0] == 6
    st.audit("access-grant", "new")
    st.close()
    code, out = store.verify()
    assert code == 0 and "intact: 6 entries" in out
    keys = [r[8] for r in store.rows()]
    assert keys[:5] == [None] * 5 and keys[5] and store.key_file.exists()
    # an old entry edited is still caught by its SHA-256, and the keyed one cannot be downgraded
    store.sql("UPDATE audit SET target='x' WHERE id=2;")
    code, out = store.verify()
    assert code == 1 and "BROKEN at entry 2" in out


# -- syslog and a copy of the checkpoints kept elsewhere --


def test_checkpoint_goes_to_syslog_and_a_copy_from_there_verifies(store: Store, tmp_path: Path, monkeypatch) -> None:
    sock_path = tmp_path / "log.sock"  # a real AF_UNIX datagram socket, as /dev/log is
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(5)
    monkeypatch.setattr(auditlog, "SYSLOG_SOCKET", str(sock_path))
    try:
        out = store.checkpoint()
        assert "and syslog" in out
        received = server.recv(65536).decode()
    finally:
        server.close()
    assert received.startswith("<") and "aupctl" in received and auditlog.SYSLOG_TAG in received
    copy = tmp_path / "from-syslog.txt"
    copy.write_text(f"Nov 29 23:00:00 host {received.split('>', 1)[1]}\n")  # as a log server would store it
    store.checkpoints.unlink()  # the local file is gone; the copy from the log server still proves the count
    store.sql("DELETE FROM audit WHERE id > 12;")
    code, out, err = store.run("log", "verify", "--checkpoints", str(copy))
    assert code == 1 and "the log has 12 entries" in err and "recorded 20" in err


def test_no_syslog_is_silently_skipped(store: Store) -> None:
    assert "(no syslog here)" in store.checkpoint()


# -- scale --


def test_verify_of_100000_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    st = State(tmp_path / "big.db")
    st.audit("first", "x")  # makes the key
    key = st.audit_key()
    store_id = st.query("SELECT store_id FROM audit_keying")[0][0]
    prev = st.query("SELECT hash FROM audit")[0][0]
    rows = []
    for i in range(2, 100_001):
        at, details = "2026-09-01T08:00:00+00:00", json.dumps({"system": "sims", "n": i})
        digest = key.entry_hash(store_id, i, prev, at, "tech", "access-grant", f"user{i}", details)
        rows.append((i, at, "tech", "access-grant", f"user{i}", details, prev, digest, key.fingerprint))
        prev = digest
    with st.transaction() as db:
        db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)", rows)
    t0 = time.perf_counter()
    result = auditlog.take_checkpoint(st, tmp_path / "cp.jsonl")
    t1 = time.perf_counter()
    v = auditlog.verify(st, tmp_path / "cp.jsonl")
    t2 = time.perf_counter()
    st.close()
    assert result.checkpoint is not None and result.checkpoint.entries == 100_000
    assert v.intact and v.entries == 100_000
    with capsys.disabled():
        print(f"\n100,000 entries: checkpoint (verify + sign) {t1 - t0:.2f} s, verify {t2 - t1:.2f} s")
    assert t2 - t1 < 30, f"verify of 100,000 entries took {t2 - t1:.1f} s"


def test_a_change_with_the_key_missing_is_refused_not_rekeyed(store: Store) -> None:
    store.key_file.unlink()
    st = store.state()
    with pytest.raises(auditlog.AuditKeyError, match="audit key is missing") as caught:
        st.audit("access-grant", "someone")
    st.close()
    assert caught.value.exit_code == 2 and not store.key_file.exists()
    assert len(store.rows()) == 20


def test_keyring_without_a_backend_says_so(store: Store) -> None:
    """A machine with no keyring backend (keyring's own fail backend): a clear exit 2 naming the way out."""
    import keyring
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        store.config.write_text(CONFIG.replace('audit_key_file = "keys/audit.key"', 'audit_key = "keyring"'))
        code, out = store.verify()
    finally:
        keyring.set_keyring(before)
    assert code == 2 and "audit_key is 'keyring'" in out and 'audit_key = "file"' in out


def test_config_refuses_a_key_file_with_the_keyring(tmp_path: Path) -> None:
    from aupctl.errors import ConfigError

    (tmp_path / "aupctl.toml").write_text(CONFIG + 'audit_key = "keyring"\n')
    with pytest.raises(ConfigError, match="audit_key_file is set, but state.audit_key is 'keyring'"):
        load(str(tmp_path / "aupctl.toml"))
