"""The one way generated passwords leave aupctl: a new CSV file, owner-only, never overwritten.

Owner-only is mode 0600 on POSIX and, on Windows, an access list granting the current user alone
(winacl: a protected DACL, nothing inherited from the folder). Never through a link on either.

Used by the intake, password reset and leaver restore. Each write is fsynced before the caller sets
the password it holds, so a run killed in between still has the password on disk.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from . import winacl
from .errors import InputError
from .text import csv_cell  # the one CSV cell, shared with --format csv and the recertification files

# The columns of each kind of credentials file, written here once (docs name them):
# the first passwords of new staff (staff import) ...
NEW_STAFF_COLUMNS = ["username", "password", "name", "email", "role", "staff_code", "dn", "written_at"]
# ... and a password set again by hand (password reset, leaver restore).
RESET_COLUMNS = ["username", "name", "password", "must_change"]


def require_new(path: str | Path) -> Path:
    """Refuse early (before any change) a path that exists, is a link, or cannot be created."""
    p = Path(path).expanduser().absolute()
    if p.exists() or p.is_symlink():
        raise InputError(
            f"--credentials-out {p}: the file already exists and is never overwritten; name a new file",
            hint="the earlier file still holds the passwords it was given",
        )
    if not p.parent.is_dir():
        raise InputError(f"--credentials-out {p}: the folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise InputError(f"--credentials-out {p}: cannot write in {p.parent}")
    return p


class CredentialsFile:
    """Created on first write with O_EXCL|O_NOFOLLOW and 0600 whatever the umask (on Windows CREATE_NEW,
    no reparse point followed, an owner-only ACL); the header first."""

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = str(Path(path).expanduser().absolute())
        self.columns = columns
        self._secret = columns.index("password") if "password" in columns else -1
        self.fd: int | None = None

    def check(self) -> None:
        require_new(self.path)

    def open(self) -> None:
        if self.fd is not None:
            return
        acl = winacl.active()
        try:
            if acl is not None:  # Windows: mode bits mean nothing there, the ACL is set at creation
                self.fd = winacl.create_owner_only(self.path, acl)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
                self.fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            raise InputError(
                f"--credentials-out {self.path}: the file already exists and is never overwritten; name a new file"
            ) from None
        except OSError as exc:
            raise InputError(f"--credentials-out {self.path}: cannot create it: {exc.strerror}") from None
        if acl is None and sys.platform != "win32":
            os.fchmod(self.fd, 0o600)  # whatever the umask
        self._write([self.columns])
        with contextlib.suppress(OSError):  # the new name itself must survive a crash
            dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _write(self, rows: Iterable[list[str]]) -> None:
        assert self.fd is not None
        buf = io.StringIO()
        # The password is written as it is: it is what the person types (passphrase.generate: ASCII words,
        # '-' and digits, so nothing in it needs escaping or quoting).
        csv.writer(buf, lineterminator="\n").writerows(
            [v if i == self._secret else csv_cell(v) for i, v in enumerate(row)] for row in rows
        )
        data = buf.getvalue().encode("utf-8")
        while data:
            data = data[os.write(self.fd, data) :]
        os.fsync(self.fd)

    def write(self, rows: list[list[str]]) -> None:
        self.open()
        self._write(rows)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        """Close and remove: the password in it was never set."""
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
