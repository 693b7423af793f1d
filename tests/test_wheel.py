"""The wheel: built from the checkout's files, installed in a fresh venv, and run from there.

setup.py finds the packages (aupctl/** and commands/ as aupctl.commands) and setup.cfg names the probe
scripts as package data: a subpackage or a data file left out of the wheel fails here, not on a
school's machine. The venv sees the machine's installed dependencies (--system-site-packages), so no
network is needed; the wheel itself is installed with --no-deps --no-index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.openldap]


def _source_files() -> list[Path]:
    """The files a clean clone holds (tracked, or new and not ignored); no developer symlinks."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [ROOT / name for name in out.split("\0") if name]
    return [f for f in files if f.is_file() and not f.is_symlink()]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for f in _source_files():
        dest = src / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    # PYTHONPATH would import the checkout instead of the installed wheel: the venv must stand alone.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUPCTL_CONFIG")}
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."]
    _run(build, src, env)
    wheels = list((src / "dist").glob("aupctl-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    py, aupctl = venv / "bin" / "python", venv / "bin" / "aupctl"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[0])], tmp_path, env)

    where = _run([str(py), "-c", "import aupctl, aupctl.commands; print(aupctl.__file__)"], tmp_path, env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    assert "0.1.0" in _run([str(aupctl), "--version"], tmp_path, env).stdout

    probes = "from aupctl.laptops.probes import script; print(all(script(o) for o in ('windows', 'linux', 'macos')))"
    assert _run([str(py), "-c", probes], tmp_path, env).stdout.strip() == "True"
    table = "from aupctl.estate.support import shipped; print(len(shipped()) > 10)"
    assert _run([str(py), "-c", table], tmp_path, env).stdout.strip() == "True"
    shipped = "from aupctl.mail.letter import SHIPPED; print(' '.join(sorted(p.name for p in SHIPPED.iterdir())))"
    names = _run([str(py), "-c", shipped], tmp_path, env).stdout.split()
    assert {"base.html", "laptop-due.txt", "laptop-due.html", "aup-unsigned.html", "recertify-due.txt"} <= set(names)

    box = tmp_path / "box"
    started = _run([str(aupctl), "sandbox", "start", "--dir", str(box)], tmp_path, env)
    try:
        assert "running" in started.stdout + started.stderr
        assert (box / "aupctl.toml").is_file()
        assert (
            '"running": true'
            in _run([str(aupctl), "--format", "json", "sandbox", "status", "--dir", str(box)], tmp_path, env).stdout
        )
    finally:
        stopped = _run([str(aupctl), "sandbox", "stop", "--dir", str(box)], tmp_path, env)
    assert "stopped" in stopped.stdout + stopped.stderr
