"""Hostile laptops over real SSH (issue 11): one whose probe sees a hostname full of terminal escapes, one
that floods its output without end; a re-imaged laptop is never re-pinned without the fingerprint read at
it; and a laptop is never assigned to a leaver."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ssh_fixtures
from cli_helpers import payload
from laptop_env import Env, run_cli

from aupctl import text
from aupctl.config import load
from aupctl.laptops import inventory
from aupctl.laptops.ssh import MAX_OUTPUT
from aupctl.sandbox import school as hb
from aupctl.state import State

HOSTILE = "vm\x1b]0;PWNED\x07\x1b[2J\u202e"


def enrol(env: Env, tag: str, sshd: ssh_fixtures.Sshd, *extra: str) -> None:
    res = env.run(
        "laptop", "enrol", "127.0.0.1", "--port", str(sshd.port), "--asset-tag", tag, "--os", "linux", "--yes", *extra
    )
    assert res.exit_code == 0, res.output


def no_raw_unsafe(output: str) -> None:
    bad = [hex(ord(c)) for c in output if text.unsafe(c) and c != "\n"]
    assert not bad, f"raw unsafe characters reached the terminal: {bad}"


@pytest.fixture
def hostile_sshd(tmp_path_factory: pytest.TempPathFactory, sshd: ssh_fixtures.Sshd) -> Iterator[ssh_fixtures.Sshd]:
    """A laptop whose `hostname` prints terminal escapes: the real Linux probe runs, with a fake hostname first
    on its PATH."""
    fake = Path(tempfile.mkdtemp(prefix="aupctl-fakebin-"))
    fake.chmod(0o755)
    (fake / "hostname").write_text("#!/bin/sh\nprintf 'vm\\033]0;PWNED\\007\\033[2J\\342\\200\\256\\n'\n")
    (fake / "hostname").chmod(0o755)
    server = ssh_fixtures.Sshd(
        tmp_path_factory.mktemp("hostile-sshd"),
        client_key=sshd.client_key,
        force_command=f"env PATH={fake}:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -s",
    ).start()
    try:
        yield server
    finally:
        server.cleanup()
        for f in fake.iterdir():
            f.unlink()
        fake.rmdir()


def test_hostile_hostname_is_shown_escaped(env: Env, hostile_sshd: ssh_fixtures.Sshd) -> None:
    enrol(env, "ESC-1", hostile_sshd, "--fingerprint", hostile_sshd.fingerprint)
    res = env.run("laptop", "checkin", "ESC-1")
    assert res.exit_code == 1, res.output  # this machine's findings
    no_raw_unsafe(res.output)
    res = env.run("laptop", "show", "ESC-1")
    assert res.exit_code == 0, res.output
    no_raw_unsafe(res.output)
    assert "vm\\x1b]0;PWNED\\x07\\x1b[2J\\u202e" in res.output
    # JSON keeps the exact value for programs, in escapes a terminal does not obey
    res = env.run("--format", "json", "laptop", "show", "ESC-1")
    no_raw_unsafe(res.output)
    assert payload(res.output)["facts"]["hostname"] == HOSTILE
    res = env.run("--format", "csv", "laptop", "show", "ESC-1")
    no_raw_unsafe(res.output.replace("\r", ""))


@pytest.fixture
def flooding_sshd(tmp_path_factory: pytest.TempPathFactory, sshd: ssh_fixtures.Sshd) -> Iterator[ssh_fixtures.Sshd]:
    server = ssh_fixtures.Sshd(
        tmp_path_factory.mktemp("flood-sshd"), client_key=sshd.client_key, force_command="exec yes " + "x" * 1000
    ).start()
    try:
        yield server
    finally:
        server.cleanup()


def test_flooding_laptop_is_a_failed_probe_in_bounded_memory(env: Env, flooding_sshd: ssh_fixtures.Sshd) -> None:
    enrol(env, "FLOOD-1", flooding_sshd, "--fingerprint", flooding_sshd.fingerprint)
    # the real CLI in its own process, to measure its peak memory
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aupctl.commands", "--format", "json", "laptop", "audit"],
        env={**os.environ, "AUPCTL_CONFIG": str(env.config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=300)
    took = time.monotonic() - started
    assert proc.returncode == 1, err.decode()
    report = payload(out)
    assert [(r["tag"], r["status"]) for r in report["laptops"]] == [("FLOOD-1", "probe-failed")]
    found = {f["check"]: f for f in report["findings"] if f["subject"] == "FLOOD-1"}
    assert found["probe-failed"]["severity"] == "high", found
    assert f"more than {MAX_OUTPUT >> 20} MiB" in found["probe-failed"]["detail"], found
    assert "unreachable" not in found and report["unreachable"] == []
    print(f"flood of {MAX_OUTPUT >> 20} MiB cut off in {took:.1f} s")

    # memory: the check-in in this process, peak traced allocation stays near the limit
    import tracemalloc

    from aupctl.laptops.probe import probe
    from aupctl.laptops.ssh import Connector

    cfg = load(str(env.config))
    device = inventory.get(State(cfg.state.path), "FLOOD-1")
    tracemalloc.start()
    try:
        outcome = probe(Connector(cfg.laptops), device, cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.kind == "probe-failed" and outcome.findings[0].severity == "high"
    assert peak < MAX_OUTPUT * 1.25, f"peak {peak >> 20} MiB for a {MAX_OUTPUT >> 20} MiB limit"
    print(f"peak traced memory {peak >> 20} MiB")


def test_replace_key_needs_the_new_fingerprint(env: Env, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = ssh_fixtures.Sshd(tmp_path_factory.mktemp("reimaged"), client_key=env.sshd.client_key)
    other.start()
    try:
        old = other.fingerprint
        enrol(env, "RE-1", other)
        new = other.new_host_key()
        # --replace-key --yes without --fingerprint: refused before connecting, nothing re-pinned
        res = env.run(
            "laptop", "enrol", "127.0.0.1", "--port", str(other.port), "--asset-tag", "RE-1", "--replace-key", "--yes"
        )
        assert res.exit_code == 2, res.output
        assert "--replace-key needs --fingerprint" in res.output
        assert inventory.get(env.state(), "RE-1").fingerprint == old
        # a fingerprint that is not the key it offers: refused, nothing re-pinned
        wrong = "SHA256:" + "B" * 43
        res = env.run(
            "laptop",
            "enrol",
            "127.0.0.1",
            "--port",
            str(other.port),
            "--asset-tag",
            "RE-1",
            "--replace-key",
            "--fingerprint",
            wrong,
            "--yes",
        )
        assert res.exit_code == 3 and new in res.output, res.output
        assert inventory.get(env.state(), "RE-1").fingerprint == old
        enrol(env, "RE-1", other, "--replace-key", "--fingerprint", new)
        assert inventory.get(env.state(), "RE-1").fingerprint == new
    finally:
        other.cleanup()


# -- a laptop is never assigned to a leaver (the OpenLDAP sandbox; no SSH needed) --

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIE1ww1WyMDlwZhHrKSHlrmY9+dmnYCSjL8pW7GY0iG5G"


def test_no_laptop_for_a_leaver(openldap_sandbox) -> None:
    info = openldap_sandbox
    cfg = load(str(info.config_path))
    state = State(cfg.state.path)
    inventory.add(
        state,
        cfg,
        tag="LV-1",
        host="lv-1.test",
        port=22,
        os_name="linux",
        key_type="ssh-ed25519",
        key_b64=KEY,
        fp="SHA256:" + "D" * 43,
    )
    school = hb.school()
    in_leavers_ou = next(p for p in school.leavers)
    disabled = next(p for p in school.people if p.disabled and not p.leaver)
    staying = [p for p in school.staff if not p.disabled]
    scheduled = staying[5]
    res = run_cli(info.config_path, "leaver", "withdraw", scheduled.username, "--on", "2099-07-22", "--yes")
    assert res.exit_code == 0, res.output
    for person, why in [
        (in_leavers_ou, "a leaver"),
        (disabled, "disabled"),
        (scheduled, "leaving on 2099-07-22"),
    ]:
        res = run_cli(info.config_path, "laptop", "assign", "LV-1", person.username, "--yes")
        assert res.exit_code == 2, (person.username, res.output)
        assert why in res.output and person.username in res.output, res.output
    # the same, when the directory cannot be asked: the leavers table still says no
    text_ = info.config_path.read_text()
    url = next(x for x in text_.splitlines() if x.startswith("url"))
    dead = info.config_path.parent / "variant-dead-laptops.toml"
    dead.write_text(text_.replace(url, 'url = "ldaps://127.0.0.1:9"', 1))
    res = run_cli(dead, "laptop", "assign", "LV-1", scheduled.username.upper(), "--yes")
    assert res.exit_code == 2 and "leaving on 2099-07-22" in res.output, res.output
    assert inventory.get(State(cfg.state.path), "LV-1").assigned_to is None
    # someone staying still gets it
    res = run_cli(info.config_path, "laptop", "assign", "LV-1", staying[6].username, "--yes")
    assert res.exit_code == 0, res.output
