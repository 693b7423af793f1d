"""SSH to laptops with paramiko: key authentication, host keys pinned at enrolment, bounded retries.

Host keys come from aupctl's own records (the devices table, mirrored to [laptops] known_hosts for
the technician's own `ssh`), never from ~/.ssh/known_hosts; an unknown or changed key is refused
with both fingerprints. Each connection uses a socket we connect ourselves with TCP_NODELAY (a
check-in is many small round trips: 65 ms -> 20 ms per connect here).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import select
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ..config import Laptops
from ..credentials import ENV_SSH, ssh_passphrase
from ..errors import AuthError, ConfigError, HostKeyError, UnreachableError

warnings.filterwarnings("ignore", module="paramiko")  # cryptography deprecation noise is not the user's concern
import paramiko  # noqa: E402 - only this package imports paramiko (keeps `aupctl --help` fast)

# paramiko logs tracebacks from its transport thread (e.g. for banner errors): keep them off the terminal.
_log = logging.getLogger("paramiko")
_log.addHandler(logging.NullHandler())
_log.propagate = False
_log.setLevel(logging.CRITICAL + 1)

# PowerShell reads the script from stdin: no 8191-character command-line limit. The bootstrap travels
# -EncodedCommand (base64, no quotes or $) so it means the same whether the laptop's SSH shell is cmd.exe or
# PowerShell. It reads stdin as UTF-8 bytes (no console API: an SSH session may have no console), and asks
# for UTF-8 output where a console allows it (the probe itself prints ASCII-only JSON either way).
_BOOTSTRAP = (
    "$u = New-Object System.Text.UTF8Encoding $false; try { [Console]::OutputEncoding = $u } catch { }; "
    "$s = (New-Object System.IO.StreamReader([Console]::OpenStandardInput(), $u)).ReadToEnd(); "
    "& ([scriptblock]::Create($s))"
)
POWERSHELL_STDIN = (
    "powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
    + base64.b64encode(_BOOTSTRAP.encode("utf-16-le")).decode("ascii")
)
SH_STDIN = "/bin/sh -s"
MAX_OUTPUT = 64 * 1024 * 1024  # a laptop printing without end is cut off, not allowed to eat memory
BANNER_RETRIES = 2


@dataclass(frozen=True)
class Pin:
    """A pinned host key: its type (e.g. ssh-ed25519), base64 body, and SHA256 fingerprint."""

    key_type: str
    key_b64: str
    fingerprint: str

    @classmethod
    def of(cls, key: paramiko.PKey) -> Pin:
        return cls(key.get_name(), key.get_base64(), fingerprint(key.asbytes()))

    def describe(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (what `ssh-keygen -lf` prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """The known_hosts name of a host, as OpenSSH and paramiko write it."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


