"""A real OpenSSH sshd on loopback as a test "laptop" (and for `make demo`), plus misbehaving hosts.

Everything lives in one directory: sshd_config, host key, aupctl's client key, authorized_keys.
The throwaway login account is made with useradd (needs root) and unlocked with `usermod -p '*'`
(sshd refuses a locked account when UsePAM is off). See shared notes: real-servers.md.

    python3 tests/ssh_fixtures.py start DIR    # demo: start a detached sshd, print its port
    python3 tests/ssh_fixtures.py stop DIR
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

USER = "aupctl-laptop"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
GARBAGE = "this is not what aupctl asked for\\n\\x1b[31mERROR\\x1b[0m 0x7f 'garbage' {{{"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_user(name: str = USER) -> str:
    """The throwaway login account (created once per machine; shared by concurrent test runs)."""
    with open("/tmp/aupctl-ssh-user.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["id", name], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return name


def keygen(path: Path, passphrase: str = "", kind: str = "ed25519") -> Path:
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path)], check=True)
    path.chmod(0o600)
    return path


def fingerprint_of(pub: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[1]


class Sshd:
    """sshd -D on 127.0.0.1: `port` is a normal laptop, `garbage_port` a laptop whose every command prints junk."""

    def __init__(
        self,
        root: Path,
        user: str = USER,
        client_key: Path | None = None,
        max_startups: str = "100:30:200",
        force_command: str | None = None,
    ) -> None:
        """force_command: what every session on `port` runs instead of the command asked for (a laptop that
        floods, or whose probe sees a hostile hostname)."""
        self.root = root
        self.user = user
        self.port = free_port()
        self.garbage_port = free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self.client_key = client_key or root / "aupctl_ed25519"
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        if not self.host_key.exists():
            keygen(self.host_key)
        if not self.client_key.exists():
            keygen(self.client_key)
        # sshd reads authorized_keys as the user: keep them where that user can reach (tmp dirs are 0700).
        keys = Path(tempfile.mkdtemp(prefix="aupctl-sshkeys-"))
        keys.chmod(0o755)
        self.keys_dir = keys
        shutil.copy(f"{self.client_key}.pub", keys / user)
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"Port {self.garbage_port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {keys}/%u",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    f"MaxStartups {max_startups}",
                    f"AllowUsers {user}",
                    "LogLevel ERROR",
                    *([f"ForceCommand {force_command}"] if force_command else []),
                    f"Match LocalPort {self.garbage_port}",
                    f"    ForceCommand printf '{GARBAGE}'",
                    "",
                ]
            )
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(Path(f"{self.host_key}.pub"))

    def start(self, detach: bool = False) -> Sshd:
        log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.keys_dir, ignore_errors=True)

    def new_host_key(self) -> str:
        """Swap the host key (as a re-imaged laptop, or an impostor, would) and restart; return its fingerprint."""
        self.stop()
        keygen(self.host_key)
        self.start()
        return self.fingerprint


class SilentServer:
    """Accepts TCP connections and never says a word (a hung sshd, or not an SSH server at all)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        for c in self.held:
            c.close()
        self.sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


def config_text(root: Path, sshd: Sshd, **laptops: object) -> str:
    """An aupctl.toml for laptop tests: no reachable directory (port 9 on loopback refuses)."""
    pw = root / "bind.pw"
    pw.write_text("unused\n")
    pw.chmod(0o600)
    values = {
        "ssh_user": sshd.user,
        "ssh_key": str(sshd.client_key),
        "known_hosts": str(root / "known_hosts"),
        "connect_timeout": 2,
        "command_timeout": 120,
        "approved_software": ["bash", "coreutils", "openssh-*"],
        "needs_licence": [],
        **laptops,
    }

    def toml(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)

    updates = laptops.pop("update_commands", None) if "update_commands" in laptops else None
    values.pop("update_commands", None)
    lines = [
        "[school]",
        'name = "Test School"',
        'aup_version = "2026"',
        "",
        "[directory]",
        'flavour = "openldap"',
        'url = "ldap://127.0.0.1:9"',
        "allow_insecure = true",
        'bind_dn = "cn=aupctl,dc=test"',
        f"bind_password_file = {toml(str(pw))}",
        'base_dn = "dc=test"',
        'staff_ou = "ou=Staff"',
        'leavers_ou = "ou=Leavers"',
        'groups_ou = "ou=Groups"',
        "timeout = 1",
        "",
        "[laptops]",
        *(f"{k} = {toml(v)}" for k, v in values.items()),
        "",
        "[laptops.update_commands]",
        *(f"{k} = {toml(v)}" for k, v in (updates or {"linux": ["echo updating; echo step 2 of 2", "true"]}).items()),
        "",
        "[state]",
        f"path = {toml(str(root / 'state.db'))}",
        "",
    ]
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve() / "laptop-sshd"
    if argv[0] == "stop":
        pid = root / "sshd.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        return 0
    make_user()
    sshd = Sshd(root).start(detach=True)
    print(f"{sshd.port} {sshd.client_key} {sshd.user} {sshd.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
