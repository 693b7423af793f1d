"""Feedback while a job runs: progress bars on stderr only when a person watches (a terminal, --format
table), never in what a program reads; on the real sandbox school (slapd)."""

from __future__ import annotations

from cli_helpers import run_main, run_on_tty


def run_stderr_tty(*args: str, config, timeout: float = 180) -> tuple[int, str, str]:
    """The real `aupctl` with stderr a terminal (a pseudo-terminal): stdout a pipe, stdin not a terminal."""
    return run_on_tty(*args, config=config, timeout=timeout, tty="stderr", env={"COLUMNS": "120"})


def test_password_audit_shows_progress_on_a_terminal_only(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    code, out, err = run_stderr_tty("password", "audit", config=cfgp)
    assert code == 1, err
    assert "accounts checked (password hashes against the deny list)" in err
    assert "accounts checked" not in out and "audited" in err
    # piped (cron, scripts): no bar at all
    code, out, err = run_main("password", "audit", config=cfgp)
    assert code == 1 and "accounts checked" not in err and "audited" in err
    # a program reading JSON: no bar even on a terminal
    code, out, err = run_stderr_tty("--format", "json", "password", "audit", "--no-hash-check", config=cfgp)
    assert code == 1 and "accounts checked" not in err and out.lstrip().startswith(("[", "{"))


def test_review_shows_progress_on_a_terminal_only(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    code, out, err = run_stderr_tty("access", "review", config=cfgp)
    assert code == 1, err  # the sandbox school has planted problems
    assert "reading the directory" in err and "4/4" in err
    code, out, err = run_main("access", "review", config=cfgp)
    assert "reading the directory" not in err


def test_import_summary_counts_people_and_an_interrupted_import_names_the_command_to_resume(
    fresh_openldap, tmp_path, monkeypatch
) -> None:
    import shlex

    from test_intake_faults import write_file

    from aupctl.directory import pipeline

    cfgp = fresh_openldap.config_path
    # 30 people: two batches of the plan, but the summary counts the accounts
    f = tmp_path / "september.csv"
    write_file(f, "SUM", 30)
    code, out, err = run_main(
        "staff", "import", str(f), "--yes", "--credentials-out", str(tmp_path / "a.csv"), config=cfgp
    )
    assert code == 0, err
    assert "done: 30 account(s) created and recorded in the audit log" in err, err
    assert "change(s) applied" not in err

    # Ctrl-C part-way: exit 4, and the hint is the exact command that finishes, with a NEW credentials file
    g = tmp_path / "late starters.csv"
    write_file(g, "RES", 30)
    first = tmp_path / "late-passwords.csv"
    (tmp_path / "late-passwords-2.csv").write_text("someone else's file\n")  # taken: the next free name is -3
    real = pipeline.Pending._receive_all
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(pipeline.Pending, "_receive_all", interrupted)
    code, out, err = run_main("staff", "import", str(g), "--yes", "--credentials-out", str(first), config=cfgp)
    monkeypatch.undo()
    assert code == 4, err
    assert "run the same command again" not in err
    hint = err.split("finish with a NEW credentials file: ", 1)[1].split(" (it picks up", 1)[0]
    argv = shlex.split(hint)
    assert argv[:2] == ["aupctl", "staff"] or argv[:1] == ["aupctl"]
    new = tmp_path / "late-passwords-3.csv"
    assert argv[-3:] == ["--credentials-out", str(new), "--yes"] and str(g) in argv, argv
    assert not new.exists() and f"{first} keeps the passwords already written" in err
    # that exact command finishes the job (its own --config, if any, is the one this test gave)
    args = argv[1:]
    if args[0] == "--config":
        assert args[1] == str(cfgp)
        args = args[2:]
    code, out, err = run_main(*args, config=cfgp)
    assert code == 0, err
    import re

    line = next(x for x in err.splitlines() if x.startswith("done: "))
    counted = re.findall(r"(\d+) account\(s\) (created|finished)", line)
    assert sum(int(n) for n, _ in counted) == 30 and "change(s)" not in line, line
