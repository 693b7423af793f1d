"""Laptops over real SSH: sshd on loopback is the laptop, and the Linux probe runs for real on this machine."""

from __future__ import annotations

import time

import pytest
import ssh_fixtures
from cli_helpers import payload
from laptop_env import Env

pytestmark = pytest.mark.ssh


def enrol(env: Env, tag: str, port: int | None = None, *extra: str) -> None:
    res = env.run(
        "laptop", "enrol", "127.0.0.1", "--port", str(port or env.sshd.port), "--asset-tag", tag, "--yes", *extra
    )
    assert res.exit_code == 0, res.output


def add_dead_laptops(env: Env, *, like: str, silent_port: int, suffix: str, os_name: str) -> None:
    """SILENT-<suffix> (accepts TCP, never answers) and REFUSES-<suffix> (closed port), pinned to the key
    of the enrolled laptop `like`, so only the network fails."""
    from aupctl.config import load
    from aupctl.laptops import inventory

    state = env.state()
    cfg = load(str(env.config))
    good = inventory.get(state, like)
    for tag, port in ((f"SILENT-{suffix}", silent_port), (f"REFUSES-{suffix}", ssh_fixtures.closed_port())):
        inventory.add(
            state,
            cfg,
            tag=tag,
            host="127.0.0.1",
            port=port,
            os_name=os_name,
            key_type=good.key_type,
            key_b64=good.key_b64,
            fp=good.fingerprint,
        )


def test_enrol_checkin_audit_show_list(env: Env) -> None:
    fp = env.sshd.fingerprint
    res = env.run("laptop", "enrol", "127.0.0.1", "--port", str(env.sshd.port), "--asset-tag", "HB-0042", "--yes")
    assert res.exit_code == 0, res.output
    assert fp in res.output  # shown before it is pinned
    assert "(linux)" in res.output  # found with uname -s
    known = (env.root / "known_hosts").read_text()
    assert known.startswith(f"[127.0.0.1]:{env.sshd.port} ssh-ed25519 ")

    res = env.run("--format", "json", "laptop", "list")
    rows = payload(res.output)
    assert [(r["tag"], r["os"], r["fingerprint"], r["overdue"]) for r in rows] == [("HB-0042", "linux", fp, False)]
    assert rows[0]["last_seen"] is None

    res = env.run("laptop", "checkin", "HB-0042")
    # This Debian machine has pending updates, no antivirus and no LUKS: findings, exit 1.
    assert res.exit_code == 1, res.output
    assert "antivirus-missing" in res.output and "6.7" in res.output

    res = env.run("--format", "json", "laptop", "show", "HB-0042")
    data = payload(res.output)
    assert data["facts"]["hostname"] == __import__("socket").gethostname()
    assert data["facts"]["os"].startswith(open("/etc/os-release").read().split('NAME="')[1].split('"')[0])
    assert data["facts"]["software"] > 10
    assert any(s["name"] == "dpkg" for s in data["software"])
    assert data["laptop"]["next_due"] > data["laptop"]["last_seen"][:10]
    assert [h["event"] for h in data["history"]][:2] == ["checkin", "enrol"]
    checks = {f["check"] for f in data["findings"]}
    assert "software-not-approved" in checks  # approved list is bash, coreutils, openssh-*
    assert not any(s["name"] in ("bash", "coreutils") for s in data["unapproved_software"])

    res = env.run("--format", "json", "laptop", "audit")
    assert res.exit_code == 1, res.output
    report = payload(res.output)
    assert [(r["tag"], r["status"]) for r in report["laptops"]] == [("HB-0042", "ok")]
    assert report["unreachable"] == []

    res = env.run("laptop", "show", "HB-0042")  # the table form
    assert res.exit_code == 0 and "HB-0042" in res.output and "next due" in res.output

    # every table form fits 120 columns (issue 13: `laptop show` was 367 wide); stdout alone measured
    from click.testing import CliRunner

    from aupctl.commands import cli

    for args in (("laptop", "show", "HB-0042"), ("laptop", "list"), ("laptop", "audit", "--no-probe")):
        shown = CliRunner().invoke(cli, list(args), env={"AUPCTL_CONFIG": str(env.config), "COLUMNS": "120"})
        assert shown.exit_code in (0, 1) and shown.stdout.strip(), shown.output
        widest = max(len(line) for line in shown.stdout.splitlines())
        assert widest <= 120, f"{' '.join(args)}: {widest} columns:\n{shown.stdout}"

    # --no-probe reports from the records alone: same findings as the live audit
    res = env.run("--format", "json", "laptop", "audit", "--no-probe")
    assert {f["check"] for f in payload(res.output)["findings"]} == {f["check"] for f in report["findings"]}

    # the audit log has the enrolment and the check-in
    actions = [r["action"] for r in env.state().query("SELECT action FROM audit ORDER BY id")]
    assert actions[:2] == ["laptop-enrol", "laptop-checkin"]

    # enrolling the same laptop again changes nothing
    res = env.run("laptop", "enrol", "127.0.0.1", "--port", str(env.sshd.port), "--asset-tag", "HB-0042", "--yes")
    assert res.exit_code == 0 and "already enrolled" in res.output


