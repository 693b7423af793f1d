"""The state store: migrations, the hash-chained audit log, two processes at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from aupctl.state import MIGRATIONS, State


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    assert st.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    st.audit("test", "x")
    st.close()
    st = State(tmp_path / "s.db")  # no migration runs twice
    assert [e.action for e in st.audit_entries()] == ["test"]
    assert (tmp_path / "s.db").stat().st_mode & 0o077 == 0


def test_audit_chain_catches_an_edit_made_with_the_sqlite3_shell(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    st = State(path)
    for i in range(5):
        st.audit("grant", f"user{i}", {"system": "sims"})
    assert st.verify_audit() == (5, None)
    st.close()
    # An editor has to get past the append-only trigger first; the chain still catches it.
    script = "DROP TRIGGER audit_no_update; UPDATE audit SET target='someone-else' WHERE id=3;"
    subprocess.run(["sqlite3", str(path), script], check=True)
    st = State(path)
    count, broken = st.verify_audit()
    assert broken is not None and broken.id == 3
    assert "edited" in broken.reason


def test_audit_chain_catches_a_deleted_entry(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    st = State(path)
    for i in range(4):
        st.audit("grant", f"user{i}")
    st.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id=2;")
    db.close()
    _, broken = State(path).verify_audit()
    assert broken is not None and broken.id == 2


def test_updates_are_refused_by_the_store(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    st.audit("x", "y")
    try:
        st.db.execute("UPDATE audit SET target='z'")
    except sqlite3.DatabaseError as exc:
        assert "append-only" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("the audit log accepted an UPDATE")


WRITER = """
import sys
from aupctl.state import State
st = State(sys.argv[1])
for i in range(150):
    st.audit("write", f"{sys.argv[2]}-{i}")
"""


def test_two_processes_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    State(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("cron", "tech")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    st = State(path)
    count, broken = st.verify_audit()
    assert count == 300 and broken is None


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import pytest

    from aupctl.errors import AupctlError

    path = tmp_path / "s.db"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.commit()
    db.close()
    with pytest.raises(AupctlError, match="newer aupctl"):
        State(path)
