"""Server processes: spawning, identity by (pid, start time) from /proc, ending, ports.

Linux only (/proc, prctl); the package refuses to start elsewhere (see sandbox.start).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from ..errors import (
    InputError,
)

# Detached servers this process started (pid -> Popen): kept so the Popen is not collected with a
# "still running" warning, and so stop() from this same process can reap the child it ends.
_DETACHED: dict[int, subprocess.Popen] = {}


def _keep_detached(proc: subprocess.Popen) -> None:
    _DETACHED[proc.pid] = proc


# --------------------------------------------------------------------------------------------------
# Directory, state file, checks


def _binary(name: str, package: str) -> str:
    # /usr/sbin is often not on a non-root PATH, but slapd and samba live there.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not found:
        raise InputError(
            f"{name} is not installed, and the sandbox needs it",
            hint=f"apt-get install {package}",
        )
    return found


def _check_ip(ip: str) -> None:
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise InputError(f"sandbox address {ip!r} is not an IP address") from None
    if not addr.is_loopback or addr.version != 4:
        raise InputError(f"sandbox address {ip} must be an IPv4 loopback address (127.x.y.z)")


def _local_addresses() -> set[str]:
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {part.split()[3].split("/")[0] for part in out.splitlines() if len(part.split()) > 3}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# Processes: identity by (pid, start time), so a reused pid is never signalled


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot), or None if no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    after = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return after[0], int(after[19])


def _is_ours(pid: int, ticks: int | None) -> bool:
    """The process is alive (not a zombie) and is the one we started."""
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return ticks is None or st[1] == ticks


def _end_pid(pid: int, ticks: int | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL if need be. Zombies count as ended: nothing here may reap an orphan."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _is_ours(pid, ticks):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_ours(pid, ticks):
            _reap(pid)
            time.sleep(0.01)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _end_popen(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


_LIBC: Any = None


def _die_with_parent() -> None:
    """preexec_fn for attached servers: SIGTERM when the parent dies, even by SIGKILL (Linux prctl)."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _spawn(argv: list[str], root: Path, log: Path, *, detach: bool, keep_stdin: bool = False) -> subprocess.Popen:
    global _LIBC
    preexec = None
    if not detach and sys.platform.startswith("linux"):
        import ctypes

        _LIBC = _LIBC or ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls it
        preexec = _die_with_parent
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            cwd=root,
            stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,  # a detached server ignores the terminal's Ctrl-C and hangup
            preexec_fn=preexec,
            close_fds=True,
        )


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# An anonymous LDAPv3 bind request (message 1); the answer shows the server is serving operations.
_ANON_BIND = bytes.fromhex("300c020101600702010304008000")


def _ldap_answers(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1.0) as s:
            s.sendall(_ANON_BIND)
            data = s.recv(128)
    except OSError:
        return False
    return b"\x61" in data and b"\x0a\x01\x00" in data  # a BindResponse, resultCode success


def _ticks(pid: int) -> int | None:
    st = _proc_stat(pid)
    return st[1] if st else None
