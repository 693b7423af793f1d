"""`aupctl leaver ...` through the CLI on both flavours: help, happy paths, bad input (exit 2, nothing
changed), the July wave from a CSV, run-due from cron, cancel, restore and its credentials file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cli_helpers import payload
from click.testing import CliRunner

from aupctl import config as config_mod
from aupctl.commands import cli
from aupctl.directory import open_directory
from aupctl.sandbox import school as hb
from aupctl.state import State

TODAY = dt.date.today()
PLANTED = set(hb.PLANTED.values()) | {hb.LEGIT_IT_ADMIN}


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(cli, list(args), env=env, input=input)


@pytest.fixture(scope="module")
def env(sandbox) -> dict[str, str]:
    return {"AUPCTL_CONFIG": str(sandbox.config_path)}


@pytest.fixture(scope="module")
def cfg(sandbox):
    return config_mod.load(str(sandbox.config_path))


@pytest.fixture(scope="module")
def people(sandbox):
    return iter(
        [
            p
            for p in hb.school().staff
            if not p.leaver and not p.disabled and p.username not in PLANTED and p.role in ("teacher", "ta", "office")
        ][::-1]  # from the other end of the school than test_leavers.py, for readable logs
    )


def account(cfg, username: str):
    d = open_directory(cfg)
    try:
        return d.flavour.find_user(d, username)
    finally:
        d.close()


def snapshot_of_state(cfg) -> tuple[int, int, int]:
    st = State(cfg.state.path)
    try:
        return tuple(st.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in ("audit", "leavers", "tasks"))
    finally:
        st.close()


def test_help_of_every_leaver_command() -> None:
    out = run("leaver", "--help").output
    for name in ("withdraw", "run-due", "list", "cancel", "restore"):
        assert name in out
    for sub, words in {
        "withdraw": ["--on", "--reason", "--from-csv", "--dry-run", "--yes", "staff_code"],
        "run-due": ["cron", "--yes"],
        "list": ["--scheduled", "--done"],
        "cancel": ["scheduled"],
        "restore": ["--credentials-out", "0600", "review period"],
    }.items():
        result = run("leaver", sub, "--help")
        assert result.exit_code == 0, result.output
        for w in words:
            assert w in result.output, (sub, w)
        assert "--today" not in result.output  # the hidden test hook stays hidden


def test_withdraw_one_now_then_list_and_restore(cfg, env, people, tmp_path) -> None:
    user = next(people).username
    dry = run("--format", "json", "leaver", "withdraw", user, "--reason", "resigned", "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    plan = payload(dry.stdout)
    assert plan["changes"][0]["action"] == "leaver-snapshot" and plan["summary"] == {"withdrawn": 1, "scheduled": 0}
    assert not account(cfg, user).disabled  # a dry run changes nothing

    result = run("leaver", "withdraw", user, "--reason", "resigned", "--yes", env=env)
    assert result.exit_code == 0, result.output
    assert account(cfg, user).disabled

    listed = run("--format", "json", "leaver", "list", "--done", env=env)
    rows = {r["username"]: r for r in payload(listed.stdout)}
    assert rows[user]["status"] == "done" and rows[user]["open_tasks"] == 1 and rows[user]["reason"] == "resigned"
    assert set(rows[user]) == {
        "id", "username", "status", "leave_on", "reason", "done_at", "restored_at", "open_tasks",
        "dn", "scheduled_at", "scheduled_by",
    }  # fmt: skip

    missing = run("leaver", "restore", user, "--yes", env=env)
    assert missing.exit_code == 2 and "--credentials-out" in missing.output
    creds = tmp_path / "back.csv"
    back = run("leaver", "restore", user, "--credentials-out", str(creds), "--yes", env=env)
    assert back.exit_code == 0, back.output
    password = creds.read_text(encoding="utf-8").splitlines()[1].split(",")[2]
    assert password not in back.output and creds.stat().st_mode & 0o777 == 0o600
    assert not account(cfg, user).disabled
    again = run("leaver", "restore", user, "--credentials-out", str(tmp_path / "x.csv"), "--yes", env=env)
    assert again.exit_code == 2 and "already restored" in again.output
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["leaver", "withdraw"], "name at least one USER"),
        (["leaver", "withdraw", "x", "--from-csv", "f.csv"], "give no USER"),
        (["leaver", "withdraw", "x", "--on", "31/02/2026"], "--on: '31/02/2026' is not a date"),
        (["leaver", "withdraw", "no-such-person-x", "--yes"], "no such account"),
        (["leaver", "cancel", "no-such-person-x"], "no scheduled withdrawal"),
        (["leaver", "restore", "no-such-person-x", "--credentials-out", "/tmp/never-written.csv"], "no snapshot"),
        (["leaver", "list", "--bogus"], "No such option"),
    ],
)
def test_bad_input_is_exit_2_with_nothing_changed(cfg, env, args, message) -> None:
    before = snapshot_of_state(cfg)
    result = run(*args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert snapshot_of_state(cfg) == before
    assert not Path("/tmp/never-written.csv").exists()


def test_no_terminal_and_no_yes_is_refused(cfg, env, people) -> None:
    user = next(people).username
    before = snapshot_of_state(cfg)
    result = run("leaver", "withdraw", user, env=env)
    assert result.exit_code == 2 and "no --yes" in result.output
    assert snapshot_of_state(cfg) == before and not account(cfg, user).disabled


def test_a_wave_with_one_bad_row_changes_nothing(cfg, env, people, tmp_path) -> None:
    users = [next(people).username for _ in range(3)]
    bad_date = tmp_path / "bad.csv"
    bad_date.write_text(
        f"username,leaving_date,reason\n{users[0]},{TODAY},resigned\n{users[1]},2026-13-01,resigned\n"
        f"{users[2]},{TODAY},retired\n",
        encoding="utf-8",
    )
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(
        f"username,leaving_date,reason\n{users[0]},{TODAY},resigned\nnobody-here,{TODAY},resigned\n", encoding="utf-8"
    )
    before = snapshot_of_state(cfg)
    r1 = run("leaver", "withdraw", "--from-csv", str(bad_date), "--yes", env=env)
    assert r1.exit_code == 2 and "line 3: leaving_date: '2026-13-01' is not a date" in r1.output
    r2 = run("leaver", "withdraw", "--from-csv", str(unknown), "--yes", env=env)
    assert r2.exit_code == 2 and "line 3: 'nobody-here': no such account" in r2.output
    assert snapshot_of_state(cfg) == before
    assert not any(account(cfg, u).disabled for u in users)


def test_the_july_wave_from_csv_then_run_due_and_cancel(cfg, env, people, tmp_path) -> None:
    now, later, cancelled = next(people), next(people), next(people)
    day = TODAY + dt.timedelta(days=20)
    wave = tmp_path / "july.csv"
    # Excel's own export: ';' separated, Windows-1252, UK dates, staff codes for some rows.
    wave.write_bytes(
        (
            "Staff Code;Username;Leaving Date;Reason\r\n"
            f"{now.staff_code};;{TODAY.strftime('%d/%m/%Y')};end of contract – café\r\n"
            f";{later.username};{day.isoformat()};retirement\r\n"
            f";{cancelled.username};{day.isoformat()};moving away\r\n"
        ).encode("cp1252")
    )
    result = run("leaver", "withdraw", "--from-csv", str(wave), "--yes", env=env)
    assert result.exit_code == 0, result.output
    assert account(cfg, now.username).disabled and account(cfg, now.username).description.endswith("café")
    assert not account(cfg, later.username).disabled

    scheduled = payload(run("--format", "json", "leaver", "list", "--scheduled", env=env).stdout)
    assert {r["username"] for r in scheduled} >= {later.username, cancelled.username}
    assert run("leaver", "cancel", cancelled.username, env=env).exit_code == 2  # no --yes, no one to ask
    dry = run("leaver", "cancel", cancelled.username, "--dry-run", env=env)
    assert dry.exit_code == 0 and "cancel the withdrawal" in dry.output and "nothing was changed" in dry.output
    assert run("leaver", "cancel", cancelled.username, "--yes", env=env).exit_code == 0
    assert run("leaver", "cancel", cancelled.username, "--yes", env=env).exit_code == 2

    early = run("leaver", "run-due", "--today", (day - dt.timedelta(days=1)).isoformat(), "--yes", env=env)
    assert early.exit_code == 0, early.output
    assert not account(cfg, later.username).disabled
    due = run("leaver", "run-due", "--today", day.isoformat(), "--yes", env=env)
    assert due.exit_code == 0, due.output
    assert account(cfg, later.username).disabled and not account(cfg, cancelled.username).disabled
    twice = run("leaver", "run-due", "--today", day.isoformat(), "--dry-run", env=env)
    assert twice.exit_code == 0 and "nothing to do" in twice.output
