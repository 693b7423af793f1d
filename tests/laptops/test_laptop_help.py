"""Every laptop/licence command explains itself, and neither imports paramiko until a laptop is contacted."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from aupctl.commands import cli


@pytest.mark.parametrize(
    "args, needle",
    [
        (["laptop"], "pinned at enrolment"),
        (["laptop", "enrol"], "--fingerprint"),
        (["laptop", "assign"], "directory username"),
        (["laptop", "return"], "came back"),
        (["laptop", "retire"], "unpinned"),
        (["laptop", "list"], "--overdue"),
        (["laptop", "show"], "history"),
        (["laptop", "checkin"], "--update"),
        (["laptop", "audit"], "--no-probe"),
        (["licence"], "[[licences]]"),
        (["licence", "report"], "60 days"),
    ],
)
def test_help(args: list[str], needle: str) -> None:
    res = CliRunner().invoke(cli, [*args, "--help"])
    assert res.exit_code == 0 and needle in res.output


def test_paramiko_stays_unimported_for_help_and_records() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from aupctl.commands import cli; "
        "CliRunner().invoke(cli, ['laptop', 'audit', '--help']); CliRunner().invoke(cli, ['licence', 'report', '--help']); "
        "import aupctl.laptops.audit, aupctl.laptops.enrol, aupctl.laptops.licences; print('paramiko' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
