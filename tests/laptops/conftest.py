"""Fixtures for the laptop tests: a real sshd on loopback as the laptop (tests/ssh_fixtures.py)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ssh_fixtures  # noqa: E402


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ssh_fixtures.Sshd]:
    if os.geteuid() != 0:
        pytest.skip("the sshd laptop needs root (useradd, sshd)")
    if not shutil.which("sshd") and not Path(ssh_fixtures.SSHD).exists():
        pytest.skip("openssh-server is not installed")
    ssh_fixtures.make_user()
    server = ssh_fixtures.Sshd(tmp_path_factory.mktemp("laptop-sshd")).start()
    try:
        yield server
    finally:
        server.cleanup()


@dataclass
class Outcome:
    exit_code: int
    output: str  # stdout and stderr, as a technician sees them
    exception: BaseException | None


def run_cli(config: Path, *args: str, input: str | None = None) -> Outcome:
    """The CLI as `aupctl` runs it: AupctlError becomes "aupctl: message" and its exit code (as main() does)."""
    from aupctl.commands import cli
    from aupctl.errors import AupctlError

    res: Result = CliRunner().invoke(cli, list(args), env={"AUPCTL_CONFIG": str(config)}, input=input)
    if isinstance(res.exception, AupctlError):
        return Outcome(res.exception.exit_code, res.output + f"aupctl: {res.exception}\n", None)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(res.exception))
        return Outcome(70, res.output + tb, res.exception)
    return Outcome(res.exit_code, res.output, None)


@dataclass
class Env:
    root: Path
    config: Path
    sshd: ssh_fixtures.Sshd

    def run(self, *args: str, input: str | None = None) -> Outcome:
        return run_cli(self.config, *args, input=input)

    def write(self, **laptops: object) -> None:
        self.config.write_text(ssh_fixtures.config_text(self.root, self.sshd, **laptops))

    def state(self):  # noqa: ANN201
        from aupctl.state import State

        return State(self.root / "state.db")


@pytest.fixture
def env(tmp_path: Path, sshd: ssh_fixtures.Sshd) -> Env:
    e = Env(tmp_path, tmp_path / "aupctl.toml", sshd)
    e.write()
    return e
