"""The state store and its records on both backends (issue 17): each test runs on SQLite and on a real
PostgreSQL server (the ``store`` fixture, tests/conftest.py): migrations, the keyed audit chain and the
edits it catches, the append-only triggers, every records module, the journal, leases, eight processes
changing records at once, `log verify` and `state verify` through the CLI."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_main

from aupctl import auditlog
from aupctl.errors import AupctlError
from aupctl.records import approvals, devices, known, leavers, mis, provisioned, roles, signatures, tasks
from aupctl.state import MIGRATIONS, expected_tables

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
checkpoints = "elsewhere/checkpoints.jsonl"
audit_key_file = "keys/audit.key"
"""


def _config(store, tmp_path: Path) -> Path:
    path = tmp_path / "aupctl.toml"
    path.write_text(CONFIG + store.state_toml())
    return path


def test_schema_version_tables_and_reopen(store) -> None:
    st = store.open()
    assert st.backend == store.backend
    assert st.schema_version() == len(MIGRATIONS)
    assert expected_tables() <= st.tables()
    assert st.integrity_check() == []
    st.audit("test", "x", {"é": "ü"})
    st.close()
    st = store.open()  # no migration runs twice
    assert [(e.action, e.details) for e in st.audit_entries()] == [("test", {"é": "ü"})]
    st.close()


def test_the_chain_catches_an_edit_and_a_deleted_entry(store) -> None:
    st = store.open()
    for i in range(5):
        st.audit("grant", f"user{i}", {"system": "sims"})
    assert st.verify_audit() == (5, None)
    st.close()
    store.admin("UPDATE audit SET target = 'someone-else' WHERE id = 3")
    st = store.open()
    _, broken = st.verify_audit()
    assert broken is not None and broken.id == 3 and "edited" in broken.reason
    st.close()
    store.admin("DELETE FROM audit WHERE id = 2")
    st = store.open()
    _, broken = st.verify_audit()
    assert broken is not None and broken.id == 2
    st.close()


@pytest.mark.parametrize("sql", ["UPDATE audit SET target = 'z'", "DELETE FROM audit"])
def test_the_store_refuses_to_change_the_audit_log(store, sql: str) -> None:
    st = store.open()
    st.audit("x", "y")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        st.execute(sql)
    assert st.verify_audit() == (1, None)
    st.close()


def test_a_newer_schema_is_refused(store) -> None:
    store.open().close()
    if store.backend == "sqlite":
        db = sqlite3.connect(store.path)
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
        db.commit()
        db.close()
    else:
        store.admin(f"UPDATE aupctl_schema SET version = {len(MIGRATIONS) + 5}")
    with pytest.raises(AupctlError, match="newer aupctl"):
        store.open()


