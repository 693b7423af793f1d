"""`make demo` is the README's first command: its OpenLDAP run is part of the suite, so a change that
breaks a demo step (a JSON shape, an option, a refused command) fails here, not in front of a user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.openldap
def test_the_demo_runs_every_job_to_the_end(tmp_path: Path) -> None:
    if shutil.which("aupctl") is None:
        pytest.fail("aupctl is not on PATH: `pip install -e .[test]` (make test does it)")
    env = {k: v for k, v in os.environ.items() if k not in ("AUPCTL_CONFIG", "DEMO_FLAVOUR")}
    env["PYTHONPATH"] = str(ROOT)  # the demo's `aupctl` runs this checkout's code
    demo = tmp_path / "demo"
    try:
        run = subprocess.run(
            ["bash", str(ROOT / "demo" / "run.sh"), str(demo)],
            capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
        )
    finally:
        subprocess.run(["aupctl", "sandbox", "stop", "--dir", str(demo)], capture_output=True, env=env)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "Traceback" not in out and "internal error" not in out, out[-4000:]
    assert "log verify" in out  # it reached the summary step
