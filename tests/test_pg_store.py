"""A school's store on a real PostgreSQL server, with a real slapd and real aupctl processes (issue 17):
`state migrate` of a sandbox school's SQLite store after a few jobs (refused the second time), backup
and verify of the server's store; a bulk run killed with kill -9 while holding its lease, then a second
run; the server restarted in the middle of a plan (exit 4, and a re-run finishes)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aupctl import config as config_mod
from aupctl.directory import is_under, open_directory
from aupctl.sandbox import school as hb
from aupctl.state import State

TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()
PLANTED = set(hb.PLANTED.values()) | {hb.LEGIT_IT_ADMIN}

# `aupctl` whose directory pauses before its first move (the test is told), or restarts PostgreSQL there.
HOOKED = """
import sys, time
from pathlib import Path
from aupctl.directory import Connection
marker, what = Path(sys.argv[1]), sys.argv[2]
real = Connection.move
def hooked(self, dn, parent):
    if not marker.exists():
        marker.write_text(dn)
        if what == "restart":
            from aupctl.sandbox.postgres import Cluster
            d, port, bindir = sys.argv[3:6]
            Cluster(Path(d), int(port), "", Path(d) / "ca.pem", Path(bindir)).restart()
        else:
            time.sleep(float(what))
    return real(self, dn, parent)
Connection.move = hooked
from aupctl.commands import main
sys.exit(main(sys.argv[6:]))
"""


def _people(n: int) -> list[str]:
    staff = [p for p in hb.school().staff if not p.leaver and not p.disabled and p.username not in PLANTED
             and p.role in ("teacher", "ta", "office")]  # fmt: skip
    return [p.username for p in staff[:n]]


def _aupctl(cfg: Path, *args: str, hook: list[str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, AUPCTL_CONFIG=str(cfg))
    cmd = [sys.executable, "-c", HOOKED, *hook, *args] if hook else [sys.executable, "-m", "aupctl.commands", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)  # fmt: skip


def _done(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert "internal error" not in err, err
    return proc.returncode, out, err


def _pg_config(info, cluster, tmp_path: Path, database: str) -> Path:
    """The sandbox's config with its store on the server (url wins over path)."""
    with cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {database}")
    text = info.config_path.read_text()
    url = cluster.url.rsplit("/", 1)[0] + f"/{database}"
    text = text.replace("[state]\n", f'[state]\nurl = "{url}"\nca_file = "{cluster.ca_file}"\n', 1)
    cfg = info.dir / f"pg-{database}.toml"
    cfg.write_text(text)
    return cfg