def test_every_records_module(store) -> None:
    st = store.open()
    # approvals: one live row per person and system, names matched without case
    first = approvals.record(st, username="Zoë.OBrien", system="sims", approver="head")
    second = approvals.record(st, username="Zoë.OBrien", system="sims", approver="head", reason="renewed")
    assert first > 0 and second > first
    assert [a["id"] for a in approvals.live(st, username="zoë.obrien")] == [second]
    assert approvals.get(st, first)["ended_reason"] == "superseded"
    assert approvals.set_waiting(st, second) is not None and approvals.live(st)[0]["status"] == "waiting"
    assert [r["id"] for r in approvals.end(st, username="ZOë.OBRIEN", reason="left")] == [second]
    assert approvals.ever_recorded(st, "sims") and not approvals.ever_recorded(st, "sap")
    # tasks: a ref is not opened twice; under a prefix
    t1 = tasks.open_task(st, kind="mailbox", text="decide", username="zobrien", ref="leaver:4")
    assert tasks.open_task(st, kind="mailbox", text="decide", username="zobrien", ref="leaver:4") == t1
    t2 = tasks.open_task(st, kind="collect-laptop", text="L1", username="zobrien", ref="leaver:4:laptop:L1")
    tasks.open_task(st, kind="x", text="other", ref="leaver:44")
    assert [t["id"] for t in tasks.tasks_under(st, "leaver:4")] == [t1, t2]
    assert [t["id"] for t in tasks.list_tasks(st, username="ZOBRIEN", open_only=True)] == [t1, t2]
    assert tasks.close_task(st, t1, note="kept")["closed_by"]
    # signatures: one per person and version, whatever the case
    day = dt.date(2026, 9, 1)
    assert signatures.record(st, "Alice", "2026.1", day, "abc") is True
    assert signatures.record(st, "alice", "2026.1", day, "abc") is False
    assert signatures.signed_users(st, "2026.1") == {"alice"}
    assert signatures.signature(st, "ALICE", "2026.1")["text_hash"] == "abc"
    # roles and provisioned: upserts keyed by a name without case
    roles.set_role(st, "Alice", "teacher", "created")
    roles.set_role(st, "alice", "admin")
    assert roles.recorded_roles(st) == {"alice": ("admin", "set")}
    provisioned.mark_creating(
        st, [provisioned.Creating("bob_x", "uid=bob_x,ou=Staff", "HB1", "teacher")], credentials_file="c", run_id="r"
    )
    provisioned.mark_done(st, "BOB_X")
    assert provisioned.by_username(st)["bob_x"]["status"] == "done"
    # known names: LIKE with its wildcards escaped
    assert known.usernames(st, "bob_") == ["bob_x"] and known.usernames(st, "bo%") == []
    assert known.usernames(st, "AL") == ["Alice"]
    # devices
    devices.enrol(st, tag="L-001", host="127.0.0.1", port=22, os_name="linux", key_type="ssh-ed25519",
                  key_b64="AAAA", fp="SHA256:x", next_due="2027-01-01", replace=False)  # fmt: skip
    assert devices.set_assigned(st, "l-001", "alice") is None
    assert devices.assigned_to(st, "ALICE") == ["L-001"]
    devices.add_event(st, "L-001", "assign", "alice", {"n": 1})
    devices.add_checkin(st, "L-001", "2026-11-01T00:00:00+00:00", "checkin", ok=True, facts="{}", findings="[]")
    devices.seen(st, "L-001", "2026-11-01T00:00:00+00:00", next_due="2027-02-01")
    assert devices.latest_checkin(st, "l-001", probed=True)["ok"] == 1
    assert devices.events(st, "L-001", 5)[0]["event"] == "assign"
    assert devices.retire(st, "L-001") == "alice" and devices.active_tags(st, 10) == []
    # leavers, and the audit entry that says a password was already replaced
    lid = leavers.schedule(st, "Carol", "uid=carol", "2026-12-01", "resigned")
    assert leavers.current(st, "carol")["id"] == lid and [r["id"] for r in leavers.due(st, "2026-12-31")] == [lid]
    assert not leavers.password_replaced(st, "carol", lid)
    st.audit("set-password", "CAROL", {"leaver_id": lid})
    assert leavers.password_replaced(st, "carol", lid) and not leavers.password_replaced(st, "carol", lid + 1)
    assert leavers.start_withdrawal(st, None, username="dan", dn="uid=dan", leave_on="2026-12-02", reason="",
                                    snapshot={"groups": []}) > lid  # fmt: skip
    # the MIS header record
    mis.remember_headers(st, "sims", ["b", "a"])
    mis.remember_headers(st, "sims", ["c"])
    assert mis.last_headers(st, "sims") == ["c"]
    assert st.verify_audit() == (2, None)  # aup-sign and set-password
    st.close()


def test_journal_intents_and_reconciling_once(store) -> None:
    st = store.open()
    jid = st.journal_intent("plan1", 1, "move", "alice", "move alice", {"to": "ou=Leavers"}, {"dn": "x"}, False)
    st.journal_close(jid, "interrupted", "gone")
    [open_one] = st.open_intents(include_live=True)
    assert open_one["id"] == jid and open_one["details"] == {"to": "ou=Leavers"}
    assert st.close_intent(jid, "done", "found in the directory") is True
    assert st.close_intent(jid, "done", "again") is False
    assert [e.action for e in st.audit_entries()] == ["reconciled"]
    st.close()


def test_a_lease_from_another_host_holds_until_it_expires(store) -> None:
    st = store.open(lease_ttl=60)
    now = dt.datetime.now(dt.UTC)
    for expires, free in ((now + dt.timedelta(minutes=5), False), (now - dt.timedelta(seconds=1), True)):
        st.execute("DELETE FROM leases")
        st.execute(
            "INSERT INTO leases (name, holder, owner, what, since, expires) VALUES (?,?,?,?,?,?)",
            ("bulk-changes", "alice@other pid 7", f"not-{socket.gethostname()}:7:1", "staff import",
             now.isoformat(), expires.replace(microsecond=0).isoformat()),
        )  # fmt: skip
        holder = st.try_lease("bulk-changes", "mine")
        assert (holder is None) == free, holder
        if holder is not None:
            assert holder["holder"] == "alice@other pid 7" and holder["since"] == now.isoformat()
    st.release_lease("bulk-changes")
    assert st.query("SELECT count(*) AS n FROM leases")[0]["n"] == 0
    st.close()


