"""The state store failing after the directory changed (issue 11.1), on a real slapd: a store locked by
another connection for longer than the busy timeout, and a store on a full tmpfs, during `leaver
withdraw` and `access review --fix`. The run stops with exit 4 naming what stands in the directory
unrecorded (never "internal error"); `aupctl log repair` or the same command again checks the
directory and records it exactly once."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import payload, run_main

from aupctl import config as config_mod
from aupctl.directory import Connection, open_directory
from aupctl.state import State

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def journal_config(info, state_path: Path, busy: float = 0.5) -> Path:
    """The sandbox's config with the store at state_path (a copy of the sandbox's, approvals and all)."""
    State(info.dir / "state.db").close()  # made on first use if the sandbox has not made it yet
    src = sqlite3.connect(info.dir / "state.db")
    dst = sqlite3.connect(state_path)
    src.backup(dst)
    src.close()
    dst.close()
    text = info.config_path.read_text()
    assert '[state]\npath = "state.db"\n' in text
    text = text.replace('[state]\npath = "state.db"\n', f'[state]\npath = "{state_path}"\nbusy_timeout = {busy}\n')
    path = info.config_path.with_name("journal.toml")
    path.write_text(text)
    return path


class Locked:
    """Another connection holding BEGIN EXCLUSIVE on the store until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen | None = None

    def fire(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(self.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            assert self.proc.wait(10) == 0
            self.proc = None

    expected = "is locked by another aupctl run"


class DiskFull:
    """The file system under the store filled to the last byte (a real tmpfs, size-limited)."""

    def __init__(self, path: Path) -> None:
        self.filler = path.parent / "filler"

    def fire(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # big blocks, then the last few bytes
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)

    expected = "is full"


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the full-disk test mounts a tmpfs: run the tests as root (the CI does)")
    where = Path(tempfile.mkdtemp(prefix="aupctl-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def fault_after_first_member_change(monkeypatch: pytest.MonkeyPatch, fault) -> list[str]:
    """Fire the fault straight after the first group-membership change reaches the directory."""
    real = Connection.modify
    fired: list[str] = []

    def modify(self, dn, changes, **kw):
        result = real(self, dn, changes, **kw)
        if not fired and any(a.lower() in ("member", "uniquemember") for a in changes):
            fired.append(dn)
            fault.fire()
        return result

    monkeypatch.setattr(Connection, "modify", modify)
    return fired


def reconciled(cfg_path: Path) -> list[dict]:
    cfg = config_mod.load(str(cfg_path))
    st = State(cfg.state.path)
    try:
        return [dict(e.details, target=e.target) for e in st.audit_entries() if e.action == "reconciled"]
    finally:
        st.close()


def open_intents(cfg_path: Path) -> int:
    cfg = config_mod.load(str(cfg_path))
    st = State(cfg.state.path)
    try:
        return len(st.open_intents(include_live=True))
    finally:
        st.close()


def _members(cfg_path: Path, group_dn: str) -> list[str]:
    cfg = config_mod.load(str(cfg_path))
    d = open_directory(cfg)
    try:
        return d.flavour.group_members(d, group_dn) or []
    finally:
        d.close()


def check_stop_and_repair(
    cfg_path: Path,
    fault,
    fired: list[str],
    command: list[str],
    *,
    repair_with: str,
    after: Callable[[], None],
) -> None:
    code, out, err = run_main(*command, config=cfg_path)
    assert fired, ("the fault never fired: the plan made no group change", code, out, err)
    assert "internal error" not in err and "Traceback" not in err, err
    assert code == 4, (code, out, err)
    assert fault.expected in err, err
    assert "done in the directory but NOT recorded" in err and "log repair" in err, err
    group = fired[0]
    assert group.split(",")[0].split("=")[1] in err  # names the change that stands unrecorded
    assert reconciled(cfg_path) == []
    assert open_intents(cfg_path) == 1
    fault.release()

    if repair_with == "log repair":
        code, out, err = run_main("--format", "json", "log", "repair", config=cfg_path)
        assert code == 0, (out, err)
        rows = payload(out)
        assert [r["outcome"] for r in rows] == ["done"]
        assert rows[0]["action"] == "remove-member"
        code, out, err = run_main("log", "repair", config=cfg_path)
        assert code == 0 and "nothing to repair" in err, err
    else:  # the same command again reconciles first, then finishes
        code, out, err = run_main(*command, config=cfg_path)
        assert code in (0, 1), (code, out, err)  # access review exits 1: it found what it fixed
        assert "is now recorded" in err and ": done" in err, err
    entries = reconciled(cfg_path)
    assert len(entries) == 1, entries  # exactly once
    assert entries[0]["outcome"] == "done" and entries[0]["action"] == "remove-member"
    assert entries[0]["group"] == group or entries[0].get("group", "").lower() == group.lower()
    assert open_intents(cfg_path) == 0
    after()
    assert len(reconciled(cfg_path)) == 1  # and never again
    code, out, err = run_main("log", "verify", config=cfg_path)
    assert code == 0, err


def _leaver_case(info, cfg_path: Path, fault, monkeypatch, repair_with: str) -> None:
    fired = fault_after_first_member_change(monkeypatch, fault)
    command = ["leaver", "withdraw", "zclarke", "--reason", "left", "--yes"]

    def after() -> None:
        monkeypatch.undo()
        code, out, err = run_main(*command, config=cfg_path)
        assert code == 0, (out, err)
        cfg = config_mod.load(str(cfg_path))
        d = open_directory(cfg)
        acct = d.flavour.find_user(d, "zclarke")
        d.close()
        assert "ou=leavers" in acct.dn.lower() and acct.groups == [] and acct.disabled

    check_stop_and_repair(cfg_path, fault, fired, command, repair_with=repair_with, after=after)


def _review_case(info, cfg_path: Path, fault, monkeypatch, repair_with: str) -> None:
    fired = fault_after_first_member_change(monkeypatch, fault)
    command = ["access", "review", "--fix", "--force", "--yes"]

    def after() -> None:
        monkeypatch.undo()
        code, out, err = run_main(*command, config=cfg_path)
        assert code in (0, 1), (out, err)
        code, out, err = run_main(
            "--format", "json", "access", "review", "--fix", "--force", "--dry-run", config=cfg_path
        )
        left = [c for c in payload(out)["plan"]["changes"] if c["action"] == "remove-member"]
        assert left == [], left  # every removal the review wanted is done (and recorded)

    check_stop_and_repair(cfg_path, fault, fired, command, repair_with=repair_with, after=after)


@pytest.mark.parametrize("repair_with", ["log repair", "rerun"])
def test_leaver_withdraw_with_the_store_locked(fresh_openldap, tmp_path, monkeypatch, repair_with) -> None:
    path = tmp_path / "store" / "state.db"
    path.parent.mkdir()
    cfg_path = journal_config(fresh_openldap, path)
    _leaver_case(fresh_openldap, cfg_path, Locked(path), monkeypatch, repair_with)


@pytest.mark.parametrize("repair_with", ["log repair", "rerun"])
def test_access_review_fix_with_the_store_locked(fresh_openldap, tmp_path, monkeypatch, repair_with) -> None:
    path = tmp_path / "store" / "state.db"
    path.parent.mkdir()
    cfg_path = journal_config(fresh_openldap, path)
    _review_case(fresh_openldap, cfg_path, Locked(path), monkeypatch, repair_with)


def test_leaver_withdraw_with_the_disk_full(fresh_openldap, tmpfs, monkeypatch) -> None:
    path = tmpfs / "state.db"
    cfg_path = journal_config(fresh_openldap, path)
    fault = DiskFull(path)
    try:
        _leaver_case(fresh_openldap, cfg_path, fault, monkeypatch, "log repair")
    finally:
        fault.release()


def test_access_review_fix_with_the_disk_full(fresh_openldap, tmpfs, monkeypatch) -> None:
    path = tmpfs / "state.db"
    cfg_path = journal_config(fresh_openldap, path)
    fault = DiskFull(path)
    try:
        _review_case(fresh_openldap, cfg_path, fault, monkeypatch, "rerun")
    finally:
        fault.release()


def test_on_active_directory_too(ad_sandbox, tmp_path, monkeypatch) -> None:
    """The same on a real Samba AD DC: its checks (member, userAccountControl) read AD's way."""
    path = tmp_path / "leaver" / "state.db"
    path.parent.mkdir()
    _leaver_case(ad_sandbox, journal_config(ad_sandbox, path), Locked(path), monkeypatch, "log repair")
    path = tmp_path / "review" / "state.db"
    path.parent.mkdir()
    _review_case(ad_sandbox, journal_config(ad_sandbox, path), Locked(path), monkeypatch, "rerun")


HANGS_AFTER_FIRST_MEMBER_CHANGE = """
import sys, time
from pathlib import Path
from aupctl.directory import Connection
real = Connection.modify
def modify(self, dn, changes, **kw):
    result = real(self, dn, changes, **kw)
    if any(a.lower() in ("member", "uniquemember") for a in changes):
        Path(sys.argv[1]).write_text(dn)
        time.sleep(600)
    return result
Connection.modify = modify
from aupctl.commands import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_run_killed_after_a_change_is_reconciled_once_it_is_dead(fresh_openldap, tmp_path) -> None:
    import signal
    import time

    path = tmp_path / "store" / "state.db"
    path.parent.mkdir()
    cfg_path = journal_config(fresh_openldap, path)
    marker = tmp_path / "changed"
    env = dict(os.environ, AUPCTL_CONFIG=str(cfg_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HANGS_AFTER_FIRST_MEMBER_CHANGE,
            str(marker),
            "access",
            "review",
            "--fix",
            "--force",
            "--yes",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        group = marker.read_text()
        # while it runs, its open intent is its own business
        code, out, err = run_main("log", "repair", config=cfg_path)
        assert code == 0 and "nothing to repair" in err, err
        assert open_intents(cfg_path) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        code, out, err = run_main("--format", "json", "log", "repair", config=cfg_path)
        assert code == 0, err
        rows = payload(out)
        assert [(r["action"], r["outcome"]) for r in rows] == [("remove-member", "done")]
        assert [e["group"].lower() for e in reconciled(cfg_path)] == [group.lower()]
        assert open_intents(cfg_path) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
