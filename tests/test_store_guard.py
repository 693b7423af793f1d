"""The state store guarded (issue 11): an empty or foreign file refused and never re-created, `state
init`, files owner-only (-wal and -shm too), an integrity check, damaged pages as a clear message (not
exit 70); the journal of intents and their reconciling; the actor taken from the OS, not $SUDO_USER."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import payload, run_main

from aupctl.errors import StoreError
from aupctl.plan import Change, Check, Plan, apply, reconcile
from aupctl.state import State, actor, owner_alive, run_owner

CONFIG = """
[school]
name = "Test School"
aup_version = "2024-09"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:1"
bind_dn = "cn=aupctl,dc=test"
base_dn = "dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"

[state]
path = "{path}"
busy_timeout = 0.5
"""


def config(tmp_path: Path, store: Path) -> Path:
    p = tmp_path / "aupctl.toml"
    p.write_text(CONFIG.format(path=store))
    return p


def _refused(code: int, err: str, store: Path) -> None:
    assert code == 2, err
    assert str(store) in err and "internal error" not in err


# -- empty and foreign files --


def test_an_empty_store_file_is_refused_not_recreated(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    store.touch()
    cfg = config(tmp_path, store)
    for args in (["log"], ["log", "repair"], ["tasks", "list"]):
        code, out, err = run_main(*args, config=cfg)
        _refused(code, err, store)
        assert "empty" in err and "state init" in err
    assert store.stat().st_size == 0  # left as it was: nothing quietly made over it
    assert not store.with_name("state.db-wal").exists()


@pytest.mark.parametrize(
    "make",
    ["text", "sqlite-without-schema", "sqlite-empty-schema"],
)
def test_a_foreign_file_is_refused(tmp_path: Path, make: str) -> None:
    store = tmp_path / "state.db"
    if make == "text":
        store.write_text("approvals,kept,in,a,spreadsheet\n")
        words = "not a SQLite database"
    else:
        db = sqlite3.connect(store)
        if make == "sqlite-without-schema":
            db.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT)")
            db.execute("INSERT INTO audit (note) VALUES ('someone else''s')")
        else:
            db.execute("PRAGMA page_size = 4096")
            db.execute("VACUUM")
        db.commit()
        db.close()
        words = "without aupctl's schema"
    before = store.read_bytes()
    code, out, err = run_main("log", config=config(tmp_path, store))
    _refused(code, err, store)
    assert words in err
    assert store.read_bytes() == before
    with pytest.raises(StoreError):
        State(store)


def test_state_init_makes_a_store_only_where_there_is_none(tmp_path: Path) -> None:
    store = tmp_path / "new" / "state.db"
    cfg = config(tmp_path, store)
    code, out, err = run_main("state", "init", config=cfg)
    assert code == 0 and "made a new state store" in err, err
    code, out, err = run_main("log", config=cfg)
    assert code == 0, err
    # a store with data is never overwritten
    st = State(store)
    st.audit("grant", "someone")
    st.close()
    code, out, err = run_main("state", "init", config=cfg)
    assert code == 2 and "not empty" in err and str(store) in err, err
    assert [e.target for e in State(store).audit_entries()] == ["someone"]
    # an empty file beside a -wal holding data is not empty: its data is in the -wal
    wal = store.with_name("state.db-wal")
    store.unlink()
    store.touch()
    wal.write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 28)
    code, out, err = run_main("state", "init", config=cfg)
    assert code == 2 and "not empty" in err, err
    code, out, err = run_main("log", config=cfg)
    assert code == 2 and "-wal" in err, err
    wal.unlink()
    # an empty file (a lost store) is replaced only when asked to, by state init
    store.unlink()
    store.touch()
    code, out, err = run_main("state", "init", config=cfg)
    assert code == 0 and "it was an empty file" in err, err
    assert State(store).verify_audit() == (0, None)


def test_a_new_store_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    State(store).close()
    assert store.read_bytes()[:16] == b"SQLite format 3\x00"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("state.db")) == []  # no temp files


# -- owner-only files --


def test_store_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual shell's umask: files 0644 unless aupctl says otherwise
    try:
        store = tmp_path / "fresh" / "state.db"
        st = State(store)
        st.audit("grant", "x")  # the WAL is in use
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            mode = stat.S_IMODE((store.parent / name).stat().st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
        assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
        st.close()
        # reopened later: the -wal and -shm made again are owner-only too
        st = State(store)
        st.audit("grant", "y")
        for name in ("state.db-wal", "state.db-shm"):
            assert stat.S_IMODE((store.parent / name).stat().st_mode) == 0o600
        st.close()
        assert os.umask(0o022) == 0o022  # and the process's umask is given back
    finally:
        os.umask(old)


# -- damage --


def _damage(store: Path, pages: int) -> None:
    """The last pages (the audit entries written last) overwritten with garbage, as a failing disk might."""
    size = 4096
    data = bytearray(store.read_bytes())
    for off in range(len(data) - pages * size, len(data)):
        data[off] = (off * 7 + 13) % 256
    store.write_bytes(bytes(data))


def test_damaged_pages_are_a_clear_message_and_the_integrity_check_names_them(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    st = State(store)
    for i in range(200):
        st.audit("grant", f"user{i}", {"system": "sims", "reason": "x" * 200})
    assert st.integrity_check() == [] and st.integrity_check(full=True) == []
    st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    st.close()
    _damage(store, pages=8)
    cfg = config(tmp_path, store)
    for args in (["log"], ["log", "--user", "user150"]):
        code, out, err = run_main(*args, config=cfg)
        assert code == 2, (args, err)
        assert "damaged" in err and str(store) in err and "internal error" not in err, err
    st = State(store)
    problems = st.integrity_check()
    assert problems and all(isinstance(p, str) for p in problems)
    st.close()


def test_a_locked_store_outside_a_plan_is_a_clear_message(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    State(store).close()
    cfg = config(tmp_path, store)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, out, err = run_main("state", "init", config=cfg)  # refuses before it needs the lock
        assert code == 2
        st = State(store, busy_timeout=0.2)
        with pytest.raises(sqlite3.OperationalError):
            st.audit("grant", "x")
        st.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- the journal: intended before, done after, reconciled once --


def test_each_change_is_journalled_as_intended_before_it_runs(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    seen: list[str] = []

    def run() -> dict:
        row = st.query("SELECT status, description, owner FROM journal ORDER BY id DESC LIMIT 1")[0]
        seen.append(row["status"])
        assert row["description"] == "do the thing" and row["owner"] == run_owner()
        return {}

    apply(Plan("p", [Change("do", "t", "do the thing", run, check=Check("member", {"x": 1}))]), st)
    assert seen == ["intended"]
    row = st.query("SELECT status, check_spec FROM journal")[0]
    assert row["status"] == "done" and json.loads(row["check_spec"]) == {"kind": "member", "x": 1}


def test_a_store_only_change_and_its_record_stand_or_fall_together(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")

    def run() -> None:
        st.execute("INSERT INTO tasks (kind, text, opened_at, opened_by) VALUES ('x', 'half', 'now', 'me')")
        raise RuntimeError("failed after writing")

    change = Change("open-task", "t", "open a task", run)
    assert change.local
    with pytest.raises(Exception, match="failed after writing"):
        apply(Plan("p", [change]), st)
    assert st.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 0  # rolled back with it
    assert [r["status"] for r in st.query("SELECT status FROM journal")] == ["failed"]
    assert st.open_intents() == []


def test_an_interrupted_change_is_reconciled_once(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")

    def run() -> None:
        raise KeyboardInterrupt

    plan = Plan("p", [Change("add-member", "jo", "add jo to SIMS", run, {"group": "g"}, check=Check("member", {}))])
    with pytest.raises(Exception, match="interrupted"):
        apply(plan, st)
    assert [r["status"] for r in st.query("SELECT status FROM journal")] == ["interrupted"]
    asked: list[Check] = []
    done = reconcile(st, lambda c: asked.append(c) or True)
    assert [(r.outcome, r.target, r.action) for r in done] == [("done", "jo", "add-member")]
    assert asked == [Check("member", {})]
    assert reconcile(st, lambda c: True) == []  # exactly once
    entries = [e for e in st.audit_entries() if e.action == "reconciled"]
    assert len(entries) == 1 and entries[0].details["outcome"] == "done" and entries[0].details["group"] == "g"
    assert st.verify_audit()[1] is None


def _open_intent(st: State, owner: str, check: str | None, local: int = 0) -> None:
    st.execute(
        "INSERT INTO journal (plan_id, seq, action, target, status, at, description, details, check_spec, local, "
        "owner, actor) VALUES ('p1', 1, 'set-password', 'jo', 'intended', '2026-01-01T00:00:00+00:00', "
        "'jo: set a password', '{}', ?, ?, ?, 'root')",
        (check, local, owner),
    )


def test_intents_of_a_live_run_are_left_alone(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = run_owner().split(":")[0] + f":{sleeper.pid}:"
        assert owner_alive(live)
        _open_intent(st, live, None)
        assert st.open_intents() == [] and reconcile(st, None) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not owner_alive(live)
    assert [r.outcome for r in reconcile(st, None)] == ["unknown"]


def test_log_repair_lists_what_cannot_be_checked_and_exits_1(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    st = State(store)
    _open_intent(st, "somehost-long-gone:1:1", None)  # another host's run; no check possible
    _open_intent(st, run_owner().split(":")[0] + ":999999999:", None, local=1)
    st.close()
    code, out, err = run_main("--format", "json", "log", "repair", config=config(tmp_path, store))
    rows = payload(out)
    # the other host's intent might still be running there: it is left for that host (or a later run)
    assert [(r["outcome"], r["action"]) for r in rows] == [("not done", "set-password")]
    assert code == 0, err
    st = State(store)
    st.execute("UPDATE journal SET owner = ? WHERE status = 'intended'", (run_owner().split(":")[0] + ":999999998:",))
    st.close()
    code, out, err = run_main("--format", "json", "log", "repair", config=config(tmp_path, store))
    assert code == 1 and "check them in the directory by hand" in err, err
    assert [r["outcome"] for r in payload(out)] == ["unknown"]


# -- who did it --


def test_actor_is_the_os_account_not_the_environment(tmp_path: Path) -> None:
    code = "from aupctl.state import actor; print(actor())"
    env = dict(os.environ, SUDO_USER="Mrs A Patel", USER="Mrs A Patel", LOGNAME="Mrs A Patel", USERNAME="x")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    import pwd

    assert out.strip() == pwd.getpwuid(os.geteuid()).pw_name
    assert actor() == out.strip()


def test_actor_under_sudo_records_both(tmp_path: Path) -> None:
    sudo = shutil.which("sudo")
    if sudo is None or os.geteuid() != 0:
        pytest.fail("this test needs sudo and root (scripts/install-deps.sh installs sudo)")
    code = "from aupctl.state import actor; print(actor())"
    src = str(Path(__file__).resolve().parents[1])
    # nobody may not reach a Python under /root: the system one, without site-packages (only the stdlib is
    # needed), importing this checkout
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    out = subprocess.run(
        [sudo, "-u", "nobody", "env", "SUDO_USER=Mrs A Patel", f"PYTHONPATH={src}", python, "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "nobody (sudo by root)"


def test_aup_sign_with_a_forged_sudo_user_records_the_real_account(openldap_sandbox) -> None:
    import pwd

    env = dict(os.environ, AUPCTL_CONFIG=str(openldap_sandbox.config_path), SUDO_USER="Mrs A Patel")
    run = subprocess.run(
        [sys.executable, "-m", "aupctl.commands", "aup", "sign", "jsmith", "--yes"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    st = State(openldap_sandbox.dir / "state.db")
    signs = [e for e in st.audit_entries() if e.action == "aup-sign" and e.target == "jsmith"]
    st.close()
    assert signs and signs[-1].actor == pwd.getpwuid(os.geteuid()).pw_name
    assert "Patel" not in signs[-1].actor


def test_a_change_writing_the_store_as_it_goes_stays_open_when_the_store_fails(tmp_path: Path) -> None:
    from aupctl.errors import UnrecordedError

    st = State(tmp_path / "s.db")
    made: list[str] = []

    def run() -> None:  # like an intake batch: accounts made, then its own record fails
        made.append("account")
        raise sqlite3.OperationalError("database or disk is full")

    plan = Plan("import", [Change("create-accounts", "batch 1", "create 1 account(s): jo", run, audit=False)])
    with pytest.raises(UnrecordedError) as caught:
        apply(plan, st)
    assert caught.value.exit_code == 4 and made == ["account"]
    assert "done (or partly done) in the directory but NOT recorded: create 1 account(s): jo" in caught.value.message
    assert "is full" in caught.value.message and "log repair" in str(caught.value)
    assert [r.outcome for r in reconcile(st, None)] == ["unknown"]  # no check for it: listed for a person


def test_the_store_imports_where_there_is_no_pwd_module() -> None:
    # Windows has no pwd: it must only be imported where it is used, on POSIX.
    code = "import sys; sys.modules['pwd'] = None; import aupctl.state, aupctl.plan, aupctl.checks; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("line", ["busy_timeout = nan", "busy_timeout = 1e308", "lease_ttl = 5", "lease_ttl = inf"])
def test_state_timeouts_are_bounded_at_config_check(tmp_path: Path, line: str) -> None:
    cfg = config(tmp_path, tmp_path / "state.db")
    cfg.write_text(cfg.read_text().replace("busy_timeout = 0.5", line))
    code, out, err = run_main("config", "check", config=cfg)
    assert code == 2 and "state." in err and ("must be from" in err or "finite" in err), err


def test_a_store_from_the_release_before_is_migrated(tmp_path: Path) -> None:
    from aupctl.state import MIGRATIONS, _split_sql

    store = tmp_path / "state.db"
    db = sqlite3.connect(store, isolation_level=None)
    for i, migration in enumerate(MIGRATIONS[:2]):
        for stmt in _split_sql(migration):
            db.execute(stmt)
        db.execute(f"PRAGMA user_version = {i + 1}")
    db.execute(
        "INSERT INTO journal (plan_id, seq, action, target, status, at) VALUES ('old', 1, 'disable', 'jo', 'done', 'x')"
    )
    db.close()
    st = State(store)
    assert st.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert st.open_intents() == []  # rows from before intents existed are not taken for open ones
    assert st.try_lease("bulk-changes", "test") is None
    st.close()


def test_doctor_finds_damaged_pages_of_the_store(fresh_openldap) -> None:
    """A store whose pages were damaged (a disk fault, a bad copy): doctor fails it (exit 2) instead of
    saying "state store ok" and letting a job fall over later."""
    from cli_helpers import run_main

    info = fresh_openldap
    code, out, err = run_main("aup", "import", str(info.dir / "aup-signatures.csv"), "--yes", config=info.config_path)
    assert code == 0, out + err
    code, out, err = run_main("doctor", config=info.config_path)
    assert code == 0 and "quick_check ok" in out, out + err
    store = info.dir / "state.db"
    run_main("log", "checkpoint", config=info.config_path)  # folds the WAL in, so the damage lands in the file
    import sqlite3

    db = sqlite3.connect(store)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert pages > 4
    with open(store, "r+b") as fh:  # scribble over the middle pages, leaving the header whole
        fh.seek(size * 2)
        fh.write(b"\xa5" * size * (pages - 3))
    code, out, err = run_main("doctor", config=info.config_path)
    assert code == 2, out + err
    assert "damaged" in out + err and "internal error" not in out + err