WRITER = """
import sys
from aupctl.records import approvals, tasks
from aupctl.state import State
url, ns, ca, path, name = sys.argv[1:6]
st = State(url=url, namespace=ns, ca_file=ca) if url != "-" else State(path)
for i in range(25):
    with st.transaction():
        approvals.record(st, username=f"{name}-{i % 5}", system="sims", approver="head")
        st.audit("access-grant", f"{name}-{i}", {"system": "sims"})
    tasks.open_task(st, kind="grant", text=f"{name} {i}", ref=f"{name}:{i}")
st.close()
"""


def test_eight_processes_changing_records_at_once(store) -> None:
    if store.backend == "postgresql":
        store.namespace = "oak_academy"  # a school's own schema, made by the first writer
    store.open().close()
    args = [store.url or "-", store.namespace or "-", str(store.cluster.ca_file) if store.cluster else "-",
            str(store.path)]  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, *args, f"tech{n}"], stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in results), results
    st = store.open()
    assert st.verify_audit() == (200, None)
    assert st.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 200
    live = st.query("SELECT username, count(*) AS n FROM approvals WHERE status = 'active' GROUP BY username")
    assert len(live) == 40 and all(r["n"] == 1 for r in live)  # one live row each: no lost update
    st.close()
    if store.backend == "postgresql":  # the school's schema alone holds them; the default one is empty
        store.namespace = None
        other = store.open()
        assert other.verify_audit() == (0, None) and other.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 0
        other.close()


def test_log_verify_and_state_verify_through_the_cli(store, tmp_path: Path) -> None:
    cfg = _config(store, tmp_path)
    st = auditlog.attach(store.open(), __import__("aupctl.config", fromlist=["load"]).load(str(cfg)))
    for i in range(6):
        st.audit("access-grant", f"user{i}", {"n": i})
    st.close()
    code, out, err = run_main("log", "checkpoint", config=cfg)
    assert code == 0, err
    code, out, err = run_main("log", "verify", config=cfg)
    assert code == 0 and "intact: 6 entries" in out + err, out + err
    code, out, err = run_main("state", "verify", config=cfg)
    assert code == 0 and "6 entries" in out + err and f"schema {len(MIGRATIONS)}" in out + err, out + err
    store.admin("UPDATE audit SET details = '{}' WHERE id = 4")
    code, out, err = run_main("log", "verify", config=cfg)
    assert code == 1 and "BROKEN at entry 4" in out + err, out + err
    code, out, err = run_main("state", "verify", config=cfg)
    assert code == 1 and "entry 4" in out + err, out + err


def _sql_blocks(heading: str) -> list[str]:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "trust.md").read_text()
    section = doc.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split("```sql\n")[1:]]


