"""Fixtures for the laptop tests: a real sshd on loopback as the laptop (tests/ssh_fixtures.py)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ssh_fixtures  # noqa: E402
from laptop_env import Env  # noqa: E402
from sandbox_helpers import cannot_run  # noqa: E402


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ssh_fixtures.Sshd]:
    if os.geteuid() != 0:
        cannot_run("the sshd laptop needs root (useradd, sshd)")
    if not shutil.which("sshd") and not Path(ssh_fixtures.SSHD).exists():
        cannot_run("openssh-server is not installed")
    ssh_fixtures.make_user()
    server = ssh_fixtures.Sshd(tmp_path_factory.mktemp("laptop-sshd")).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def env(tmp_path: Path, sshd: ssh_fixtures.Sshd) -> Env:
    e = Env(tmp_path, tmp_path / "aupctl.toml", sshd)
    e.write()
    return e
