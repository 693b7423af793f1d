"""Helpers for tests that manage sandboxes themselves (conftest.py builds its fixtures on them).

A plain module, not conftest: tests import it by name (`from sandbox_helpers import ad_slot`), which
stays unambiguous however many conftest.py files the test tree has.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from aupctl import sandbox as sb
from aupctl.config import ENV_CONFIG

# CI=true (or AUPCTL_REQUIRE_SERVERS=1): a server test that cannot run FAILS instead of skipping, so CI
# can never pass by skipping the AD or sshd tests (see require_servers, cannot_run).
REQUIRE_SERVERS = "AUPCTL_REQUIRE_SERVERS"
AD_LOCK = Path("/tmp/aupctl-ad-fixture.lock")
_ad_held = False  # flock does not nest across two open()s in one process: fail fast instead of hanging


def sandbox_env(info: sb.SandboxInfo) -> dict[str, str]:
    return {ENV_CONFIG: str(info.config_path)}


def require_servers() -> bool:
    """Must every server test run here (CI=true or AUPCTL_REQUIRE_SERVERS=1)?"""
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return ci or os.environ.get(REQUIRE_SERVERS, "").strip() == "1"


def cannot_run(why: str) -> NoReturn:
    """A server test that cannot run here: skipped on a workstation, failed in CI (require_servers())."""
    if require_servers():
        pytest.fail(f"{why}; CI=true / {REQUIRE_SERVERS}=1 require every server test to run", pytrace=False)
    pytest.skip(why)


def ad_unavailable() -> str | None:
    """Why the AD sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "the AD sandbox needs root (Samba binds 389/636 and edits /etc/hosts)"
    if not (shutil.which("samba") or shutil.which("samba", path="/usr/sbin:/sbin")):
        return "samba is not installed (apt-get install samba)"
    return None


@contextlib.contextmanager
def ad_slot(wait: float = 240.0) -> Iterator[None]:
    """Exclusive use of 127.0.0.1:389/636 across processes; waits for a DC someone else started to go."""
    global _ad_held
    if _ad_held:
        pytest.fail("this process already runs an AD sandbox (ad_sandbox); only one AD DC at a time")
    with open(AD_LOCK, "a") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"waited {wait:.0f} s for another AD sandbox to finish ({AD_LOCK})")
                time.sleep(0.2)
        try:
            # A DC started outside the lock (a CLI sandbox, a script) still holds the ports: wait for it.
            while sb.ad_ports_busy() and time.monotonic() < deadline:
                time.sleep(0.2)
            _ad_held = True
            yield
        finally:
            _ad_held = False
            fcntl.flock(fh, fcntl.LOCK_UN)
