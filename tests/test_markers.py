"""The test plumbing itself: server markers come from the fixtures a test uses, and CI=true turns a
server test that cannot run into a failure, not a skip (tests/conftest.py, tests/sandbox_helpers.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_helpers import REQUIRE_SERVERS, cannot_run, require_servers

ROOT = Path(__file__).resolve().parents[1]


def _collected(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", REQUIRE_SERVERS)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


def _param(test_id: str, flavour: str) -> bool:
    """Is `flavour` one of the test's parameter ids ("test[ad]", "test[ad-*-raise-...]")?"""
    m = re.search(r"\[(.*)\]$", test_id)
    return m is not None and flavour in m.group(1).split("-")


def test_markers_follow_the_fixtures() -> None:
    ad = _collected("-m", "ad", "tests/test_access.py")
    not_ad = _collected("-m", "not ad", "tests/test_access.py")
    openldap = _collected("-m", "openldap", "tests/test_access.py")
    assert ad and not_ad and openldap
    assert all(_param(t, "ad") for t in ad), ad  # the `sandbox` fixture's "ad" param
    assert not any(_param(t, "ad") for t in not_ad), not_ad
    assert all(_param(t, "openldap") for t in openldap), openldap
    ssh = _collected("-m", "ssh", "tests/laptops/test_laptop_ssh.py")
    assert ssh, "the laptop tests use the sshd fixture"


@pytest.mark.parametrize(("env", "value"), [("CI", "true"), (REQUIRE_SERVERS, "1")])
def test_required_servers_fail_instead_of_skipping(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(REQUIRE_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no samba here"):
        cannot_run("no samba here")
    monkeypatch.setenv(env, value)
    assert require_servers()
    with pytest.raises(pytest.fail.Exception, match="no samba here"):
        cannot_run("no samba here")
