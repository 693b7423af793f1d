"""`aupctl --quiet` on a real slapd (the sandbox school): silent when there is nothing to report or do,
everything shown (and the exit code unchanged) when there is: findings, changes made, errors."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aupctl.commands import cli
from aupctl.sandbox import school as hb

TODAY = dt.date.today()


def run(*args: str, env: dict[str, str]):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(scope="module")
def env(openldap_sandbox) -> dict[str, str]:
    return {"AUPCTL_CONFIG": str(openldap_sandbox.config_path)}


def test_run_due_with_nothing_due_prints_nothing(env) -> None:
    loud = run("leaver", "run-due", "--yes", env=env)
    assert loud.exit_code == 0, loud.output
    assert loud.stdout.strip() and "nothing to do" in loud.stdout  # what cron used to mail every day
    quiet = run("--quiet", "leaver", "run-due", "--yes", env=env)
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    short = run("-q", "leaver", "run-due", "--yes", env=env)
    assert (short.exit_code, short.stdout, short.stderr) == (0, "", "")


def test_the_real_process_prints_nothing(env) -> None:
    """Through the installed entry point with real pipes (not CliRunner's streams), as cron runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "aupctl.commands", "--quiet", "leaver", "run-due", "--yes"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    checkpoint = subprocess.run(
        [sys.executable, "-m", "aupctl.commands", "--quiet", "log", "checkpoint"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert (checkpoint.returncode, checkpoint.stdout, checkpoint.stderr) == (0, "", "")


def test_review_with_findings_still_prints_and_exits_1(env) -> None:
    loud = run("access", "review", env=env)
    quiet = run("--quiet", "access", "review", env=env)
    assert loud.exit_code == quiet.exit_code == 1
    assert quiet.stdout == loud.stdout and hb.PLANTED["disabled_with_access"] in quiet.stdout
    assert "finding(s)" in quiet.stderr
    as_json = run("--quiet", "--format", "json", "access", "review", env=env)
    assert as_json.exit_code == 1 and as_json.stdout.strip().startswith(("[", "{"))


def test_changes_made_are_shown(env, openldap_sandbox) -> None:
    """A run that does something prints what it did, --quiet or not: the cron mail is the record."""
    who = next(
        p.username
        for p in hb.school().staff
        if not p.leaver and not p.disabled and p.username not in set(hb.PLANTED.values()) and p.role == "teacher"
    )
    on = (TODAY + dt.timedelta(days=30)).isoformat()
    scheduled = run("--quiet", "leaver", "withdraw", who, "--on", on, "--reason", "resigned", "--yes", env=env)
    assert scheduled.exit_code == 0, scheduled.output
    assert who in scheduled.stdout and "done:" in scheduled.stderr
    nothing = run("--quiet", "leaver", "run-due", "--yes", env=env)  # not due yet
    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "")
    due = run("--quiet", "leaver", "run-due", "--today", on, "--yes", env=env)
    assert due.exit_code == 0, due.output
    assert who in due.stdout and "done:" in due.stderr
    again = run("--quiet", "leaver", "run-due", "--today", on, "--yes", env=env)  # done once, never twice
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")


def test_errors_still_reach_stderr(env) -> None:
    result = run("--quiet", "leaver", "cancel", "no-such-person-x", env=env)
    assert result.exit_code == 2 and result.stdout == ""
    assert "no scheduled withdrawal" in result.stderr
    no_yes = run("--quiet", "leaver", "withdraw", "nobody-at-all-x", env=env)
    assert no_yes.exit_code == 2 and "aupctl:" in no_yes.stderr


def test_quiet_is_in_the_help() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    assert "-q, --quiet" in out and "cron" in out


CRON_DOC = Path(__file__).parent.parent / "docs" / "cron.md"


def _cron_file() -> str:
    return CRON_DOC.read_text().split("```cron\n", 1)[1].split("```", 1)[0]


def test_the_documented_cron_file_runs(env) -> None:
    """docs/cron.md's /etc/cron.d file: its settings, and each job run as written (the venv's aupctl
    replaced by this one, AUPCTL_CONFIG by the sandbox's): every option exists, every job exits 0 or 1."""
    import shlex

    cron = _cron_file()
    settings = dict(line.split("=", 1) for line in cron.splitlines() if re.match(r"^[A-Z_]+=", line))
    assert settings.keys() >= {"MAILTO", "AUPCTL_CONFIG", "PATH"}
    jobs = [line for line in cron.splitlines() if line and line[0].isdigit()]
    commands = []
    for line in jobs:
        fields = line.split()
        assert len(fields[:5]) == 5 and fields[5] == "aupctl", line  # five time fields, then the user
        assert fields[6] == "/opt/aupctl/venv/bin/aupctl", line  # the full path: cron's PATH has no venv
        args = shlex.split(" ".join(fields[7:]))
        assert args[0] == "--quiet", line
        commands.append(" ".join(a for a in args[1:] if a != "--yes"))
        result = run(*args, env=env)
        assert result.exit_code in (0, 1), (line, result.output)
    assert commands == [
        "leaver run-due",
        "access review",
        "password audit",
        "domain audit",
        "notify",
        "laptop audit",
        "estate audit",
        "log checkpoint",
    ]
    # the Windows tasks schedule the same jobs
    tasks = re.findall(r'/TR "%PS% ([^"]+)"', CRON_DOC.read_text())
    assert [t.replace(" --yes", "") for t in tasks] == commands


def test_a_question_on_a_terminal_is_never_hidden(env, openldap_sandbox) -> None:
    """Without --yes, on a terminal, the plan and the question appear (--quiet holds nothing back once a
    person is asked), and answering no changes nothing."""
    import pexpect

    who = next(
        p.username
        for p in reversed(hb.school().staff)
        if not p.leaver and not p.disabled and p.username not in set(hb.PLANTED.values()) and p.role == "ta"
    )
    on = (TODAY + dt.timedelta(days=40)).isoformat()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "aupctl.commands", "--quiet", "leaver", "withdraw", who, "--on", on],
        env={**os.environ, **env},
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect(r"Apply these \d+ change\(s\)\? \[y/N\]")
        assert who in child.before  # the plan was shown before the question
        child.sendline("n")
        child.expect("not applied: nothing was changed")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130


def test_show_on_a_terminal_still_works(env, openldap_sandbox) -> None:
    """`password reset --show` writes only to a terminal: --quiet keeps stdout's answer to "is it one?"
    true, so the password appears (a reset is a change, so nothing is held back); piped, still refused."""
    from cli_helpers import run_tty

    who = next(
        p.username
        for p in hb.school().staff
        if not p.leaver and not p.disabled and p.username not in set(hb.PLANTED.values()) and p.role == "office"
    )
    code, out, err = run_tty("--quiet", "password", "reset", who, "--show", "--yes", config=openldap_sandbox.config_path)
    assert code == 0, err
    assert f"New password for {who}: " in out and "must change it" in err
    piped = run("--quiet", "password", "reset", who, "--show", "--yes", env=env)
    assert piped.exit_code == 2 and "only on a terminal" in piped.stderr
