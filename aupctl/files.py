"""Reading a file a person names (a CSV, the config, a password file): only a regular file, and only up
to a limit, so /dev/zero, a FIFO or a 24 GB file ends in a clear message instead of a machine out of memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InputError

MAX_BYTES = 20 * 1024 * 1024  # the default of [import] max_bytes: a staff list is kilobytes


def read_bounded(p: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most max_bytes. Devices (/dev/zero), FIFOs, sockets and directories
    are refused whatever stat says of their size, checked on the opened descriptor (no race with a rename),
    and at most max_bytes + 1 bytes are ever read."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once (to be refused), instead of waiting.
        # (both POSIX only: 0 on Windows, which has no FIFOs to wait on)
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{p}: is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise InputError(f"{p}: not a regular file (a device, pipe or socket); save the CSV to a file first")
        chunks: list[bytes] = []
        got = 0
        while got <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if got > max_bytes:
        raise InputError(
            f"{p}: more than {max_bytes} bytes: too large for a staff CSV (the limit is [import] max_bytes)"
        )
    return b"".join(chunks)
