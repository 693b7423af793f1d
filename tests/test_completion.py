"""Shell completion: `aupctl completion SHELL`, and what completes (system keys from the config, usernames
and laptop tags from the state store), through the real entry point and, for bash, the real shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_main

from aupctl.config import load
from aupctl.records import approvals, devices, tasks
from aupctl.state import State

ROOT = Path(__file__).resolve().parents[1]


def complete(config: Path | None, shell: str, *words: str) -> list[str]:
    """What aupctl answers a shell asking for completions of the last of words (the real entry point)."""
    env = {
        **os.environ,
        "_AUPCTL_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": " ".join(["aupctl", *words]),
        "COMP_CWORD": words[-1] if shell == "fish" else str(len(words)),  # fish passes the word itself
        "AUPCTL_CONFIG": str(config or "/nonexistent/aupctl.toml"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "aupctl.commands"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def school(openldap_sandbox):
    cfgp = openldap_sandbox.config_path
    st = State(load(str(cfgp)).state.path)
    approvals.record(st, username="zobrien", system="sap", approver="Mr D Okafor (School Business Manager)")
    tasks.open_task(st, kind="grant", text="by hand", username="zoe.adams", system="sap")
    tasks.open_task(st, kind="grant", text="hand-made account", username="o'neill", system="sap")
    fp = "SHA256:" + "A" * 43
    for tag in ("HB-LT-0042", "HB-LT-0043", "OTHER-1"):
        devices.enrol(
            st,
            tag=tag,
            host="127.0.0.1",
            port=22,
            os_name="linux",
            key_type="ssh-ed25519",
            key_b64="AAAA",
            fp=fp,
            next_due="2027-01-01",
            replace=False,
        )
    st.close()
    return cfgp


def test_completion_prints_a_script_for_every_shell() -> None:
    for shell, marker in (
        ("bash", "_aupctl_completion"),
        ("zsh", "#compdef aupctl"),
        ("fish", "complete --no-files --command aupctl"),
        ("powershell", "Register-ArgumentCompleter -Native -CommandName aupctl"),
    ):
        code, out, err = run_main("completion", shell)
        assert code == 0 and marker in out and "_AUPCTL_COMPLETE" in out, (shell, err)
    code, out, err = run_main("completion", "tcsh")
    assert code == 2 and "powershell" in err


def test_commands_systems_users_and_tags_complete(school) -> None:
    assert complete(school, "bash", "acc") == ["plain,access"]
    assert "plain,completion" in complete(school, "bash", "")
    assert sorted(complete(school, "bash", "access", "grant", "zobrien", "s")) == [
        "plain,sap",
        "plain,schoolcomms",
        "plain,sims",
    ]
    assert complete(school, "fish", "access", "review", "TARG") == ["plain", "target_tracker", "Target Tracker"]
    assert complete(school, "bash", "access", "grant", "zo") == ["plain,zobrien", "plain,zoe.adams"]
    assert complete(school, "zsh", "staff", "show", "zoe")[:2] == ["plain", "zoe.adams"]
    assert complete(school, "powershell", "laptop", "checkin", "hb-") == ["HB-LT-0042", "HB-LT-0043"]
    assert complete(school, "powershell", "tasks", "list", "--user", "zob") == ["zobrien"]
    # the words as PowerShell's script sends them: each single-quoted, a quote inside as '\''
    assert complete(school, "powershell", "'laptop'", "'checkin'", "'hb-'") == ["HB-LT-0042", "HB-LT-0043"]
    assert complete(school, "powershell", "'access'", "'grant'", "'o'\\''n'") == ["o'neill"]
    # a LIKE wildcard in what is typed is a character, not a pattern
    assert complete(school, "powershell", "laptop", "show", "%") == []


def test_completion_without_a_config_completes_commands_and_nothing_else(tmp_path) -> None:
    assert complete(None, "bash", "acc") == ["plain,access"]
    assert complete(None, "bash", "access", "grant", "zo") == []
    assert complete(None, "bash", "access", "grant", "zobrien", "s") == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_in_bash(school, tmp_path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "aupctl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aupctl.commands "$@"\n')
    wrapper.chmod(0o755)
    script = (
        'eval "$(aupctl completion bash)"; '
        'COMP_WORDS=(aupctl access review si); COMP_CWORD=3; _aupctl_completion aupctl; echo "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "AUPCTL_CONFIG": str(school)}
    done = subprocess.run(["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sims"]


def test_did_you_mean_for_commands_usernames_and_systems(school) -> None:
    code, out, err = run_main("complet", "bash")
    assert code == 2 and "Did you mean 'completion'?" in err
    code, out, err = run_main("access", "grnt")
    assert code == 2 and "Did you mean 'grant'?" in err
    # a misspelt username: the close ones the state store knows (the directory is not searched again)
    code, out, err = run_main("staff", "show", "zobriem", config=school)
    assert code == 2 and "no account 'zobriem'" in err and "did you mean zobrien?" in err, err
    code, out, err = run_main("staff", "set-role", "qqqqqq", "ta", "--yes", config=school)
    assert code == 2 and "no account 'qqqqqq'" in err and "did you mean" not in err
    code, out, err = run_main("access", "list", "schoolcoms", config=school)
    assert code == 2 and "did you mean schoolcomms?" in err
    code, out, err = run_main("laptop", "show", "HB-LT-042", config=school)
    assert code == 2 and "no laptop with asset tag 'HB-LT-042'" in err and "did you mean HB-LT-0042" in err, err
