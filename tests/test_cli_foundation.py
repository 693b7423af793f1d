"""The foundation commands through the CLI: help, doctor, config check, staff list/show, log, log verify."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import payload
from click.testing import CliRunner

from aupctl.commands import SUBCOMMANDS, cli


def run(*args: str, config: Path | None = None, input: str | None = None):
    env = {"AUPCTL_CONFIG": str(config)} if config else {}
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def variant(sandbox, name: str, old: str, new: str) -> Path:
    """A copy of the sandbox config beside it (so its relative paths still resolve) with one edit."""
    text = sandbox.config_path.read_text()
    assert old in text, f"{old!r} not in the sandbox config"
    p = sandbox.config_path.parent / f"variant-{name}.toml"
    p.write_text(text.replace(old, new, 1))
    return p


def test_help_is_fast_and_lists_every_group() -> None:
    best = min(_timed([sys.executable, "-m", "aupctl.commands.__main__", "--help"]) for _ in range(3))
    assert best < 0.3, f"aupctl --help took {best:.2f} s"
    out = run("--help").output
    for name in SUBCOMMANDS:
        assert name in out


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


@pytest.mark.parametrize("group", sorted(SUBCOMMANDS))
def test_every_command_has_help(group: str) -> None:
    result = run(group, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_doctor_all_green(sandbox) -> None:
    result = run("--format", "json", "doctor", config=sandbox.config_path)
    rows = payload(result.stdout)
    assert result.exit_code == 0, rows
    assert {r["check"] for r in rows} >= {"config", "reach", "tls", "bind", "read access", "state store"}
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]


def test_doctor_against_a_stopped_server_exits_3_within_the_timeout(sandbox) -> None:
    text = sandbox.config_path.read_text()
    url = next(line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("url"))
    cfg = variant(sandbox, "dead", url, '"ldaps://127.0.0.1:9"')
    t0 = time.monotonic()
    result = run("doctor", config=cfg)
    assert time.monotonic() - t0 < 10
    assert result.exit_code == 3
    assert "ldaps://127.0.0.1:9" in result.output and "refused" in result.output


def test_doctor_wrong_password_exits_3_saying_the_bind_was_refused(sandbox, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AUPCTL_BIND_PASSWORD", "wrong-password")
    result = run("doctor", config=sandbox.config_path)
    assert result.exit_code == 3
    assert "refused the bind" in result.output


def test_config_typo_exits_2_naming_the_key(sandbox) -> None:
    cfg = variant(sandbox, "typo", "base_dn", "base_dm")
    for args in (["config", "check"], ["doctor"], ["staff", "list"]):
        result = run(*args, config=cfg)
        assert result.exit_code == 2, (args, result.output)
        assert "directory.base_dm" in result.output


def test_config_check_ok(sandbox) -> None:
    result = run("config", "check", config=sandbox.config_path)
    assert result.exit_code == 0 and "OK" in result.output


def test_no_config_at_all(tmp_path) -> None:
    result = run("staff", "list", config=tmp_path / "none.toml")
    assert result.exit_code == 2 and "no config file" in result.output


def test_staff_list_and_show(sandbox) -> None:
    result = run("--format", "json", "staff", "list", config=sandbox.config_path)
    assert result.exit_code == 0, result.output
    rows = payload(result.stdout)
    assert len(rows) > 80
    assert {"username", "name", "role", "email", "staff_code", "enabled", "dn"} <= set(rows[0])
    assert all(r["enabled"] for r in rows)
    everyone = payload(
        run("--format", "json", "staff", "list", "--include-disabled", config=sandbox.config_path).stdout
    )
    assert len(everyone) > len(rows)  # the sandbox has disabled accounts

    teachers = payload(run("--format", "json", "staff", "list", "--role", "teacher", config=sandbox.config_path).stdout)
    assert teachers and all(r["role"] == "teacher" for r in teachers)

    user = teachers[0]["username"]
    shown = run("--format", "json", "staff", "show", user, config=sandbox.config_path)
    info = payload(shown.stdout)
    assert info["username"] == user and info["role"] == "teacher" and "Teachers" in info["role_reason"]
    assert info["groups"]

    table = run("staff", "list", "--role", "teacher", config=sandbox.config_path)
    assert user in table.output
    csv_out = run("--format", "csv", "staff", "list", config=sandbox.config_path).stdout
    assert csv_out.splitlines()[0].startswith("username,")


def test_staff_bad_input(sandbox) -> None:
    result = run("staff", "show", "no-such-person", config=sandbox.config_path)
    assert result.exit_code == 2 and "no account 'no-such-person'" in result.output
    result = run("staff", "list", "--role", "astronaut", config=sandbox.config_path)
    assert result.exit_code == 2 and "unknown role 'astronaut'" in result.output
    assert run("--format", "yaml", "staff", "list").exit_code == 2


def test_log_and_verify(sandbox, tmp_path) -> None:
    from aupctl.config import load
    from aupctl.state import State

    st = State(load(str(sandbox.config_path)).state.path)
    st.audit("test-entry", "someone", {"why": "log test"})
    st.close()
    result = run("--format", "json", "log", "--user", "someone", config=sandbox.config_path)
    entries = payload(result.stdout)
    assert entries and entries[-1]["action"] == "test-entry" and entries[-1]["details"]["why"] == "log test"
    assert run("log", "--since", "2026-13-01", config=sandbox.config_path).exit_code == 2
    ok = run("log", "verify", config=sandbox.config_path)
    assert ok.exit_code == 0 and "intact" in ok.output


def test_log_verify_catches_an_entry_edited_with_the_sqlite3_shell(fresh_openldap) -> None:
    from aupctl.config import load
    from aupctl.state import State

    path = load(str(fresh_openldap.config_path)).state.path
    st = State(path)
    ids = [st.audit("grant", f"user{i}", {"system": "sims"}) for i in range(4)]
    st.close()
    edit = f"DROP TRIGGER audit_no_update; UPDATE audit SET details='{{}}' WHERE id={ids[2]};"
    subprocess.run(["sqlite3", path, edit], check=True)
    result = run("log", "verify", config=fresh_openldap.config_path)
    assert result.exit_code == 1
    assert f"BROKEN at entry {ids[2]}" in result.output