class _Refuse(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key, so the refusal can show its fingerprint."""

    def __init__(self) -> None:
        self.offered: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        self.offered = key
        raise _Unknown(key)


class _FirstContact(paramiko.MissingHostKeyPolicy):
    """Enrolment: remember the key; refuse before authenticating if it is not the one we were told to expect."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.offered: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.offered = key
        if self.expected and fingerprint(key.asbytes()) != self.expected:
            raise _Unknown(key)


class _Unknown(paramiko.SSHException):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("host key not pinned")
        self.key = key


class Session:
    """One authenticated SSH connection; run() commands on it."""

    def __init__(self, client: paramiko.SSHClient, where: str, pin: Pin, owner: Connector | None = None) -> None:
        self.client = client
        self.where = where
        self.pin = pin  # the key the host showed (pinned, or to be pinned at enrolment)
        self.owner = owner

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        timeout: float,
        on_output: Callable[[str], None] | None = None,
    ) -> Result:
        """Run a command; feed `stdin`; stream output lines to on_output; bounded by `timeout` seconds."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise UnreachableError(f"{self.where}: the SSH connection was closed")
        try:
            chan = transport.open_session(timeout=timeout)
            chan.exec_command(command)
            try:
                if stdin is not None:
                    chan.sendall(stdin.encode("utf-8"))
                chan.shutdown_write()
            except (OSError, EOFError, paramiko.SSHException):
                pass  # the command ended without reading its input (e.g. a ForceCommand): what it printed counts
            return self._collect(chan, timeout, on_output)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise UnreachableError(f"{self.where}: the connection failed during a command: {_why(exc)}") from None

    def _collect(self, chan: paramiko.Channel, timeout: float, on_output: Callable[[str], None] | None) -> Result:
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        pending = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UnreachableError(f"{self.where}: the command did not finish within {timeout:g} s")
                select.select([chan], [], [], min(left, 1.0))
                got = False
                while chan.recv_ready():
                    data = chan.recv(65536)
                    got = True
                    out += data
                    _bounded(out, err, self.where)  # checked per chunk: memory never grows past the limit
                    if on_output:
                        pending += data
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            on_output(line.decode("utf-8", "replace").rstrip("\r"))
                while chan.recv_stderr_ready():
                    data = chan.recv_stderr(65536)
                    got = True
                    err += data
                    _bounded(out, err, self.where)
                    if on_output:
                        for text in data.decode("utf-8", "replace").splitlines():
                            on_output(text)
                if not got and chan.exit_status_ready() and chan.eof_received:
                    break
                if not got and chan.closed:
                    break
            if on_output and pending:
                on_output(pending.decode("utf-8", "replace"))
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        finally:
            chan.close()
        return Result(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def close(self) -> None:
        self.client.close()
        if self.owner is not None:
            self.owner.closed(self.client)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OutputTooLarge(UnreachableError):
    """The laptop printed more than MAX_OUTPUT: reading stopped there. A probe reports it as failed (high)."""


def _bounded(out: bytearray, err: bytearray, where: str) -> None:
    if len(out) + len(err) > MAX_OUTPUT:
        del out[:], err[:]  # drop it now: the caller gets the error, never the flood
        raise OutputTooLarge(f"{where}: the command printed more than {MAX_OUTPUT >> 20} MiB; reading stopped there")


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


class Connector:
    """Connects to laptops with the configured key; thread-safe (one per audit, shared by the pool)."""

    def __init__(self, cfg: Laptops) -> None:
        self.cfg = cfg
        self._key: paramiko.PKey | None = None
        self._lock = threading.Lock()
        self._open: set[paramiko.SSHClient | socket.socket] = set()  # live connections, for close_all()
        self._stopped = False

    def key(self) -> paramiko.PKey:
        with self._lock:
            if self._key is None:
                self._key = load_key(self.cfg.ssh_key)
            return self._key

    def connect(self, host: str, port: int, pin: Pin | None, *, expect: str | None = None, name: str = "") -> Session:
        """Authenticate to host:port. With a pin, only that key is accepted (exit 3 otherwise); without one
        (enrolment) the offered key is returned in Session.pin, checked first against `expect` if given."""
        key = self.key()
        where = f"{name} ({host}:{port})" if name else f"{host}:{port}"
        timeout = self.cfg.connect_timeout
        attempt = 0
        while True:
            attempt += 1
            if self._stopped:
                raise UnreachableError(f"{where}: not contacted: stopped (interrupted)")
            started = time.monotonic()
            try:
                return self._connect_once(host, port, pin, expect, key, where, timeout)
            except _Retry as retry:
                quick = time.monotonic() - started < timeout / 2
                if not quick:
                    raise UnreachableError(f"{where}: {retry.why}") from None
                if attempt > BANNER_RETRIES:
                    raise UnreachableError(
                        f"{where}: it closed the connection before the SSH handshake, {attempt} times "
                        "(sshd too busy: its MaxStartups limit drops connections beyond it)"
                    ) from None
                # sshd's MaxStartups drops connections beyond 10 at once: back off and try again.
                time.sleep(0.2 * attempt + random.random() * 0.3)

    def _connect_once(
        self, host: str, port: int, pin: Pin | None, expect: str | None, key: paramiko.PKey, where: str, timeout: float
    ) -> Session:
        sock = self._tcp(host, port, where, timeout)
        with self._lock:
            self._open.add(sock)  # close_all() can cut a handshake short too
        try:
            return self._handshake(sock, host, port, pin, expect, key, where, timeout)
        finally:
            with self._lock:
                self._open.discard(sock)

    def _tcp(self, host: str, port: int, where: str, timeout: float) -> socket.socket:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            raise UnreachableError(
                f"{where}: no answer within {timeout:g} s (switched off, or off the network?)"
            ) from None
        except ConnectionRefusedError:
            raise UnreachableError(
                f"{where}: connection refused (is OpenSSH Server running, and port {port} open in its firewall?)"
            ) from None
        except OSError as exc:
            raise UnreachableError(f"{where}: cannot connect: {_why(exc)}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # Over 80 lines on purpose: one connect, then one except clause per way an SSH handshake fails, each
    # turned into the error (and exit code) a technician acts on; kept together so the mapping reads as one table.
    def _handshake(
        self,
        sock: socket.socket,
        host: str,
        port: int,
        pin: Pin | None,
        expect: str | None,
        key: paramiko.PKey,
        where: str,
        timeout: float,
    ) -> Session:
        client = paramiko.SSHClient()
        policy: _Refuse | _FirstContact
        if pin is not None:
            policy = _Refuse()
            client.get_host_keys().add(
                host_entry(host, port),
                pin.key_type,
                paramiko.PKey.from_type_string(pin.key_type, base64.b64decode(pin.key_b64)),
            )
        else:
            policy = _FirstContact(expect)
        client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                host,
                port=port,
                username=self.cfg.ssh_user,
                pkey=key,
                sock=sock,
                timeout=timeout + 1,  # key exchange; longer than the banner wait, so a silent host says "banner"
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"{where}: host key CHANGED: it offered {Pin.of(exc.key).describe()}, "
                f"but the pinned key is {Pin.of(exc.expected_key).describe()}; refused",
                hint="if the laptop was re-imaged, check the new key at the laptop and run `aupctl laptop enrol` "
                "with --replace-key --fingerprint NEW; otherwise treat it as a possible impostor",
            ) from None
        except _Unknown as exc:
            client.close()
            offered = Pin.of(exc.key).describe()
            if pin is not None:
                msg = f"{where}: host key not pinned: it offered {offered}, the pinned key is {pin.describe()}; refused"
            else:
                msg = f"{where}: host key {offered} is not the expected {expect}; refused, nothing was pinned"
            raise HostKeyError(msg) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthError(
                f"{where}: refused aupctl's key for user {self.cfg.ssh_user!r} ({_why(exc)})",
                hint="put the public half of [laptops] ssh_key in the laptop's authorized_keys "
                "(administrators_authorized_keys on Windows; see docs/laptops.md)",
            ) from None
        except paramiko.SSHException as exc:
            client.close()
            text = _why(exc)
            if "No existing session" in text:  # start_client gave up waiting for the key exchange
                raise UnreachableError(f"{where}: the SSH handshake did not finish within {timeout + 1:g} s") from None
            if "protocol banner" in text:
                raise _Retry(
                    f"connected, but no SSH banner within {timeout:g} s (not an SSH server, or hung)"
                ) from None
            raise UnreachableError(f"{where}: SSH failed: {text}") from None
        except (EOFError, ConnectionResetError) as exc:
            client.close()
            raise _Retry(f"the connection was closed during the SSH handshake ({_why(exc)})") from None
        except TimeoutError:
            client.close()
            raise UnreachableError(f"{where}: the SSH handshake did not finish within {timeout:g} s") from None
        except OSError as exc:
            client.close()
            raise UnreachableError(f"{where}: {_why(exc)}") from None
        transport = client.get_transport()
        server_key = transport.get_remote_server_key() if transport else None
        with self._lock:
            self._open.add(client)
        return Session(client, where, Pin.of(server_key) if server_key else pin, self)  # type: ignore[arg-type]

    def closed(self, client: paramiko.SSHClient) -> None:
        with self._lock:
            self._open.discard(client)

    def close_all(self) -> None:
        """Ctrl-C during an audit: drop every open connection so the probing threads end now."""
        with self._lock:
            self._stopped = True  # and no new connections, nor retries
            live, self._open = list(self._open), set()
        for conn in live:
            try:
                if isinstance(conn, socket.socket):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it (close() alone does not)
                conn.close()
            except OSError:
                pass


class _Retry(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def load_key(path: str | None) -> paramiko.PKey:
    if not path:
        raise ConfigError(
            "no SSH key configured: set [laptops] ssh_key to aupctl's private key",
            hint="make one with: ssh-keygen -t ed25519 -f /etc/aupctl/laptops_ed25519 (see docs/laptops.md)",
        )
    passphrase = None
    try:
        try:
            return paramiko.PKey.from_path(path)
        except (paramiko.PasswordRequiredException, TypeError):  # encrypted: only now ask env/keyring
            passphrase = ssh_passphrase(path)
            if not passphrase:
                raise
        # bytes, as the cryptography loaders underneath want (paramiko's annotation says str)
        return paramiko.PKey.from_path(path, password=passphrase.encode("utf-8"))  # type: ignore[arg-type]
    except FileNotFoundError:
        raise ConfigError(f"[laptops] ssh_key: no such file {path}") from None
    except (paramiko.PasswordRequiredException, TypeError):  # cryptography: TypeError "password-protected"
        raise ConfigError(
            f"[laptops] ssh_key {path} is protected by a passphrase, and none was given",
            hint=f"set {ENV_SSH} for scripts, or store it in the keyring under service 'aupctl', account 'ssh:{path}'",
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        bad = " (wrong passphrase?)" if passphrase else ""
        raise ConfigError(f"[laptops] ssh_key {path} cannot be read{bad}: {_why(exc)}") from None


def write_known_hosts(path: str, entries: list[tuple[str, int, Pin]]) -> None:
    """aupctl's own known_hosts (for `ssh -o UserKnownHostsFile=...`), rewritten whole from the records."""
    import os
    import tempfile

    lines = [f"{host_entry(h, p)} {pin.key_type} {pin.key_b64}\n" for h, p, pin in sorted(entries, key=lambda e: e[:2])]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".known_hosts.")
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.writelines(lines)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
