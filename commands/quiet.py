"""--quiet, for cron: nothing on stdout or stderr when there is nothing to report or do.

While a command runs under --quiet, what it writes to stdout and stderr is held back. When it ends
the held lines are thrown away if the run was uneventful, else written out in order:

- uneventful: exit 0, no change recorded in the audit log by this run, and no warning written;
- anything else (findings, exit 1; an error, which still reaches stderr; changes made; a warning)
  is shown in full, so the cron mail says what happened.

The exit code is never changed. A question to a person (a confirmation without --yes, asked only when
stdin is a terminal) releases everything held so far, so a prompt is never hidden.
"""

from __future__ import annotations

import io
import re
import sys
from typing import Any, TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Held(io.TextIOBase):
    """A stand-in for stdout or stderr that records what is written, in order with its sibling."""

    def __init__(self, hush: Hush, index: int, real: TextIO) -> None:
        self.hush, self.index, self.real = hush, index, real

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes streams with b"": say "text only", as a text file does
            raise TypeError("write() argument must be str")
        return self.hush.write(self.index, text)

    def flush(self) -> None:
        if self.hush.released:
            self.real.flush()

    def isatty(self) -> bool:
        # stdout answers truly (`password reset --show` writes only to a terminal); stderr says no, so no
        # progress bar is drawn into what may be thrown away
        return self.index == 0 and self.real.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return self.real.fileno()


class Hush:
    def __init__(self) -> None:
        self.real: list[TextIO] = [sys.stdout, sys.stderr]
        self.held: list[tuple[int, str]] = []
        self.released = False
        self.warned = False
        sys.stdout = _Held(self, 0, self.real[0])
        sys.stderr = _Held(self, 1, self.real[1])

    def write(self, index: int, text: str) -> int:
        if self.released:
            return self.real[index].write(text)
        self.held.append((index, text))
        plain = _ANSI.sub("", text)
        if index == 1 and (plain.startswith("warning: ") or "\nwarning: " in plain):
            self.warned = True
        if text and not text.endswith("\n") and _stdin_is_terminal():
            self.release()  # a question for the person at the terminal (click.confirm, click.prompt)
        return len(text)

    def release(self) -> None:
        """Write out everything held, and pass all further output straight through."""
        if self.released:
            return
        self.released = True
        for index, text in self.held:
            self.real[index].write(text)
        self.held.clear()
        for stream in self.real:
            stream.flush()

    def finish(self, exit_code: Any, acted: bool) -> None:
        """Put the real streams back; show what was held unless the run was uneventful."""
        sys.stdout, sys.stderr = self.real[0], self.real[1]
        if exit_code not in (0, None) or acted or self.warned:
            self.release()
        self.held.clear()


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False
