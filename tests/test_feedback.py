"""Feedback while a job runs: progress bars on stderr only when a person watches (a terminal, --format
table), never in what a program reads; on the real sandbox school (slapd)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from cli_helpers import run_main


def run_stderr_tty(*args: str, config, timeout: float = 180) -> tuple[int, str, str]:
    """The real `aupctl` with stderr a terminal (a pseudo-terminal): stdout a pipe, stdin not a terminal."""
    env = {**os.environ, "AUPCTL_CONFIG": str(config), "COLUMNS": "120"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aupctl.commands", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    err = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, out, err.decode(errors="replace")


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
