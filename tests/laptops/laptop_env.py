"""The CLI as a technician runs it, and a test laptop's config (used by the laptop tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ssh_fixtures
from click.testing import CliRunner, Result


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
