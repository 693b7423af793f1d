"""The template cache: seeded directories built once (under a cross-process lock) and copied per sandbox."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"


ENV_TEMPLATES = "AUPCTL_SANDBOX_TEMPLATES"

# Bump when the template layout changes, so old caches are not reused.
_TEMPLATE_FORMAT = "3"


def templates_dir() -> Path:
    """Where seeded templates are cached ($AUPCTL_SANDBOX_TEMPLATES overrides)."""
    if os.environ.get(ENV_TEMPLATES):
        return Path(os.environ[ENV_TEMPLATES])
    if os.geteuid() == 0:
        return Path("/var/tmp/aupctl-sandbox-templates")
    from platformdirs import user_cache_dir

    # Not /var/tmp for other users: anyone could plant a "template" there first.
    return Path(user_cache_dir("aupctl")) / "sandbox-templates"


# --------------------------------------------------------------------------------------------------
# Template cache


@contextlib.contextmanager
def _locked(name: str) -> Iterator[Path]:
    """One builder per template, across processes (pytest-xdist workers, a CLI beside the tests)."""
    root = templates_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prune(root: Path, prefix: str, keep: str) -> None:
    """Drop older templates of the same kind (an hour old at least: a copy may be reading one)."""
    for p in root.glob(prefix + "*"):
        if p.name != keep and p.is_dir():
            with contextlib.suppress(OSError):
                if time.time() - p.stat().st_mtime > 3600:
                    shutil.rmtree(p)


def _copy_sparse(src: Path, dst: Path) -> None:
    """Copy only the data extents: the mdb file is 1 GiB long (maxsize) but holds a few hundred KiB."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        pos = 0
        try:
            while pos < size:
                try:
                    data = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
                except OSError:  # ENXIO: only a hole is left
                    break
                hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE)
                fi.seek(data)
                fo.seek(data)
                left = hole - data
                while left:
                    chunk = fi.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    fo.write(chunk)
                    left -= len(chunk)
                pos = hole
        except OSError:  # no SEEK_DATA on this filesystem: plain copy
            fi.seek(0)
            fo.seek(0)
            shutil.copyfileobj(fi, fo, 1 << 20)
        fo.truncate(size)
    os.chmod(dst, 0o600)


def _file_stamp(path: str) -> str:
    st = os.stat(path)
    return f"{path}:{st.st_size}:{int(st.st_mtime)}"


def _ref_time(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
