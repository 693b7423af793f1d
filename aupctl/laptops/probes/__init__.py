"""Per-OS probes: a script run on the laptop over SSH, and a parser turning its output into Facts.

Each probe prints everything in one go, so it is easy to capture (`ssh laptop ... > capture.txt`)
and to replay through its parser in tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources

from .facts import Facts, ProbeError

OSES = ("windows", "linux", "macos")


@functools.cache
def script(os_name: str) -> str:
    """The probe script's text for this OS."""
    name = {"windows": "windows.ps1", "linux": "linux.sh", "macos": "macos.sh"}[os_name]
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def parser(os_name: str) -> Callable[[str], Facts]:
    if os_name == "windows":
        from .windows import parse
    elif os_name == "linux":
        from .linux import parse
    else:
        from .macos import parse
    return parse


def parse(os_name: str, output: str) -> Facts:
    """Facts from a probe's output; raises ProbeError (never anything else) when it cannot be read."""
    try:
        return parser(os_name)(output)
    except ProbeError:
        raise
    except Exception as exc:  # noqa: BLE001 - what a laptop prints is outside input: never a crash
        raise ProbeError(f"cannot read the {os_name} probe's output ({type(exc).__name__}: {exc})") from None


__all__ = ["OSES", "Facts", "ProbeError", "parse", "parser", "script"]
