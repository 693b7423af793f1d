"""Bulk changing runs take a lease in the state store (issue 11, items 4 and 8), on a real slapd with
real processes: `leaver run-due` and `staff import` at once no longer leave a moved leaver's old DN in
"All Staff"; a second run waits and says for whom, or refuses with --no-wait (exit 3); a lease left
by a run killed with kill -9, or expired, does not hold anyone up."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aupctl import config as config_mod
from aupctl.directory import is_under, open_directory
from aupctl.state import State

TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()

# `aupctl` with a directory server slow to move entries (a big wave, a busy DC): the test is told when
# the leaver's groups are gone and the move is about to be sent.
SLOW_MOVE = """
import sys, time
from pathlib import Path
from aupctl.directory import Connection
real = Connection.move
def slow(self, dn, parent):
    Path(sys.argv[1]).write_text(dn)
    time.sleep(float(sys.argv[2]))
    return real(self, dn, parent)
Connection.move = slow
from aupctl.commands import main
sys.exit(main(sys.argv[3:]))
"""

HOLDER = """
import sys, time
from aupctl.state import State
st = State(sys.argv[1])
st.lease("bulk-changes", "a test holder")
print("held", flush=True)
time.sleep(600)
"""


def aupctl(*args: str, cfg: Path) -> subprocess.Popen:
    env = dict(os.environ, AUPCTL_CONFIG=str(cfg))
    return subprocess.Popen(
        [sys.executable, "-m", "aupctl.commands", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_file(path: Path, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run-due ended before its move: {proc.communicate()}")
        assert time.monotonic() < deadline, "run-due never reached its move"
        time.sleep(0.02)


def _intake_csv(tmp_path: Path) -> Path:
    """The office's export still lists the leaver (it always does, the week they go)."""
    path = tmp_path / "intake.csv"
    path.write_text("first_name,last_name,role,staff_code\nZoë,Clarke,teacher,HB0007\n", encoding="utf-8")
    return path


def test_run_due_and_staff_import_at_once_leave_no_stale_dn(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    cfg_path = info.config_path
    cfg = config_mod.load(str(cfg_path))
    sched = aupctl("leaver", "withdraw", "zclarke", "--on", TOMORROW, "--reason", "resigned", "--yes", cfg=cfg_path)
    out, err = sched.communicate(timeout=60)
    assert sched.returncode == 0, err

    marker = tmp_path / "moving"
    env = dict(os.environ, AUPCTL_CONFIG=str(cfg_path))
    due = subprocess.Popen(
        [sys.executable, "-c", SLOW_MOVE, str(marker), "3", "leaver", "run-due", "--today", TOMORROW, "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_file(marker, due)
    old_dn = marker.read_text()
    importing = aupctl("staff", "import", str(_intake_csv(tmp_path)), "--yes", cfg=cfg_path)
    due_out, due_err = due.communicate(timeout=120)
    imp_out, imp_err = importing.communicate(timeout=120)
    assert due.returncode == 0, due_err
    assert importing.returncode == 0, imp_err
    assert "internal error" not in due_err + imp_err

    d = open_directory(cfg)
    try:
        acct = d.flavour.find_user(d, "zclarke")
        assert is_under(acct.dn, cfg.dn(cfg.directory.leavers_ou))
        all_staff = d.flavour.group_members(d, cfg.group_dn("All Staff")) or []
        stale = [m for m in all_staff if not d.exists(m)]
        assert stale == [], f"All Staff names entries that do not exist: {stale}"
        assert not any(m.lower() == old_dn.lower() for m in all_staff)
        assert acct.groups == []  # and the leaver was not put back in the new place either
    finally:
        d.close()
    # The second run waited for the first and said for whom.
    assert "waiting for leaver run-due by" in imp_err, imp_err
    assert f"pid {due.pid}" in imp_err


def test_no_wait_refuses_while_another_bulk_run_holds_the_lease(fresh_openldap, tmp_path) -> None:
    cfg_path = fresh_openldap.config_path
    cfg = config_mod.load(str(cfg_path))
    State(cfg.state.path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, cfg.state.path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        refused = aupctl("staff", "import", str(_intake_csv(tmp_path)), "--yes", "--no-wait", cfg=cfg_path)
        out, err = refused.communicate(timeout=60)
        assert refused.returncode == 3, err
        assert "a test holder" in err and f"pid {holder.pid}" in err and "nothing was changed" in err
        assert time.monotonic() - started < 20
        # a dry run needs no lease
        dry = aupctl("staff", "import", str(_intake_csv(tmp_path)), "--dry-run", "--no-wait", cfg=cfg_path)
        assert dry.wait(60) == 0, dry.communicate()

        # kill -9: the lease it left holds nobody up (its pid is gone on this host)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        st = State(cfg.state.path)
        try:
            assert st.query("SELECT count(*) AS n FROM leases")[0]["n"] == 1  # still written down...
            assert st.try_lease("bulk-changes", "after the kill") is None  # ...but taken over at once
            st.release_lease("bulk-changes")
        finally:
            st.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_lease_from_another_host_holds_until_it_expires(tmp_path) -> None:
    st = State(tmp_path / "s.db", lease_ttl=60)
    now = dt.datetime.now(dt.UTC)
    for expires, free in ((now + dt.timedelta(minutes=5), False), (now - dt.timedelta(seconds=1), True)):
        st.execute("DELETE FROM leases")
        st.execute(
            "INSERT INTO leases (name, holder, owner, what, since, expires) VALUES (?,?,?,?,?,?)",
            (
                "bulk-changes",
                "alice@other pid 7",
                f"not-{socket.gethostname()}:7:1",
                "staff import",
                now.isoformat(),
                expires.replace(microsecond=0).isoformat(),
            ),
        )
        holder = st.try_lease("bulk-changes", "mine")
        assert (holder is None) == free, holder
        if holder is not None:
            assert holder["holder"] == "alice@other pid 7"
    st.close()
