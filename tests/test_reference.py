"""docs/reference.md is generated from --help; this fails when the two disagree (run `make docs`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reference_matches_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reference.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_command_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "reference.md").read_text()
    for heading in ("## aupctl doctor", "## aupctl staff list", "## aupctl log verify", "## aupctl sandbox start"):
        assert heading in text