@pytest.fixture
def pg_env(pg_cluster, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AUPCTL_STATE_PASSWORD", pg_cluster.password)
    return pg_cluster


def test_migrate_a_sandbox_school_then_backup_and_verify(fresh_openldap, pg_env, tmp_path) -> None:
    info, cluster = fresh_openldap, pg_env
    a, b = _people(2)
    sqlite_cfg = info.config_path
    for args in (["leaver", "withdraw", a, "--on", TOMORROW, "--reason", "resigned", "--yes"],
                 ["leaver", "withdraw", b, "--reason", "retired", "--yes"], ["log", "checkpoint"]):  # fmt: skip
        code, out, err = _done(_aupctl(sqlite_cfg, *args))
        assert code == 0, err
    cfg = config_mod.load(str(sqlite_cfg))
    st = State(cfg.state.path)
    entries = st.verify_audit()[0]
    leavers_before = [tuple(r) for r in st.query("SELECT username, status FROM leavers ORDER BY id")]
    st.close()
    assert entries >= 3

    url = cluster.url.rsplit("/", 1)[0] + "/migrated"
    # the server's CA goes in [state] before the move (TLS is verified from the first connection)
    sqlite_cfg.write_text(sqlite_cfg.read_text().replace("[state]\n", f'[state]\nca_file = "{cluster.ca_file}"\n', 1))
    with cluster.admin() as conn:
        conn.execute("CREATE DATABASE migrated")
    code, out, err = _done(_aupctl(sqlite_cfg, "state", "migrate", "--to", url))
    assert code == 0, err
    assert f"audit log of {entries} entries verified on both sides" in err
    code, out, err = _done(_aupctl(sqlite_cfg, "state", "migrate", "--to", url))
    assert code == 2 and "already holds records" in err and "nothing was copied" in err, err
    code, out, err = _done(_aupctl(sqlite_cfg, "state", "migrate", "--to", url, "--namespace", "hb_school"))
    assert code == 0, err  # another school's schema on the same server is its own store

    text = sqlite_cfg.read_text().replace("[state]\n", f'[state]\nurl = "{url}"\n', 1)
    pg_cfg = info.dir / "pg.toml"
    pg_cfg.write_text(text)
    for args in (["state", "verify"], ["log", "verify"]):
        code, out, err = _done(_aupctl(pg_cfg, *args))
        assert code == 0, err
    assert f"{entries + 1} entries" in err  # the copy, and its own state-migrate entry after it
    code, out, err = _done(_aupctl(pg_cfg, "--format", "json", "leaver", "list"))
    assert code == 0 and a in out and b in out, err
    st = State(url=url, ca_file=str(cluster.ca_file))
    assert [tuple(r) for r in st.query("SELECT username, status FROM leavers ORDER BY id")] == leavers_before
    st.close()

    backup = tmp_path / "backup.db"
    code, out, err = _done(_aupctl(pg_cfg, "state", "backup", str(backup)))
    assert code == 0 and backup.exists() and backup.stat().st_mode & 0o077 == 0, err
    code, out, err = _done(_aupctl(pg_cfg, "state", "verify", str(backup)))
    assert code == 0 and f"{entries + 1} entries, hash chain verified" in err, err
    code, out, err = _done(_aupctl(pg_cfg, "state", "backup", str(backup)))
    assert code == 2 and "already exists" in err


def test_a_killed_bulk_run_leaves_a_lease_that_holds_nobody_up(fresh_openldap, pg_env, tmp_path) -> None:
    info, cluster = fresh_openldap, pg_env
    cfg = _pg_config(info, cluster, tmp_path, "leases")
    a, b = _people(2)
    for user in (a, b):
        code, out, err = _done(_aupctl(cfg, "leaver", "withdraw", user, "--on", TOMORROW, "--reason", "left", "--yes"))
        assert code == 0, err
    marker = tmp_path / "moving"
    first = _aupctl(cfg, "leaver", "run-due", "--today", TOMORROW, "--yes", hook=[str(marker), "30", "-", "-", "-"])
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out, err = _done(_aupctl(cfg, "leaver", "run-due", "--today", TOMORROW, "--yes", "--no-wait"))
    assert code == 3 and "leaver run-due by" in err and f"pid {first.pid}" in err and "since 20" in err, err
    first.send_signal(signal.SIGKILL)  # kill -9 while it holds the lease, mid-plan
    first.wait(10)
    code, out, err = _done(_aupctl(cfg, "leaver", "run-due", "--today", TOMORROW, "--yes", "--no-wait"))
    assert code == 0, err
    conf = config_mod.load(str(cfg))
    d = open_directory(conf)
    try:
        for user in (a, b):
            assert is_under(d.flavour.find_user(d, user).dn, conf.dn(conf.directory.leavers_ou))
    finally:
        d.close()
    code, out, err = _done(_aupctl(cfg, "state", "verify"))
    assert code == 0, err


def test_postgresql_restarted_in_the_middle_of_a_plan(fresh_openldap, pg_env, tmp_path) -> None:
    info, cluster = fresh_openldap, pg_env
    cfg = _pg_config(info, cluster, tmp_path, "restart")
    a, b = _people(2)
    for user in (a, b):
        code, out, err = _done(_aupctl(cfg, "leaver", "withdraw", user, "--on", TOMORROW, "--reason", "left", "--yes"))
        assert code == 0, err
    marker = tmp_path / "restarted"
    hook = [str(marker), "restart", str(cluster.dir), str(cluster.port), str(cluster.bindir)]
    code, out, err = _done(_aupctl(cfg, "leaver", "run-due", "--today", TOMORROW, "--yes", hook=hook))
    assert marker.exists()
    assert code == 4, err  # part-way: what stands and what is not recorded
    assert "state store server went away" in err and "done in the directory but NOT recorded" in err, err
    code, out, err = _done(_aupctl(cfg, "leaver", "run-due", "--today", TOMORROW, "--yes"))
    assert code == 0, err
    conf = config_mod.load(str(cfg))
    d = open_directory(conf)
    try:
        for user in (a, b):
            acct = d.flavour.find_user(d, user)
            assert is_under(acct.dn, conf.dn(conf.directory.leavers_ou)) and acct.groups == []
    finally:
        d.close()
    st = State(url=conf.state.url, ca_file=conf.state.ca_file)
    try:
        assert st.open_intents(include_live=True) == []
        assert {r["status"] for r in st.query("SELECT status FROM leavers")} == {"done"}
    finally:
        st.close()
    code, out, err = _done(_aupctl(cfg, "state", "verify"))
    assert code == 0, err
