"""Standard output and error that can carry any name: UTF-8 when redirected to a file or a pipe.

On Windows a redirected stdout takes the ANSI code page (cp1252 in a UK school), so `aupctl staff list >
staff.txt` would end in an encoding error at the first name outside it (Łukasz, Nguyễn, Ayşe). A console
is left alone (Python writes Unicode to it already), as is an encoding asked for with PYTHONIOENCODING.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def utf8_when_redirected(*streams: TextIO) -> None:
    if os.environ.get("PYTHONIOENCODING"):
        return
    for stream in streams or (sys.stdout, sys.stderr):
        try:
            if stream.isatty() or (stream.encoding or "").lower().replace("-", "") in ("utf8", "utf8sig"):
                continue
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(encoding="utf-8")
        except (AttributeError, ValueError, OSError):  # a closed or unusual stream: leave it as it is
            continue