def test_the_roles_docs_trust_md_grants_are_enough_and_no_more(pg_cluster, monkeypatch, tmp_path: Path) -> None:
    """The GRANT lines of docs/trust.md, run as written: the owner makes a school's schema, the daily role
    changes records and appends to the audit log, and cannot edit or delete an audit entry."""
    from aupctl.state import State

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    server, school = _sql_blocks("The shared database")[:2]
    pw = {"OWNER-PASSWORD": "owner-Pw-1", "DAILY-PASSWORD": "daily-Pw-2"}
    for old, new in pw.items():
        server = server.replace(old, new)
    conn = pg_cluster.admin("postgres")
    try:
        conn.execute("DROP DATABASE IF EXISTS aupctl_roles")
        for role in ("aupctl_daily", "aupctl_owner"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        # the doc's names, made unique on this shared cluster (its superuser is already called aupctl)
        server = server.replace("DATABASE aupctl", "DATABASE aupctl_roles").replace("TO aupctl;", "TO aupctl_daily;")
        server = server.replace("CREATE ROLE aupctl LOGIN", "CREATE ROLE aupctl_daily LOGIN")
        for stmt in [s.strip() for s in server.split(";\n") if s.strip()]:
            if stmt.startswith("\\c"):
                conn.close()
                conn = pg_cluster.admin("aupctl_roles")
                stmt = stmt.split("\n", 1)[1].strip() if "\n" in stmt else ""
            if stmt:
                conn.execute(stmt.rstrip(";"))
        base = f"postgresql://{{}}@127.0.0.1:{pg_cluster.port}/aupctl_roles"
        monkeypatch.setenv("AUPCTL_STATE_PASSWORD", pw["OWNER-PASSWORD"])
        owner = State(url=base.format("aupctl_owner"), namespace="oak", ca_file=str(pg_cluster.ca_file))
        owner.audit("made", "oak")
        owner.close()
        for stmt in [s.strip() for s in school.split(";\n") if s.strip()]:
            conn.execute(stmt.rstrip(";").replace("FROM aupctl", "FROM aupctl_daily"))
        monkeypatch.setenv("AUPCTL_STATE_PASSWORD", pw["DAILY-PASSWORD"])
        daily = State(url=base.format("aupctl_daily"), namespace="oak", ca_file=str(pg_cluster.ca_file))
        approvals.record(daily, username="alice", system="sims", approver="head")
        tasks.close_task(daily, tasks.open_task(daily, kind="grant", text="x"), note="done")
        daily.try_lease("bulk-changes", "test")
        daily.release_lease("bulk-changes")
        daily.audit("access-grant", "alice")
        for sql in ("UPDATE audit SET target = 'x'", "DELETE FROM audit", "DELETE FROM audit_keying"):
            with pytest.raises(sqlite3.DatabaseError, match="permission denied"):
                daily.execute(sql)
        assert daily.verify_audit() == (2, None)
        daily.close()
    finally:
        conn.close()
        with pg_cluster.admin("postgres") as c:
            c.execute("DROP DATABASE IF EXISTS aupctl_roles WITH (FORCE)")
            c.execute("DROP ROLE IF EXISTS aupctl_daily")
            c.execute("DROP ROLE IF EXISTS aupctl_owner")


def test_an_older_store_is_migrated_in_place_and_its_chain_still_verifies(store, monkeypatch) -> None:
    import aupctl.state as state_mod

    monkeypatch.setattr(state_mod, "MIGRATIONS", MIGRATIONS[:3])  # a store from before the journal and leases
    st = store.open()
    assert st.schema_version() == 3
    for i in range(3):
        st.audit("grant", f"user{i}")
    st.close()
    monkeypatch.setattr(state_mod, "MIGRATIONS", MIGRATIONS)
    st = store.open()
    assert st.schema_version() == len(MIGRATIONS) and expected_tables() <= st.tables()
    st.audit("grant", "user3")
    assert st.try_lease("bulk-changes", "after the upgrade") is None  # the leases table came with migration 4
    assert st.verify_audit() == (4, None)
    st.close()


# What aupctl/pgstore.py does not translate (docs/trust.md, last paragraph): a migration from 6 on must not
# use it, or the PostgreSQL store breaks where SQLite's works.
SQLITE_ONLY = ("COLLATE NOCASE", "CREATE TRIGGER", "strftime(", "julianday(", "randomblob(", "AUTOINCREMENT",
               "INSERT OR ", "WITHOUT ROWID", "PRAGMA")  # fmt: skip


def test_new_migrations_are_portable() -> None:
    for number, text in enumerate(MIGRATIONS, 1):
        script = "\n".join(line.split("--", 1)[0] for line in text.splitlines()).upper()
        found = [word for word in SQLITE_ONLY if word.upper() in script]
        if number <= 5:  # shipped before the PostgreSQL store: what they use is translated
            assert number in (1, 3) or not found, number
            continue
        assert not found, f"migration {number} uses {found}: write it in portable SQL (docs/trust.md)"


def test_unreachable_refused_and_unsafe_servers_are_clear_messages(pg_cluster, monkeypatch, tmp_path: Path) -> None:
    """Exit 3 for a server that is down, a wrong password or a certificate not from ca_file; exit 2 for a
    password in the URL or a URL without TLS settings. Never a traceback."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    url = pg_cluster.url

    def run_with(state: str, password: str | None) -> tuple[int, str]:
        cfg = tmp_path / "aupctl.toml"
        cfg.write_text(CONFIG + state)
        if password is None:
            monkeypatch.delenv("AUPCTL_STATE_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("AUPCTL_STATE_PASSWORD", password)
        code, out, err = run_main("state", "verify", config=cfg)
        assert "Traceback" not in err
        return code, err

    ca = f'ca_file = "{pg_cluster.ca_file}"\n'
    code, err = run_with(f'url = "{url}"\n' + ca, "wrong-password")
    assert code == 3 and "refused aupctl's login" in err and "AUPCTL_STATE_PASSWORD" in err, err
    code, err = run_with(f'url = "{url}"\n' + ca, None)
    assert code == 3 and "refused aupctl's login" in err, err
    down = url.replace(f":{pg_cluster.port}/", ":1/")
    code, err = run_with(f'url = "{down}"\n' + ca, pg_cluster.password)
    assert code == 3 and "cannot reach the state store server postgresql://aupctl@127.0.0.1:1/aupctl" in err, err
    other_ca = tmp_path / "other-ca.pem"
    from aupctl.sandbox.tls import _make_tls

    (tmp_path / "other").mkdir()
    _make_tls(tmp_path / "other", "127.0.0.1")
    other_ca.write_bytes((tmp_path / "other" / "ca.pem").read_bytes())
    code, err = run_with(f'url = "{url}"\nca_file = "{other_ca}"\n', pg_cluster.password)
    assert code == 3 and "over TLS" in err, err
    with_pw = url.replace("aupctl@", "aupctl:s3cret@")
    code, err = run_with(f'url = "{with_pw}"\n' + ca, pg_cluster.password)
    assert code == 2 and "state.url holds a password" in err and "s3cret" not in err, err
    code, err = run_with(f'url = "{url}"\n', pg_cluster.password)
    assert code == 2 and "state.url needs state.ca_file" in err, err
    code, err = run_with(f'url = "{url}"\n' + ca, pg_cluster.password)
    assert code == 0, err


def test_backup_of_either_backend_verifies_and_a_broken_log_is_kept_as_it_is(store, tmp_path: Path) -> None:
    cfg = _config(store, tmp_path)
    from aupctl.config import load

    st = auditlog.attach(store.open(), load(str(cfg)))
    for i in range(4):
        st.audit("access-grant", f"user{i}")
    tasks.open_task(st, kind="grant", text="Zoë's access")
    st.close()
    code, out, err = run_main("state", "backup", str(tmp_path / "good.db"), config=cfg)
    assert code == 0 and "4 entries verified in the copy" in err, err
    code, out, err = run_main("--format", "json", "state", "verify", str(tmp_path / "good.db"), config=cfg)
    assert code == 0 and '"entries": 4' in out, out + err
    copy = __import__("aupctl.state", fromlist=["State"]).State(tmp_path / "good.db")
    assert copy.query("SELECT text FROM tasks")[0]["text"] == "Zoë's access"
    copy.close()
    store.admin("UPDATE audit SET actor = 'someone' WHERE id = 2")
    code, out, err = run_main("state", "backup", str(tmp_path / "bad.db"), config=cfg)
    assert code == 1 and "BROKEN at entry 2" in err and (tmp_path / "bad.db").exists(), err
    code, out, err = run_main("state", "verify", str(tmp_path / "bad.db"), config=cfg)
    assert code == 1 and "BROKEN at entry 2" in err, err


def test_a_trust_keeps_each_schools_records_apart_on_either_backend(store, tmp_path: Path) -> None:
    """[schools.KEY] on one [state]: a file per school on SQLite, a schema per school on PostgreSQL (a key's
    - becomes _); a record and an audit entry made for one school are not seen from the other."""
    from aupctl.config import load
    from aupctl.schools import store_for

    cfg_path = _config(store, tmp_path)
    cfg_path.write_text(cfg_path.read_text() + '\n[schools.st-marys]\nname = "St Mary\'s"\n\n[schools.oak]\n')
    marys, oak = (load(str(cfg_path), school=k) for k in ("st-marys", "oak"))
    a = store_for(marys)
    approvals.record(a, username="jdoe", system="sims", approver="Head")
    a.audit("access-grant", "jdoe", {"system": "sims"})
    a.close()
    b = store_for(oak)
    try:
        assert approvals.live(b) == [] and list(b.audit_entries()) == []
        if store.backend == "postgresql":
            assert b.namespace == "oak"
    finally:
        b.close()
    a = store_for(marys)
    try:
        assert [r["username"] for r in approvals.live(a)] == ["jdoe"]
        (entry,) = a.audit_entries()
        assert entry.details["school"] == "st-marys"
        assert a.verify_audit()[1] is None
        if store.backend == "postgresql":
            assert a.namespace == "st_marys"
    finally:
        a.close()