def test_pinned_key_changed_is_refused(env: Env, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = ssh_fixtures.Sshd(tmp_path_factory.mktemp("swapped"), client_key=env.sshd.client_key)
    other.start()
    try:
        old = other.fingerprint
        enrol(env, "PIN-1", other.port)
        new = other.new_host_key()
        assert new != old
        res = env.run("laptop", "checkin", "PIN-1")
        assert res.exit_code == 3, res.output
        assert old in res.output and new in res.output and "refused" in res.output
        assert "Traceback" not in res.output
        assert env.state().query("SELECT count(*) AS n FROM checkins")[0]["n"] == 0  # nothing recorded
        res = env.run("--format", "json", "laptop", "audit")
        found = payload(res.output)["findings"]
        assert any(f["check"] == "host-key-refused" and new in f["detail"] for f in found)
        # re-enrolling without --replace-key is refused too, naming both keys
        res = env.run("laptop", "enrol", "127.0.0.1", "--port", str(other.port), "--asset-tag", "PIN-1", "--yes")
        assert res.exit_code == 3 and old in res.output and new in res.output
        # after re-imaging, the technician re-pins with the fingerprint read at the laptop
        enrol(env, "PIN-1", other.port, "--replace-key", "--fingerprint", new)
        assert env.run("laptop", "checkin", "PIN-1").exit_code in (0, 1)
    finally:
        other.cleanup()


def test_enrol_with_wrong_fingerprint_pins_nothing(env: Env) -> None:
    wrong = "SHA256:" + "A" * 43
    res = env.run(
        "laptop",
        "enrol",
        "127.0.0.1",
        "--port",
        str(env.sshd.port),
        "--asset-tag",
        "FP-1",
        "--fingerprint",
        wrong,
        "--yes",
    )
    assert res.exit_code == 3, res.output
    assert wrong in res.output and env.sshd.fingerprint in res.output
    assert env.state().query("SELECT count(*) AS n FROM devices")[0]["n"] == 0
    res = env.run(
        "laptop",
        "enrol",
        "127.0.0.1",
        "--port",
        str(env.sshd.port),
        "--asset-tag",
        "FP-1",
        "--fingerprint",
        "SHA256:short",
        "--yes",
    )
    assert res.exit_code == 2 and "--fingerprint" in res.output
    enrol(env, "FP-1", None, "--fingerprint", env.sshd.fingerprint, "--os", "linux")


def test_audit_survives_silent_refusing_and_garbage_laptops(env: Env) -> None:
    from aupctl.laptops import inventory

    enrol(env, "GOOD-1")
    enrol(env, "JUNK-1", env.sshd.garbage_port, "--os", "linux")
    silent = ssh_fixtures.SilentServer()
    try:
        state = env.state()
        add_dead_laptops(env, like="GOOD-1", silent_port=silent.port, suffix="1", os_name="windows")
        inventory.set_assigned(state, "SILENT-1", "o'brien")
        started = time.monotonic()
        res = env.run("--format", "json", "laptop", "audit")
        took = time.monotonic() - started
    finally:
        silent.close()
    assert res.exit_code == 1, res.output
    report = payload(res.output)
    status = {r["tag"]: r["status"] for r in report["laptops"]}
    assert status == {"GOOD-1": "ok", "JUNK-1": "probe-failed", "REFUSES-1": "unreachable", "SILENT-1": "unreachable"}
    # in parallel, within the 2 s connect timeout (plus the real probe of this machine)
    assert took < 15, took
    by = {(f["subject"], f["check"]): f for f in report["findings"]}
    assert by[("JUNK-1", "probe-failed")]["detail"].startswith("probe failed: ")
    assert "no SSH banner within 2 s" in by[("SILENT-1", "unreachable")]["detail"]
    assert "o'brien" in by[("SILENT-1", "unreachable")]["detail"]
    assert "refused" in by[("REFUSES-1", "unreachable")]["detail"]
    unreachable = {r["tag"]: r for r in report["unreachable"]}
    assert set(unreachable) == {"SILENT-1", "REFUSES-1"} and unreachable["SILENT-1"]["assigned_to"] == "o'brien"
    # the table form lists them on stderr with who has them; no traceback anywhere
    res = env.run("laptop", "audit")
    assert "could not be reached" in res.output and "with o'brien, last seen never" in res.output
    assert "Traceback" not in res.output
    # the good laptop was seen; the others keep their last-seen
    assert inventory.get(env.state(), "GOOD-1").last_seen and not inventory.get(env.state(), "SILENT-1").last_seen


def test_checkin_update_streams_and_records_both(env: Env) -> None:
    env.write(
        update_commands={"linux": ["echo fetching lists; echo upgraded 0 packages", "echo signatures up to date >&2"]}
    )
    enrol(env, "UPD-1")
    # updating runs commands on the laptop: with no one to ask and no --yes it is refused before connecting
    res = env.run("laptop", "checkin", "UPD-1", "--update")
    assert res.exit_code == 2 and "--yes" in res.output, res.output
    assert not env.state().query("SELECT kind FROM checkins WHERE tag = 'UPD-1'")
    res = env.run("laptop", "checkin", "UPD-1", "--update", "--yes")
    assert res.exit_code == 1, res.output  # findings remain on this machine
    assert "  | fetching lists" in res.output and "  | upgraded 0 packages" in res.output
    assert "  | signatures up to date" in res.output
    kinds = [r["kind"] for r in env.state().query("SELECT kind FROM checkins WHERE tag = 'UPD-1' ORDER BY id")]
    assert kinds == ["checkin", "update"]
    actions = [r["action"] for r in env.state().query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("laptop-update") == 2

    res = env.run("laptop", "checkin", "UPD-1", "--update", "--dry-run")
    assert res.exit_code == 0 and "echo fetching lists" in res.output and "nothing was run" in res.output

    # a failing update command: exit 4, what ran is named, the first probe is still recorded
    env.write(update_commands={"linux": ["echo first", "echo broken >&2; exit 7", "echo never"]})
    res = env.run("laptop", "checkin", "UPD-1", "--update", "--yes")
    assert res.exit_code == 4, res.output
    assert "status 7" in res.output and "broken" in res.output and "never" in res.output
    kinds = [r["kind"] for r in env.state().query("SELECT kind FROM checkins WHERE tag = 'UPD-1' ORDER BY id")]
    assert kinds == ["checkin", "update", "checkin"]

    env.write(update_commands={"windows": ["Update-MpSignature"]})
    res = env.run("laptop", "checkin", "UPD-1", "--update")
    assert res.exit_code == 2 and "no update commands configured for linux" in res.output


def test_bad_input_changes_nothing(env: Env) -> None:
    for args, needle in [
        (["laptop", "enrol", "127.0.0.1", "--asset-tag", "bad tag", "--yes"], "asset tag"),
        (["laptop", "enrol", "root@127.0.0.1", "--asset-tag", "T1", "--yes"], "HOST"),
        (["laptop", "enrol", "127.0.0.1", "--asset-tag", "T1", "--port", "70000", "--yes"], "--port"),
        (["laptop", "checkin", "NOPE"], "no laptop with asset tag 'NOPE'"),
        (["laptop", "show", "NOPE"], "no laptop"),
        (["laptop", "assign", "NOPE", "someone", "--yes"], "no laptop"),
        (["laptop", "checkin", "NOPE", "--dry-run"], "--dry-run only applies with --update"),
        (["laptop", "return", "NOPE", "--yes"], "no laptop"),
        (["laptop", "retire", "NOPE", "--yes"], "no laptop"),
        (["laptop", "audit", "--parallel", "0"], "--parallel"),
        (["laptop", "enrol", "127.0.0.1", "--asset-tag", "T1", "--os", "beos", "--yes"], "--os"),
    ]:
        res = env.run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output, (args, res.output)
    assert env.state().query("SELECT count(*) AS n FROM devices")[0]["n"] == 0
    assert env.state().query("SELECT count(*) AS n FROM audit")[0]["n"] == 0
    # unreachable host at enrolment: exit 3, nothing pinned
    res = env.run(
        "laptop", "enrol", "127.0.0.1", "--port", str(ssh_fixtures.closed_port()), "--asset-tag", "T1", "--yes"
    )
    assert res.exit_code == 3 and "connection refused" in res.output
    # a changing command with no terminal and no --yes is refused
    res = env.run("laptop", "enrol", "127.0.0.1", "--port", str(env.sshd.port), "--asset-tag", "T1")
    assert res.exit_code == 2 and "no terminal" in res.output
    assert env.state().query("SELECT count(*) AS n FROM devices")[0]["n"] == 0


def test_assign_return_retire_without_a_reachable_directory(env: Env) -> None:
    enrol(env, "AS-1")
    # the directory in this config refuses connections: the assignment goes ahead, with a note
    res = env.run("laptop", "assign", "AS-1", "zoë.smith-jones", "--yes")
    assert res.exit_code == 0, res.output
    assert "was not checked" in res.output
    res = env.run("--format", "json", "laptop", "list", "--user", "ZOË.SMITH-JONES")
    assert [r["assigned_to"] for r in payload(res.output)] == ["zoë.smith-jones"]
    assert env.run("laptop", "return", "AS-1", "--yes").exit_code == 0
    res = env.run("--format", "json", "laptop", "list", "--user", "zoë.smith-jones")
    assert payload(res.output) == []
    res = env.run("laptop", "retire", "AS-1", "--yes")
    assert res.exit_code == 0
    assert "127.0.0.1" not in (env.root / "known_hosts").read_text()  # unpinned
    assert payload(env.run("--format", "json", "laptop", "list").output) == []
    assert [r["status"] for r in payload(env.run("--format", "json", "laptop", "list", "--all").output)] == ["retired"]
    res = env.run("laptop", "checkin", "AS-1")
    assert res.exit_code == 2 and "retired" in res.output


def test_passphrase_protected_key(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ssh_fixtures.keygen(env.root / "locked_key", passphrase="correct horse battery staple")
    # authorise this key too
    (env.sshd.keys_dir / env.sshd.user).write_text(
        (env.sshd.keys_dir / env.sshd.user).read_text() + (env.root / "locked_key.pub").read_text()
    )
    env.write(ssh_key=str(key))
    monkeypatch.delenv("AUPCTL_SSH_PASSPHRASE", raising=False)
    res = env.run("laptop", "enrol", "127.0.0.1", "--port", str(env.sshd.port), "--asset-tag", "PP-1", "--yes")
    assert res.exit_code == 2 and "passphrase" in res.output and "AUPCTL_SSH_PASSPHRASE" in res.output
    monkeypatch.setenv("AUPCTL_SSH_PASSPHRASE", "correct horse battery staple")
    enrol(env, "PP-1")
    monkeypatch.setenv("AUPCTL_SSH_PASSPHRASE", "wrong")
    res = env.run("laptop", "audit")
    assert res.exit_code == 2 and "wrong passphrase" in res.output
    assert "correct horse" not in res.output


def test_update_interrupted_or_connection_lost_then_rerun_finishes(env: Env) -> None:
    from aupctl.config import load
    from aupctl.errors import PartialError
    from aupctl.laptops.checkin import checkin
    from aupctl.laptops.ssh import Connector
    from aupctl.plan import apply

    enrol(env, "CUT-1")
    # the laptop drops the connection during the second update command (its session is killed)
    env.write(update_commands={"linux": ["echo one", "echo going; kill -9 $PPID; sleep 5", "echo three"]})
    res = env.run("laptop", "checkin", "CUT-1", "--update", "--yes")
    assert res.exit_code == 4, res.output
    assert "step 2 of 3" in res.output and "done: 1 change(s)" in res.output and "Traceback" not in res.output

    # Ctrl-C while an update streams its output: stopped, reported, journalled
    env.write(update_commands={"linux": ["echo first", "echo second"]})
    cfg = load(str(env.config))
    state = env.state()

    def ctrl_c(line: str) -> None:
        if line == "second":
            raise KeyboardInterrupt

    with pytest.raises(PartialError, match="interrupted"):
        checkin(
            cfg,
            state,
            Connector(cfg.laptops),
            "CUT-1",
            update=True,
            on_output=ctrl_c,
            apply_plan=lambda p: apply(p, state),
        )
    assert [r["status"] for r in state.query("SELECT status FROM journal ORDER BY id")][-2:] == ["done", "interrupted"]

    # the same command again finishes the job and records the result
    res = env.run("laptop", "checkin", "CUT-1", "--update", "--yes")
    assert res.exit_code == 1, res.output
    assert (
        env.state().query("SELECT kind FROM checkins WHERE tag = 'CUT-1' ORDER BY id DESC LIMIT 1")[0]["kind"]
        == "update"
    )


def test_banner_errors_from_a_busy_sshd_are_retried(env: Env, tmp_path_factory: pytest.TempPathFactory) -> None:
    """sshd drops connections beyond MaxStartups with no banner; the connector backs off and tries again."""
    from concurrent.futures import ThreadPoolExecutor

    from aupctl.config import load
    from aupctl.laptops.ssh import Connector, Pin

    busy = ssh_fixtures.Sshd(tmp_path_factory.mktemp("busy"), client_key=env.sshd.client_key, max_startups="3:100:3")
    busy.start()
    try:
        connector = Connector(load(str(env.config)).laptops)
        with connector.connect("127.0.0.1", busy.port, None) as first:
            pin: Pin = first.pin

        def one(_: int) -> str:
            with connector.connect("127.0.0.1", busy.port, pin) as s:
                return s.run("echo ok", timeout=10).stdout.strip()

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(one, range(12))) == ["ok"] * 12
        log = (busy.root / "sshd.log").read_text()
        assert "beginning MaxStartups throttling" in log or "drop connection" in log  # it did drop some
    finally:
        busy.cleanup()


def test_ctrl_c_in_an_audit_stops_at_once_and_keeps_what_was_recorded(env: Env) -> None:
    from aupctl.config import load
    from aupctl.laptops import audit
    from aupctl.laptops.ssh import Connector

    env.write(connect_timeout=30)  # without close_all() the silent laptop would hold the audit for 30 s
    enrol(env, "RUN-1")
    silent = ssh_fixtures.SilentServer()
    try:
        cfg = load(str(env.config))
        state = env.state()
        add_dead_laptops(env, like="RUN-1", silent_port=silent.port, suffix="2", os_name="linux")

        def interrupt(_: object) -> None:
            raise KeyboardInterrupt

        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            audit.run(cfg, state, Connector(cfg.laptops), progress=interrupt)
        assert time.monotonic() - started < 10
    finally:
        silent.close()
    recorded = [r["tag"] for r in env.state().query("SELECT tag FROM checkins")]
    assert recorded == ["REFUSES-2"]  # the first to finish was recorded before the interrupt; nothing else
