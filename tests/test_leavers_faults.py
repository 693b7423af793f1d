"""The directory server stopped in the middle of a wave (a real slapd, really stopped): the plan stops
with exit 4 naming what was done, and once the server is back the same command finishes the wave."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from aupctl import config as config_mod
from aupctl.directory import open_directory
from aupctl.errors import PartialError, UnreachableError
from aupctl.leavers.schedule import Request, run_due, withdraw
from aupctl.leavers.withdraw import current_row, leaver_tasks
from aupctl.plan import apply
from aupctl.records.leavers import DONE, WITHDRAWING
from aupctl.sandbox import school as hb
from aupctl.state import State

TODAY = dt.date.today()


def _wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"slapd did not come back on {host}:{port}")


def test_server_stopped_mid_wave_then_finished_by_a_rerun(fresh_openldap) -> None:
    info = fresh_openldap
    argv = Path(f"/proc/{info.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    cfg = config_mod.load(str(info.config_path))
    state = State(cfg.state.path)
    users = ["zclarke", "gsmithjones", "jsmith"]
    restarted: subprocess.Popen | None = None
    try:
        directory = open_directory(cfg)
        before = {u: directory.flavour.find_user(directory, u) for u in users}
        plan = withdraw(cfg, directory, state, [Request(u, None, "July") for u in users], today=TODAY)
        # The server goes away just before the second person's first group removal.
        at = next(i for i, c in enumerate(plan.changes) if c.target == users[1] and c.action == "remove-member")
        real = plan.changes[at].run

        def server_gone():
            info.stop()
            return real()

        plan.changes[at].run = server_gone
        with pytest.raises(PartialError) as exc:
            apply(plan, state)
        assert exc.value.exit_code == 4 and exc.value.done == at
        assert "stopped at step" in exc.value.message and "run the same command again" in exc.value.hint
        assert current_row(state, users[0])["status"] == DONE
        assert current_row(state, users[1])["status"] == WITHDRAWING
        assert current_row(state, users[2]) is None

        # While it is down: cannot reach it, nothing else changes (exit 3, not a traceback).
        with pytest.raises(UnreachableError):
            withdraw(cfg, open_directory(cfg), state, [Request(u, None, "July") for u in users], today=TODAY)

        restarted = subprocess.Popen(
            [a.decode() for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        ldap_url = next(u for u in info.urls if u.startswith("ldap://"))
        host, port = ldap_url.removeprefix("ldap://").split(":")
        _wait_port(host, int(port))

        directory = open_directory(cfg)
        # The half-done person is picked up by run-due too (a cron night after a crash).
        assert any(c.target == users[1] for c in run_due(cfg, directory, state, today=TODAY).changes)
        rerun = withdraw(cfg, directory, state, [Request(u, None, "July") for u in users], today=TODAY)
        assert all(c.target != users[0] for c in rerun.changes)
        apply(rerun, state)
        for u in users:
            acct = directory.flavour.find_user(directory, u)
            assert acct.disabled and acct.groups == [] and "ou=Leavers" in acct.dn
            row = current_row(state, u)
            assert row["status"] == DONE
            snap = json.loads(row["snapshot"])
            assert sorted(snap["groups"]) == sorted(before[u].groups)  # the snapshot from before the outage
            assert [t["kind"] for t in leaver_tasks(state, row["id"])] == ["mailbox"]
        assert withdraw(cfg, directory, state, [Request(u) for u in users], today=TODAY).empty
        directory.close()
    finally:
        state.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(10)


def test_the_sandbox_people_exist() -> None:
    # The fault test names seeded people; say so plainly if the school changes under it.
    names = {p.username for p in hb.school().staff}
    assert {"zclarke", "gsmithjones", "jsmith"} <= names
