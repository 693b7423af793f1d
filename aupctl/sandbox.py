"""A throwaway slapd or Samba AD DC seeded with Hollybank Primary School (aupctl.sandbox_school).

Used by `aupctl sandbox start|status|stop`, `make demo` and the tests' fixtures. A sandbox lives in
one directory: the server's files, DIR/aupctl.toml (loads with aupctl.config.load), bind.pw,
aup-signatures.csv, intake.csv and DIR/sandbox.json (flavour, pid, URLs) for status/stop.

Fresh sandboxes are cheap because the seeded directory is built once into a template cache
(templates_dir()) and copied: OpenLDAP's mdb file after slapadd, Samba's provisioned and seeded
private/state directories. docs/sandbox.md describes the school and the planted problems.

Layouts (sandbox_school.LAYOUTS): "standard" (both flavours, the default), "flat" (OpenLDAP: one
ou=People, posixGroup/memberUid groups, one RFC 2307bis group, roles known by group only) and
"nested" (AD: an OU per site and department, system groups in their own OU tree, a 2,000-member
group, three-level nesting). Each layout has its own template in the cache.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sandbox_school as hb
from .errors import InputError, NotFoundError, UnreachableError

FLAVOURS = ("openldap", "ad")
LAYOUTS = hb.LAYOUTS
DEFAULT_LAYOUT = hb.DEFAULT_LAYOUT
RFC2307BIS_SCHEMA = "rfc2307bis.schema"  # the flat layout's nis.schema with posixGroup AUXILIARY
STATE_FILE = "sandbox.json"
CONFIG_FILE = "aupctl.toml"
BIND_PW_FILE = "bind.pw"
AD_HOST = f"dc1.{hb.DOMAIN}"
DEFAULT_IP = "127.0.0.1"
ENV_TEMPLATES = "AUPCTL_SANDBOX_TEMPLATES"

OPENLDAP_SERVICE_DN = f"cn=aupctl,ou=Service,{hb.OPENLDAP_BASE_DN}"
OPENLDAP_ROOT_DN = f"cn=admin,{hb.OPENLDAP_BASE_DN}"
AD_ADMIN_DN = f"CN=Administrator,CN=Users,{hb.AD_BASE_DN}"

# Bump when the template layout changes, so old caches are not reused.
_TEMPLATE_FORMAT = "3"
# Bump when the nested AD layout's seeding changes (its key also holds the school's data).
_AD_NESTED_FORMAT = "1"
# AD templates are rebuilt when older than this: whenCreated/lastLogonTimestamp are planted relative
# to the build date, and ordinary staff must stay well inside passwords.stale_after_days (90).
_AD_TEMPLATE_DAYS = 28

# Files and directories a sandbox creates; only these are removed when a stopped sandbox is restarted.
# fmt: off
_OWNED = {
    STATE_FILE, CONFIG_FILE, BIND_PW_FILE, "aup-signatures.csv", "intake.csv", "ca.pem", "server.pem",
    "server.key", "slapd.conf", "slapd.pid", "slapd.args", "slapd.log", "db", "etc", "private", "state",
    "cache", "run", "log", "bind-dns", "gencache.tdb", "state.db", "state.db-wal", "state.db-shm",
    "state.db-journal", "known_hosts", RFC2307BIS_SCHEMA, "audit.key", "checkpoints.jsonl",
    # Samba's messaging files in its lock directory (the sandbox root): without these a stopped AD
    # sandbox could not be started again in the same directory (copytree met msg.sock).
    "msg.lock", "msg.sock", "names.tdb",
}
# fmt: on


# --------------------------------------------------------------------------------------------------
# The handle


@dataclass
class SandboxInfo:
    flavour: str  # "openldap" | "ad"
    dir: Path
    config_path: Path  # DIR/aupctl.toml
    urls: list[str]  # ldaps:// first, then ldap:// (StartTLS)
    pid: int
    bind_dn: str  # what aupctl.toml binds as (OpenLDAP: cn=aupctl,ou=Service; AD: Administrator)
    base_dn: str
    bind_password: str = ""
    ca_file: Path | None = None
    admin_dn: str = ""  # OpenLDAP: the rootdn (sandbox use only); AD: Administrator
    admin_password: str = ""
    ip: str = DEFAULT_IP
    seeded: bool = True
    layout: str = DEFAULT_LAYOUT  # sandbox_school.LAYOUTS[flavour]
    process: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    start_ticks: int | None = field(default=None, repr=False)

    @property
    def detached(self) -> bool:
        return self.process is None

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _is_ours(self.pid, self.start_ticks)

    def stop(self) -> None:
        """End only the process this sandbox started and wait for it; safe to call twice."""
        _ATTACHED.pop(self.dir, None)
        if self.process is not None:
            _end_popen(self.process)
            # The process is gone, so sandbox.json now says "not running" on its own.
        else:
            stop(self.dir)

    def bind_name(self, username: str) -> str:
        """What a seeded person binds as: their DN on OpenLDAP, their UPN on AD."""
        if self.flavour == "ad":
            return f"{username}@{hb.DOMAIN}"
        return person_dn(username, "openldap", self.layout)

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        """A bound ldap3 Connection over ldaps with the sandbox CA verified (for tests and the demo).

        user: a bind DN/UPN; default the config's bind account and password.
        """
        import ssl

        from ldap3 import Connection, Server, Tls

        tls = Tls(ca_certs_file=str(self.ca_file), validate=ssl.CERT_REQUIRED)
        server = Server(self.urls[0], tls=tls, connect_timeout=5)
        if user is None:
            user, password = self.bind_dn, self.bind_password
        return Connection(server, user, password, auto_bind=True, receive_timeout=30)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flavour": self.flavour,
            "dir": str(self.dir),
            "config": str(self.config_path),
            "urls": list(self.urls),
            "pid": self.pid,
            "bind_dn": self.bind_dn,
            "base_dn": self.base_dn,
            "ip": self.ip,
            "seeded": self.seeded,
            "layout": self.layout,
            "detached": self.detached,
        }


# Sandboxes started with detach=False by this process: stopped at exit so none outlives a test run.
_ATTACHED: dict[Path, SandboxInfo] = {}
# Detached servers this process started (pid -> Popen): kept so the Popen is not collected with a
# "still running" warning, and so stop() from this same process can reap the child it ends.
_DETACHED: dict[int, subprocess.Popen] = {}


@atexit.register
def _stop_attached() -> None:
    for info in list(_ATTACHED.values()):
        with contextlib.suppress(Exception):
            info.stop()


# --------------------------------------------------------------------------------------------------
# Public API


def default_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("aupctl")) / "sandbox"


def templates_dir() -> Path:
    """Where seeded templates are cached ($AUPCTL_SANDBOX_TEMPLATES overrides)."""
    if os.environ.get(ENV_TEMPLATES):
        return Path(os.environ[ENV_TEMPLATES])
    if os.geteuid() == 0:
        return Path("/var/tmp/aupctl-sandbox-templates")
    from platformdirs import user_cache_dir

    # Not /var/tmp for other users: anyone could plant a "template" there first.
    return Path(user_cache_dir("aupctl")) / "sandbox-templates"


def start(
    flavour: str = "openldap",
    directory: Path | None = None,
    *,
    detach: bool = True,
    seed: bool = True,
    ip: str = DEFAULT_IP,
    timeout: float = 60.0,
    layout: str = DEFAULT_LAYOUT,
) -> SandboxInfo:
    """Start a fresh sandbox in `directory` (default_dir() if None) and write its aupctl.toml.

    detach=True: the server outlives this process (the CLI); its pid is kept in DIR/sandbox.json.
    detach=False: this process owns it (tests); stop() ends it, and so does this process exiting.
    seed=False: only the OU skeleton (and, on OpenLDAP, the service account and password policy).
    ip: the loopback address to listen on; AD's ports are fixed (389/636), so one AD DC per address.
    layout: how the school is laid out (sandbox_school.LAYOUTS[flavour]; docs/sandbox.md).
    A directory holding a stopped sandbox is reset to a fresh school; one that holds other files is refused.
    """
    if flavour not in FLAVOURS:
        raise InputError(f"unknown sandbox flavour {flavour!r} (expected one of: {', '.join(FLAVOURS)})")
    check_layout(flavour, layout)
    root = Path(directory if directory is not None else default_dir()).expanduser().resolve()
    _refuse_running(root)
    _check_ip(ip)
    if flavour == "ad":
        _check_ad_host(ip)
        bins = {"samba": _binary("samba", "samba"), "samba-tool": _binary("samba-tool", "samba")}
    else:
        bins = {"slapd": _binary("slapd", "slapd"), "slapadd": _binary("slapadd", "slapd")}
    _prepare_dir(root)
    try:
        if flavour == "ad":
            info = _start_ad(root, bins, detach=detach, seed=seed, ip=ip, timeout=timeout, layout=layout)
        else:
            info = _start_openldap(root, bins, detach=detach, seed=seed, ip=ip, timeout=timeout, layout=layout)
    except BaseException:
        _remove_owned(root)  # a half-made sandbox would make the next start refuse the directory
        raise
    if not detach:
        _ATTACHED[root] = info
    return info


def check_layout(flavour: str, layout: str) -> None:
    """Refuse a layout the flavour does not have, naming the ones it has."""
    if layout not in LAYOUTS.get(flavour, ()):
        other = [f for f, names in LAYOUTS.items() if layout in names]
        hint = f"--layout {layout} is for --flavour {other[0]}" if other else None
        raise InputError(
            f"unknown sandbox layout {layout!r} for {flavour} (expected one of: {', '.join(LAYOUTS[flavour])})",
            hint=hint,
        )


def person_dn(username: str, flavour: str = "openldap", layout: str = DEFAULT_LAYOUT) -> str:
    """A seeded person's full DN in a layout (a hand-made account on OpenLDAP is named by cn)."""
    from ldap3.utils.dn import escape_rdn

    p = hb.school(layout).person(username)
    ou = hb.person_ou(p, layout)
    if flavour == "ad":
        return f"CN={escape_rdn(p.display_name)},{_ad_dn(ou)},{hb.AD_BASE_DN}"
    rdn = f"cn={escape_rdn(p.display_name)}" if hb.is_hand_made(username) else f"uid={escape_rdn(username)}"
    return f"{rdn},{ou},{hb.OPENLDAP_BASE_DN}"


def _ad_dn(rel: str) -> str:
    """'ou=Teaching,ou=North Site' -> 'OU=Teaching,OU=North Site' (AD's usual spelling)."""
    return ",".join(part.replace("ou=", "OU=", 1).replace("cn=", "CN=", 1) for part in rel.split(","))


def _keep_detached(proc: subprocess.Popen) -> None:
    _DETACHED[proc.pid] = proc


def status(directory: Path) -> dict[str, Any]:
    """flavour, layout, dir, config, urls, pid, running (bool), bind_dn, base_dn, started, detached."""
    root = Path(directory).expanduser().resolve()
    data = _read_state(root)
    if data is None:
        raise NotFoundError(f"no sandbox in {root}", hint="start one with `aupctl sandbox start`")
    pid = int(data.get("pid") or 0)
    running = bool(pid) and _is_ours(pid, data.get("start_ticks"))
    return {
        "flavour": data.get("flavour"),
        "layout": data.get("layout", DEFAULT_LAYOUT),
        "dir": str(root),
        "config": data.get("config"),
        "urls": data.get("urls", []),
        "pid": pid,
        "running": running,
        "bind_dn": data.get("bind_dn"),
        "base_dn": data.get("base_dn"),
        "ip": data.get("ip"),
        "started": data.get("started"),
        "detached": data.get("detached"),
    }


def stop(directory: Path) -> bool:
    """Stop the server recorded in DIR/sandbox.json if that pid is still that server.

    Returns whether something was stopped. Never signals a pid that has been reused by another process.
    """
    root = Path(directory).expanduser().resolve()
    attached = _ATTACHED.pop(root, None)
    if attached is not None and attached.process is not None:
        was = attached.process.poll() is None
        _end_popen(attached.process)
        return was
    data = _read_state(root)
    if data is None:
        return False
    pid = int(data.get("pid") or 0)
    if not pid or not _is_ours(pid, data.get("start_ticks")):
        return False
    child = _DETACHED.pop(pid, None)
    if child is not None:
        _end_popen(child)
    else:
        _end_pid(pid, data.get("start_ticks"))
    return True


def info_from(directory: Path) -> SandboxInfo:
    """A SandboxInfo for a sandbox already started (e.g. by the CLI), from DIR/sandbox.json."""
    root = Path(directory).expanduser().resolve()
    data = _read_state(root)
    if data is None:
        raise NotFoundError(f"no sandbox in {root}")
    return _info_from_state(root, data)


def prepare_template(flavour: str, *, seed: bool = True, ip: str = DEFAULT_IP, layout: str = DEFAULT_LAYOUT) -> Path:
    """Build (or find) the cached template, so a later start() is fast. Returns its directory."""
    if flavour in FLAVOURS:
        check_layout(flavour, layout)
    if flavour == "ad":
        _check_ad_host(ip)
        bins = {"samba": _binary("samba", "samba"), "samba-tool": _binary("samba-tool", "samba")}
        return _ad_template(bins, seed=seed, ip=ip, layout=layout)
    if flavour == "openldap":
        bins = {"slapd": _binary("slapd", "slapd"), "slapadd": _binary("slapadd", "slapd")}
        return _openldap_template(bins, seed=seed, layout=layout)[0]
    raise InputError(f"unknown sandbox flavour {flavour!r} (expected one of: {', '.join(FLAVOURS)})")


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


def _check_ad_host(ip: str) -> None:
    if os.geteuid() != 0:
        raise InputError(
            "the AD sandbox needs root: Samba binds ports 389/636 and /etc/hosts needs dc1.hollybank.test",
            hint="run as root, or use `--flavour openldap`",
        )
    if ip != DEFAULT_IP and ip not in _local_addresses():
        raise InputError(
            f"{ip} is not on an interface; Samba only listens on configured addresses",
            hint=f"ip addr add {ip}/8 dev lo",
        )
    if ad_ports_busy(ip):
        raise InputError(
            f"something already listens on {ip}:389/636 (another AD sandbox?); one AD DC per address",
            hint="stop it with `aupctl sandbox stop --dir DIR`, or start this one with another --ip",
        )


def _local_addresses() -> set[str]:
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {part.split()[3].split("/")[0] for part in out.splitlines() if len(part.split()) > 3}


def ad_ports_busy(ip: str = DEFAULT_IP) -> bool:
    """Something (an AD sandbox?) already listens on ip:389 or ip:636."""
    return _port_open(ip, 636) or _port_open(ip, 389)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _refuse_running(root: Path) -> None:
    data = _read_state(root)
    if data is None:
        return
    pid = int(data.get("pid") or 0)
    if pid and _is_ours(pid, data.get("start_ticks")):
        raise InputError(
            f"a {data.get('flavour')} sandbox is already running in {root} (pid {pid})",
            hint=f"stop it first: aupctl sandbox stop --dir {root}",
        )


def _prepare_dir(root: Path) -> None:
    _refuse_running(root)
    data = _read_state(root)
    if data is not None:
        # A stopped sandbox: throwaway by definition, so start again from a fresh school.
        _remove_owned(root)
    elif root.exists():
        if not root.is_dir():
            raise InputError(f"sandbox directory {root} is a file")
        if any(root.iterdir()):
            raise InputError(
                f"{root} is not empty and holds no sandbox; refusing to write into it",
                hint="give an empty or new directory with --dir",
            )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)  # it holds bind.pw and a TLS key


def _remove_owned(root: Path) -> None:
    """Remove only what a sandbox creates; anything else in the directory is left alone."""
    for name in _OWNED:
        p = root / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _read_state(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {root / STATE_FILE}: {exc}") from None


def _write_state(info: SandboxInfo) -> None:
    data = info.as_dict()
    data.update(
        start_ticks=info.start_ticks,
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ca_file=str(info.ca_file) if info.ca_file else None,
        admin_dn=info.admin_dn,
    )
    tmp = info.dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(info.dir / STATE_FILE)


def _info_from_state(root: Path, data: dict[str, Any]) -> SandboxInfo:
    flavour = data["flavour"]
    admin_pw = hb.SANDBOX_ADMIN_PASSWORD
    bind_pw = hb.SANDBOX_BIND_PASSWORD if flavour == "openldap" else admin_pw
    return SandboxInfo(
        flavour=flavour,
        dir=root,
        config_path=Path(data["config"]),
        urls=list(data["urls"]),
        pid=int(data["pid"]),
        bind_dn=data["bind_dn"],
        base_dn=data["base_dn"],
        bind_password=bind_pw,
        ca_file=Path(data["ca_file"]) if data.get("ca_file") else None,
        admin_dn=data.get("admin_dn", ""),
        admin_password=admin_pw,
        ip=data.get("ip", DEFAULT_IP),
        seeded=bool(data.get("seeded", True)),
        layout=data.get("layout", DEFAULT_LAYOUT),
        start_ticks=data.get("start_ticks"),
    )


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


# --------------------------------------------------------------------------------------------------
# TLS for slapd


def _make_tls(root: Path, ip: str) -> None:
    """A throwaway CA and a server cert for localhost/127.0.0.1 (EC keys: generated in milliseconds)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=825)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hb.SCHOOL_NAME} sandbox CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    addresses = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"), ipaddress.ip_address(ip)}
    san = [x509.DNSName("localhost")] + [x509.IPAddress(a) for a in sorted(addresses, key=str)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, True, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "server.pem").write_bytes(cert.public_bytes(pem))
    key_path = root / "server.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


# --------------------------------------------------------------------------------------------------
# OpenLDAP


def _openldap_dirs() -> tuple[Path, Path]:
    """(module dir, schema dir): Debian's first, then other distributions' usual places."""
    modules = next(
        (p for p in map(Path, ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")) if p.is_dir()),
        Path("/usr/lib/ldap"),
    )
    schemas = next(
        (p for p in map(Path, ("/etc/ldap/schema", "/etc/openldap/schema")) if (p / "core.schema").exists()),
        Path("/etc/ldap/schema"),
    )
    return modules, schemas


def rfc2307bis_schema() -> str:
    """The system's nis.schema with posixGroup AUXILIARY (RFC 2307bis), plus a structural namedObject.

    slapd 2.5's nis.schema makes posixGroup STRUCTURAL, so it cannot sit beside groupOfNames (also
    STRUCTURAL). Schools that keep member and memberUid in one group load an rfc2307bis schema
    instead, where posixGroup is AUXILIARY; a group with memberUid only then needs a structural class
    of its own: namedObject (as in OpenLDAP's namedobject.schema).
    """
    _, schemas = _openldap_dirs()
    text = (schemas / "nis.schema").read_text()
    at = text.index("NAME 'posixGroup'")
    end = text.index(")\n", text.index("MUST", at))
    block = text[at:end]
    if "STRUCTURAL" not in block:
        raise UnreachableError(f"{schemas / 'nis.schema'}: posixGroup is not STRUCTURAL; cannot derive RFC 2307bis")
    text = text[:at] + block.replace("STRUCTURAL", "AUXILIARY") + text[end:]
    return (
        "# aupctl sandbox (flat layout): nis.schema with posixGroup AUXILIARY (RFC 2307bis), so a group can\n"
        "# be groupOfNames + posixGroup. Generated from this system's nis.schema; throwaway.\n\n"
        + text
        + """
objectclass ( 1.3.6.1.4.1.5427.1.389.6.20
\tNAME 'namedObject'
\tSUP top
\tSTRUCTURAL
\tMUST ( cn )
\tMAY ( uniqueIdentifier $ description ) )
"""
    )


def _slapd_conf(db_dir: Path, root: Path | None, layout: str = DEFAULT_LAYOUT, schema_file: Path | None = None) -> str:
    """slapd.conf; root=None for the template's slapadd (no TLS files, no pid file).

    schema_file: where rfc2307bis_schema() was written (flat layout only).
    """
    modules, schemas = _openldap_dirs()
    base = hb.OPENLDAP_BASE_DN
    svc = OPENLDAP_SERVICE_DN
    rootpw = _ssha(hb.SANDBOX_ADMIN_PASSWORD, b"sandbox!")
    flat = layout == "flat"
    if flat:
        lines = [f"include {schemas}/{name}.schema" for name in ("core", "cosine", "inetorgperson")]
        lines.append(f"include {schema_file}")
        people_ous: tuple[str, ...] = (hb.FLAT_PEOPLE_OU,)
        index_extra = "\nindex memberUid,uidNumber,gidNumber eq"
    else:
        lines = [f"include {schemas}/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")]
        people_ous = ("ou=Staff", "ou=Leavers")
        index_extra = ""
    lines.append(f"modulepath {modules}")
    for mod in ("back_mdb", "ppolicy"):  # 2.5: ppolicy's schema comes with the module
        if any(modules.glob(f"{mod}.*")):
            lines.append(f"moduleload {mod}")
    if root is not None:
        lines += [
            f"pidfile {root / 'slapd.pid'}",
            f"argsfile {root / 'slapd.args'}",
            f"TLSCACertificateFile {root / 'ca.pem'}",
            f"TLSCertificateFile {root / 'server.pem'}",
            f"TLSCertificateKeyFile {root / 'server.key'}",
        ]
    acl_write = "\n".join(
        f"""access to dn.subtree="{ou},{base}" attrs=userPassword
    by self write
    by dn.exact="{svc}" write
    by anonymous auth
    by * none"""
        for ou in people_ous
    )
    acl_tree = "\n".join(
        f"""access to dn.subtree="{ou},{base}"
    by dn.exact="{svc}" write
    by users read
    by * none"""
        for ou in (*people_ous, "ou=Groups")
    )
    lines.append(
        f"""
# the default is 500 entries for non-root binds; aupctl pages anyway
sizelimit unlimited

database mdb
# the default map is 10 MiB; the file is sparse, so 1 GiB costs nothing
maxsize 1073741824
suffix "{base}"
rootdn "{OPENLDAP_ROOT_DN}"
rootpw {rootpw}
directory {db_dir}
# sandbox only: no fsync per write (about 4x faster); a crash may lose the throwaway data. Never on a school's server.
dbnosync
# record pwdLastSuccess on every successful bind (2.5 core), which the stale-account audit reads
lastbind on
index objectClass eq
index uid,cn,sn,givenName,mail,employeeNumber eq,sub
index member eq{index_extra}
index entryUUID eq
limits dn.exact="{svc}" size=unlimited time=unlimited

access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
{acl_write}
access to attrs=userPassword
    by self write
    by dn.exact="{svc}" read
    by anonymous auth
    by * none
{acl_tree}
access to *
    by users read
    by * none

overlay ppolicy
ppolicy_default "cn=default,ou=policies,{base}"
ppolicy_use_lockout
ppolicy_hash_cleartext
"""
    )
    return "\n".join(lines)


def _ssha(password: str, salt: bytes) -> str:
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _user_password(storage: str, password: str, rng: random.Random) -> str:
    if storage == "cleartext":
        return password
    if storage == "md5":
        return "{MD5}" + base64.b64encode(hashlib.md5(password.encode()).digest()).decode()
    if storage == "sha":  # unsalted: equal passwords give equal hashes (planted)
        return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return _ssha(password, rng.randbytes(8))


def _ldif_attr(name: str, value: str) -> str:
    raw = value.encode("utf-8")
    unsafe = (
        not value.isascii() or value[:1] in (" ", ":", "<") or value.endswith(" ") or any(c in value for c in "\r\n\0")
    )
    if unsafe:
        return f"{name}:: {base64.b64encode(raw).decode()}"
    return f"{name}: {value}"


def _gt(when: dt.datetime) -> str:
    return when.strftime("%Y%m%d%H%M%SZ")


def _ref_time(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def openldap_ldif(seed: bool = True, today: dt.date | None = None, layout: str = DEFAULT_LAYOUT) -> str:
    """The LDIF slapadd loads: timestamps relative to `today`, so stale accounts stay stale."""
    ref = _ref_time(today or dt.datetime.now(dt.UTC).date())
    if layout == "flat":
        return _render_ldif(_flat_entries(seed, ref))
    base = hb.OPENLDAP_BASE_DN
    entries: list[tuple[str, list[tuple[str, str]]]] = [
        (
            base,
            [("objectClass", "dcObject"), ("objectClass", "organization"), ("dc", "hollybank"), ("o", hb.SCHOOL_NAME)],
        ),
    ]

    def ou(rdn: str, desc: str) -> None:
        entries.append(
            (
                f"{rdn},{base}",
                [
                    ("objectClass", "organizationalUnit"),
                    ("ou", rdn.split("=", 1)[1].split(",")[0]),
                    ("description", desc),
                ],
            )
        )

    ou("ou=Staff", "Staff accounts, by role")
    for role, name in hb.STAFF_OUS.items():
        ou(f"ou={name},ou=Staff", f"Staff: {role}")
    ou("ou=Groups", "Role and system groups")
    ou("ou=Leavers", "Disabled accounts of staff who have left")
    ou("ou=Service", "Service accounts")
    ou("ou=policies", "Password policies")
    entries += _policy_and_service(base)
    if seed:
        rng = random.Random(7)
        school = hb.school()
        for p in school.people:
            attrs = [
                ("objectClass", "inetOrgPerson"),
                ("uid", p.username),
                ("cn", p.display_name),
                ("sn", p.surname),
                ("givenName", p.given_name),
                ("displayName", p.display_name),
                ("mail", p.email),
                ("employeeNumber", p.staff_code),
                ("title", p.title),
                ("description", p.title),
                ("departmentNumber", p.department),
                ("o", hb.SCHOOL_NAME),
            ]
            entries.append((f"uid={p.username},{p.ou},{base}", attrs + _person_times(p, ref, rng)))
        dn_of = {p.username: f"uid={p.username},{p.ou},{base}" for p in school.people}
        for group, members in school.groups("openldap").items():
            gdn = f"cn={group},ou=Groups,{base}"
            # groupOfNames must have a member: the group itself stands in for "empty" (as aupctl does)
            attrs = [("objectClass", "groupOfNames"), ("cn", group), ("description", hb.group_description(group))]
            attrs += [("member", dn_of[m]) for m in members] or [("member", gdn)]
            entries.append((gdn, attrs))
    return _render_ldif(entries)


def _render_ldif(entries: list[tuple[str, list[tuple[str, str]]]]) -> str:
    out = []
    for dn, attrs in entries:
        out.append("\n".join([_ldif_attr("dn", dn)] + [_ldif_attr(a, v) for a, v in attrs]))
    return "\n\n".join(out) + "\n"


def _person_times(p: hb.Person, ref: dt.datetime, rng: random.Random) -> list[tuple[str, str]]:
    """userPassword as planted, back-dated timestamps, last bind, lock (the random draws in a fixed order)."""
    created = ref - dt.timedelta(days=p.created_days, hours=-8, minutes=-rng.randint(0, 59))
    changed = ref - dt.timedelta(days=p.password_changed_days, hours=-9, minutes=-rng.randint(0, 59))
    attrs = [
        ("userPassword", _user_password(p.storage, hb.password_for(p.username, "openldap"), rng)),
        ("createTimestamp", _gt(created)),
        ("modifyTimestamp", _gt(max(created, changed))),
        ("pwdChangedTime", _gt(changed)),
    ]
    if p.last_logon_days is not None:
        last = ref - dt.timedelta(days=p.last_logon_days, hours=-10, minutes=-rng.randint(0, 59))
        attrs.append(("pwdLastSuccess", _gt(last)))
    if p.disabled:
        attrs.append(("pwdAccountLockedTime", "000001010000Z"))  # locked for good
    return attrs


def _ou_entry(rdn: str, desc: str, base: str) -> tuple[str, list[tuple[str, str]]]:
    name = rdn.split("=", 1)[1].split(",")[0]
    return f"{rdn},{base}", [("objectClass", "organizationalUnit"), ("ou", name), ("description", desc)]


def _flat_entries(seed: bool, ref: dt.datetime) -> list[tuple[str, list[tuple[str, str]]]]:
    """The flat layout: ou=People (leavers in ou=Former,ou=People), posix people, posixGroup groups."""
    from ldap3.utils.dn import escape_rdn

    base = hb.OPENLDAP_BASE_DN
    entries: list[tuple[str, list[tuple[str, str]]]] = [
        (
            base,
            [("objectClass", "dcObject"), ("objectClass", "organization"), ("dc", "hollybank"), ("o", hb.SCHOOL_NAME)],
        ),
        _ou_entry(hb.FLAT_PEOPLE_OU, "Everyone: staff, governors, accounts made by hand", base),
        _ou_entry(hb.FLAT_LEAVERS_OU, "Former staff (accounts locked)", base),
        _ou_entry(hb.FLAT_GROUPS_OU, "Groups (posixGroup)", base),
        _ou_entry(hb.FLAT_SYSTEMS_OU, "Access to the school's systems", base),
        _ou_entry("ou=Service", "Service accounts", base),
        _ou_entry("ou=policies", "Password policies", base),
    ]
    entries += _policy_and_service(base)
    if not seed:
        return entries
    rng = random.Random(7)
    school = hb.school("flat")
    gids = hb.flat_gid_numbers()
    for p in school.people:
        dn = person_dn(p.username, "openldap", "flat")
        made_by_hand = hb.is_hand_made(p.username)
        attrs = [("objectClass", "inetOrgPerson"), ("objectClass", "posixAccount"), ("uid", p.username)]
        attrs += [("cn", p.display_name), ("sn", p.surname), ("givenName", p.given_name)]
        if not made_by_hand:  # no mail, no staff code, no title: someone typed the bare minimum
            attrs += [
                ("displayName", p.display_name),
                ("mail", p.email),
                ("employeeNumber", p.staff_code),
                ("title", p.title),
                ("description", p.title),
                ("departmentNumber", p.department),
                ("o", hb.SCHOOL_NAME),
            ]
        attrs += [
            ("uidNumber", str(hb.flat_uid_number(p.username))),
            ("gidNumber", str(hb.FLAT_STAFF_GID)),
            ("homeDirectory", hb.FLAT_HOME.format(username=p.username)),
            ("loginShell", "/usr/sbin/nologin" if p.leaver else hb.FLAT_SHELL),
        ]
        entries.append((dn, attrs + _person_times(p, ref, rng)))
    for group, members in school.groups("openldap").items():
        gdn = f"cn={escape_rdn(group)},{hb.flat_group_ou(group)},{base}"
        bis = group in hb.FLAT_RFC2307BIS
        structural = "groupOfNames" if bis else "namedObject"
        attrs = [("objectClass", structural), ("objectClass", "posixGroup"), ("cn", group)]
        attrs += [("gidNumber", str(gids[group])), ("description", hb.group_description_flat(group))]
        attrs += [("memberUid", m) for m in members]
        if bis:  # RFC 2307bis: the same people by DN; an empty groupOfNames lists itself
            attrs += [("member", person_dn(m, "openldap", "flat")) for m in members] or [("member", gdn)]
        entries.append((gdn, attrs))
    return entries


def _policy_and_service(base: str) -> list[tuple[str, list[tuple[str, str]]]]:
    entries: list[tuple[str, list[tuple[str, str]]]] = []
    entries.append(
        (
            f"cn=default,ou=policies,{base}",
            [
                ("objectClass", "pwdPolicy"),
                ("objectClass", "device"),
                ("cn", "default"),
                ("pwdAttribute", "userPassword"),
                ("pwdMinLength", "12"),
                ("pwdCheckQuality", "1"),
                ("pwdMaxAge", "0"),  # NCSC: no forced expiry
                ("pwdInHistory", "5"),
                ("pwdAllowUserChange", "TRUE"),
                ("pwdMustChange", "TRUE"),  # an admin reset sets pwdReset: the user must choose their own
                ("pwdLockout", "TRUE"),  # needed for pwdAccountLockedTime (disable) to refuse binds
                ("pwdMaxFailure", "10"),
                ("pwdLockoutDuration", "300"),
                ("pwdFailureCountInterval", "300"),
            ],
        )
    )
    entries.append(
        (
            OPENLDAP_SERVICE_DN,
            [
                ("objectClass", "applicationProcess"),
                ("objectClass", "simpleSecurityObject"),
                ("cn", "aupctl"),
                ("description", "aupctl service account: reads everything, writes Staff, Leavers and Groups"),
                ("userPassword", _ssha(hb.SANDBOX_BIND_PASSWORD, b"service!")),
            ],
        )
    )
    return entries


def _openldap_template(bins: dict[str, str], *, seed: bool, layout: str = DEFAULT_LAYOUT) -> tuple[Path, str]:
    """(template dir holding db/data.mdb, the index/conf fingerprint). Rebuilt daily (timestamps)."""
    ldif = openldap_ldif(seed, layout=layout)
    schema = rfc2307bis_schema() if layout == "flat" else None
    probe_conf = _slapd_conf(Path("/DB"), None, layout, Path("/SCHEMA"))
    parts = [_TEMPLATE_FORMAT, ldif, probe_conf, _file_stamp(bins["slapadd"])]
    if layout != DEFAULT_LAYOUT:  # the standard key stays as it was, so existing caches stay valid
        parts += [layout, schema or ""]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    kind = "openldap-school" if seed else "openldap-empty"
    if layout != DEFAULT_LAYOUT:
        kind = f"openldap-{layout}-{'school' if seed else 'empty'}"
    name = f"{kind}-{key}"
    with _locked(kind) as cache:
        final = cache / name
        if (final / "db" / "data.mdb").exists():
            return final, key
        build = Path(tempfile.mkdtemp(prefix=f".build-{kind}-", dir=cache))
        try:
            (build / "db").mkdir()
            conf = build / "slapd.conf"
            if schema is not None:
                (build / RFC2307BIS_SCHEMA).write_text(schema)
            conf.write_text(_slapd_conf(build / "db", None, layout, build / RFC2307BIS_SCHEMA))
            (build / "seed.ldif").write_text(ldif, encoding="utf-8")
            # -q: skip consistency checks (fast); slapadd writes the mdb directly, so planted cleartext
            # and unsalted hashes stay as given and operational timestamps are ours.
            res = subprocess.run(
                [bins["slapadd"], "-q", "-f", str(conf), "-l", str(build / "seed.ldif")],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if res.returncode != 0:
                raise UnreachableError(f"slapadd could not load the sandbox school: {res.stderr.strip()[-600:]}")
            (build / "seed.ldif").unlink()
            build.rename(final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _prune(cache, kind + "-", name)
        return final, key


def _start_openldap(
    root: Path, bins: dict[str, str], *, detach: bool, seed: bool, ip: str, timeout: float, layout: str
) -> SandboxInfo:
    template, _ = _openldap_template(bins, seed=seed, layout=layout)
    (root / "db").mkdir(mode=0o700)
    _copy_sparse(template / "db" / "data.mdb", root / "db" / "data.mdb")
    _make_tls(root, ip)
    if layout == "flat":  # the schema the template was loaded with (copied: the template may be pruned)
        shutil.copyfile(template / RFC2307BIS_SCHEMA, root / RFC2307BIS_SCHEMA)
    conf = root / "slapd.conf"
    conf.write_text(_slapd_conf(root / "db", root, layout, root / RFC2307BIS_SCHEMA))
    conf.chmod(0o600)  # holds the rootpw hash
    log = root / "slapd.log"
    proc: subprocess.Popen | None = None
    try:
        for _attempt in range(5):
            port, sport = _free_port(ip), _free_port(ip)
            if port == sport:
                continue
            urls = [f"ldaps://{ip}:{sport}", f"ldap://{ip}:{port}"]
            # -d none: stay in the foreground and log only what slapd always logs (errors, start, stop)
            argv = [bins["slapd"], "-f", str(conf), "-h", f"ldap://{ip}:{port}/ ldaps://{ip}:{sport}/", "-d", "none"]
            proc = _spawn(argv, root, log, detach=detach)
            if _wait_openldap(proc, ip, port, sport, timeout):
                break
            _end_popen(proc)
            if "errno=98" not in _log_tail(log, 20):  # not a lost race for a free port: a real failure
                raise UnreachableError(f"slapd did not start in {root}:\n{_log_tail(log)}")
        else:
            raise UnreachableError(f"slapd could not get free ports on {ip}:\n{_log_tail(log)}")
        info = SandboxInfo(
            flavour="openldap",
            dir=root,
            config_path=root / CONFIG_FILE,
            urls=urls,
            pid=proc.pid,
            bind_dn=OPENLDAP_SERVICE_DN,
            base_dn=hb.OPENLDAP_BASE_DN,
            bind_password=hb.SANDBOX_BIND_PASSWORD,
            ca_file=root / "ca.pem",
            admin_dn=OPENLDAP_ROOT_DN,
            admin_password=hb.SANDBOX_ADMIN_PASSWORD,
            ip=ip,
            seeded=seed,
            layout=layout,
            process=None if detach else proc,
            start_ticks=_ticks(proc.pid),
        )
        if detach:
            _keep_detached(proc)
        _write_files(info, url=urls[0], ca_file="ca.pem", seed=seed)
        _write_state(info)
        return info
    except BaseException:
        if proc is not None:
            _end_popen(proc)
        raise


def _wait_openldap(proc: subprocess.Popen, ip: str, port: int, sport: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _ldap_answers(ip, port) and _port_open(ip, sport):
            return True
        time.sleep(0.005)
    return False


def _ticks(pid: int) -> int | None:
    st = _proc_stat(pid)
    return st[1] if st else None


# --------------------------------------------------------------------------------------------------
# Samba AD DC


def _samba_conf_options(root: Path, ip: str) -> list[str]:
    return [
        f"interfaces={ip}",
        "bind interfaces only=yes",
        f"pid directory={root}/run",
        f"ncalrpc dir={root}/run/ncalrpc",
        f"winbindd socket directory={root}/run/winbindd",
        f"ntp signd socket directory={root}/run/ntp_signd",
        f"log file={root}/log/samba.log",
        # LDAP, Kerberos and RPC only: no smbd/winbindd/dns to need or to fail
        "server services=ldap cldap kdc rpc",
        "prefork children=1",
    ]


def _ensure_hosts(ip: str, hosts: Path = Path("/etc/hosts")) -> None:
    """Map dc1.hollybank.test to ip in /etc/hosts (idempotent), so strict TLS to the DC's name works."""
    names = {AD_HOST, "dc1"}
    try:
        lines = hosts.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    wanted = f"{ip} {AD_HOST} dc1"
    keep: list[str] = []
    done = False
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if AD_HOST in fields[1:]:
            if fields[0] == ip and not done:
                keep.append(line)
                done = True
                continue
            others = [f for f in fields[1:] if f not in names]
            if others:  # someone else's line: take only our name out of it
                keep.append(" ".join([fields[0], *others]))
            continue
        keep.append(line)
    if not done:
        keep.append(wanted)
    if keep != lines:
        # Written in place, not renamed over: /etc/hosts is often a bind mount in containers.
        with open(hosts, "w") as fh:
            fh.write("\n".join(keep) + "\n")


def _samba_version_stamp(bins: dict[str, str]) -> str:
    return _file_stamp(bins["samba"]) + _file_stamp(bins["samba-tool"])


def _copy_samba_tree(src: Path, dst: Path, ip: str) -> None:
    """Copy a provisioned DC and point its smb.conf at the copy (0.1 s instead of 3.4 s to provision)."""

    def skip(folder: str, names: list[str]) -> list[str]:
        out = []
        for n in names:
            mode = os.lstat(os.path.join(folder, n)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                out.append(n)  # sockets (ldapi, ncalrpc) belong to a running server
        return out

    dst.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(src):
        s, d = src / name, dst / name
        if name in ("run", "log", "template.json"):
            continue
        if s.is_dir():
            shutil.copytree(s, d, symlinks=True, ignore=skip)
        elif s.is_file():
            shutil.copy2(s, d)
    for sub in ("run", "log"):
        (dst / sub).mkdir(exist_ok=True)
    conf = dst / "etc" / "smb.conf"
    text = conf.read_text()
    old = next(line.split("=", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("lock directory"))
    out = []
    for line in text.replace(old, str(dst)).splitlines():
        if line.strip().startswith(("interfaces =", "old password allowed period =")):
            continue
        out.append(line)
        if line.strip() == "[global]":
            out.append(f"\tinterfaces = {ip}")
            # By default Samba lets the old password keep binding for 60 minutes after a change or
            # reset (NTLM's grace period, which it applies to LDAP simple binds); 0: a reset takes
            # effect at once, so a test or the demo sees the change it made.
            out.append("\told password allowed period = 0")
    conf.write_text("\n".join(out) + "\n")


def _samba_argv(bins: dict[str, str], root: Path, *, detach: bool) -> list[str]:
    argv = [bins["samba"], "-M", "single", "-s", str(root / "etc" / "smb.conf")]
    if detach:
        # -F (foreground, not interactive) does not watch stdin, unlike -i, which ends at EOF; verified.
        return argv + ["-F"]
    # -i with stdin a pipe we hold: samba ends when its owner does, even if the owner is killed.
    return argv + ["-i", "--maximum-runtime=86400"]


def _ad_tls(root: Path) -> Any:
    import ssl

    from ldap3 import Tls

    return Tls(ca_certs_file=str(root / "private" / "tls" / "ca.pem"), validate=ssl.CERT_REQUIRED)


def _ad_wait(proc: subprocess.Popen, root: Path, timeout: float) -> Any:
    """Wait for a strict-TLS admin bind (certs appear at first start); returns the bound connection."""
    from ldap3 import Connection, Server

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UnreachableError(
                f"samba exited (status {proc.returncode}) in {root}:\n{_log_tail(root / 'log' / 'samba.out')}"
            )
        if (root / "private" / "tls" / "ca.pem").exists():
            try:
                server = Server(f"ldaps://{AD_HOST}", tls=_ad_tls(root), connect_timeout=2)
                return Connection(server, AD_ADMIN_DN, hb.SANDBOX_ADMIN_PASSWORD, auto_bind=True, receive_timeout=30)
            except Exception as exc:  # noqa: BLE001 - not up yet; keep the reason for the timeout message
                last = str(exc)
        time.sleep(0.05)
    raise UnreachableError(f"the Samba AD DC in {root} did not answer in {timeout:.0f} s: {last}")


def _ad_run(bins: dict[str, str], root: Path, timeout: float = 60.0) -> tuple[subprocess.Popen, Any]:
    proc = _spawn(
        _samba_argv(bins, root, detach=False), root, root / "log" / "samba.out", detach=False, keep_stdin=True
    )
    try:
        return proc, _ad_wait(proc, root, timeout)
    except BaseException:
        _end_popen(proc)
        raise


def _ad_base_template(bins: dict[str, str], ip: str) -> Path:
    """Provisioned and started once (Samba makes its TLS CA and cert at first start)."""
    key = hashlib.sha256((_TEMPLATE_FORMAT + _samba_version_stamp(bins)).encode()).hexdigest()[:16]
    kind = "ad-base"
    name = f"{kind}-{key}"
    with _locked(kind) as cache:
        final = cache / name
        if (final / "etc" / "smb.conf").exists():
            return final
        build = Path(tempfile.mkdtemp(prefix=f".build-{kind}-", dir=cache))
        try:
            for sub in ("run", "log"):
                (build / sub).mkdir()
            argv = [
                bins["samba-tool"],
                "domain",
                "provision",
                f"--targetdir={build}",
                f"--realm={hb.REALM}",
                f"--domain={hb.NETBIOS_DOMAIN}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--adminpass={hb.SANDBOX_ADMIN_PASSWORD}",
                "--use-rfc2307",
                "--host-name=dc1",
                f"--host-ip={ip}",
            ] + [f"--option={o}" for o in _samba_conf_options(build, ip)]
            # adminpass on argv: a published sandbox constant, not a secret.
            res = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
            if res.returncode != 0:
                raise UnreachableError(f"samba-tool domain provision failed: {(res.stderr or res.stdout)[-800:]}")
            proc, conn = _ad_run(bins, build)
            conn.unbind()
            _end_popen(proc)
            _finish_samba_template(build, final, ip)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _prune(cache, kind + "-", name)
        return final


def _finish_samba_template(build: Path, final: Path, ip: str) -> None:
    """Point the built tree's smb.conf at its final place, then move it there atomically."""
    conf = build / "etc" / "smb.conf"
    conf.write_text(conf.read_text().replace(str(build), str(final)))
    for sub in ("run", "log"):
        shutil.rmtree(build / sub, ignore_errors=True)
        (build / sub).mkdir()
    build.rename(final)


def _ad_bucket(today: dt.date | None = None) -> dt.date:
    today = today or dt.datetime.now(dt.UTC).date()
    return dt.date.fromordinal(today.toordinal() // _AD_TEMPLATE_DAYS * _AD_TEMPLATE_DAYS)


def _school_fingerprint(layout: str = DEFAULT_LAYOUT) -> str:
    s = hb.school(layout)
    facts: tuple = (s.people, s.members, s.nested, hb.PASSWORDS)
    if layout != DEFAULT_LAYOUT:  # the standard key stays as it was, so existing caches stay valid
        facts += (layout, hb.pupils(), hb.HAND_MADE, [hb.person_ou(p, layout) for p in s.people], _AD_NESTED_FORMAT)
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:16]


def _ad_template(bins: dict[str, str], *, seed: bool, ip: str, layout: str = DEFAULT_LAYOUT) -> Path:
    _ensure_hosts(ip)
    bucket = _ad_bucket()
    base = _ad_base_template(bins, ip)
    kind = "ad-school" if seed else "ad-empty"
    if layout != DEFAULT_LAYOUT:
        kind = f"ad-{layout}-{'school' if seed else 'empty'}"
    parts = [_TEMPLATE_FORMAT, base.name, _school_fingerprint(layout) if seed else "", bucket.isoformat()]
    if layout != DEFAULT_LAYOUT:
        parts.append(layout)
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    name = f"{kind}-{key}"
    with _locked(kind) as cache:
        final = cache / name
        if (final / "etc" / "smb.conf").exists():
            return final
        build = Path(tempfile.mkdtemp(prefix=f".build-{kind}-", dir=cache))
        try:
            _copy_samba_tree(base, build, ip)
            proc, conn = _ad_run(bins, build)
            try:
                created = _ad_seed(conn, seed=seed, ref=_ref_time(bucket), layout=layout)
            finally:
                with contextlib.suppress(Exception):
                    conn.unbind()
                _end_popen(proc)
            if created:
                _ad_backdate(build, created)
            _finish_samba_template(build, final, ip)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        _prune(cache, kind + "-", name)
        return final


def _filetime(when: dt.datetime) -> str:
    return str(int((when - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000))


def _ad_ok(conn: Any, what: str, ok: bool) -> None:
    if not ok:
        raise UnreachableError(
            f"seeding the AD sandbox failed at {what}: {conn.result.get('description')} {conn.result.get('message')}"
        )


def _ad_seed(conn: Any, *, seed: bool, ref: dt.datetime, layout: str = DEFAULT_LAYOUT) -> dict[str, str]:
    """OUs, then (seed) people, groups and Domain Admins. Returns dn -> whenCreated to backdate."""
    from ldap3 import MODIFY_ADD
    from ldap3.utils.dn import escape_rdn

    if layout == "nested":
        return _ad_seed_nested(conn, seed=seed, ref=ref)

    base = hb.AD_BASE_DN
    ous = ["OU=Staff"] + [f"OU={name},OU=Staff" for name in hb.STAFF_OUS.values()] + ["OU=Groups", "OU=Leavers"]
    for ou in ous:
        _ad_ok(conn, ou, conn.add(f"{ou},{base}", "organizationalUnit"))
    if not seed:
        return {}
    school = hb.school()
    rng = random.Random(11)
    dn_of: dict[str, str] = {}
    created: dict[str, str] = {}
    for p in school.people:
        ou_dn = ",".join(part.replace("ou=", "OU=", 1) for part in p.ou.split(","))
        dn = f"CN={escape_rdn(p.display_name)},{ou_dn},{base}"
        attrs: dict[str, Any] = {
            "sAMAccountName": p.username,
            "userPrincipalName": f"{p.username}@{hb.DOMAIN}",
            "givenName": p.given_name,
            "sn": p.surname,
            "displayName": p.display_name,
            "mail": p.email,
            "employeeNumber": p.staff_code,
            "title": p.title,
            "description": p.title,
            "department": p.department,
            "company": hb.SCHOOL_NAME,
            "unicodePwd": f'"{hb.password_for(p.username, "ad")}"'.encode("utf-16-le"),
            "userAccountControl": str(p.uac),
        }
        if p.last_logon_days is not None:
            # Samba lets an administrator write lastLogonTimestamp, so stale accounts can be planted.
            last = ref - dt.timedelta(days=p.last_logon_days, hours=-10, minutes=-rng.randint(0, 59))
            attrs["lastLogonTimestamp"] = _filetime(last)
        _ad_ok(conn, p.username, conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs))
        dn_of[p.username] = dn
        when = ref - dt.timedelta(days=p.created_days, hours=-8, minutes=-rng.randint(0, 59))
        created[dn] = when.strftime("%Y%m%d%H%M%S.0Z")
    members = school.groups("ad")
    nested = school.nested["ad"]
    group_dn = {g: f"CN={escape_rdn(g)},OU=Groups,{base}" for g in members}
    # Groups that are members of others first, so the outer group can list them at creation.
    order = sorted(members, key=lambda g: 0 if any(g in inner for inner in nested.values()) else 1)
    for g in order:
        attrs = {"description": hb.group_description(g), "sAMAccountName": g.replace(" ", "_")[:20]}
        member = [dn_of[u] for u in members[g]] + [group_dn[n] for n in nested.get(g, ())]
        if member:
            attrs["member"] = member
        _ad_ok(conn, g, conn.add(group_dn[g], "group", attrs))
    admins = [dn_of[u] for u in hb.AD_DOMAIN_ADMINS]
    _ad_ok(conn, "Domain Admins", conn.modify(hb.AD_DOMAIN_ADMINS_DN, {"member": [(MODIFY_ADD, admins)]}))
    return created


def _ad_person_attrs(p: hb.Person, ref: dt.datetime, rng: random.Random) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "sAMAccountName": p.username,
        "userPrincipalName": f"{p.username}@{hb.DOMAIN}",
        "givenName": p.given_name,
        "sn": p.surname,
        "unicodePwd": f'"{hb.password_for(p.username, "ad")}"'.encode("utf-16-le"),
        "userAccountControl": str(p.uac),
    }
    if not hb.is_hand_made(p.username):  # made by hand: no mail, no employee number, no post
        attrs.update(
            displayName=p.display_name,
            mail=p.email,
            employeeNumber=p.staff_code,
            title=p.title,
            description=p.title,
            department=p.department,
            company=hb.SCHOOL_NAME,
        )
    if p.last_logon_days is not None:
        last = ref - dt.timedelta(days=p.last_logon_days, hours=-10, minutes=-rng.randint(0, 59))
        attrs["lastLogonTimestamp"] = _filetime(last)
    return attrs


_PUPIL_YEARS = ("Reception", "Year 1", "Year 2", "Year 3", "Year 4", "Year 5", "Year 6")


def _ad_seed_nested(conn: Any, *, seed: bool, ref: dt.datetime) -> dict[str, str]:
    """The nested layout: OUs per site and department, system groups under OU=Applications, 2,000
    pupils in one group (no passwords: about 4.6 ms each instead of 21), three-level nesting."""
    from ldap3 import MODIFY_ADD
    from ldap3.utils.dn import escape_rdn

    base = hb.AD_BASE_DN
    rel_ous = ["ou=Staff", *hb.NESTED_ROLE_OUS.values()]
    for site in hb.NESTED_SITES:
        rel_ous.append(f"ou={site},ou=Staff")
        rel_ous += [f"ou={dept},ou={site},ou=Staff" for dept in hb.NESTED_DEPARTMENTS.values()]
    rel_ous += [hb.NESTED_LEAVERS_OU, hb.NESTED_GROUPS_OU, "ou=Applications"]
    rel_ous += sorted(set(hb.NESTED_SYSTEM_OUS.values()))
    rel_ous += [hb.NESTED_PUPILS_OU] + [f"ou={y},{hb.NESTED_PUPILS_OU}" for y in _PUPIL_YEARS]
    for ou in rel_ous:
        _ad_ok(conn, ou, conn.add(f"{_ad_dn(ou)},{base}", "organizationalUnit"))
    if not seed:
        return {}
    school = hb.school("nested")
    rng = random.Random(11)
    dn_of: dict[str, str] = {}
    created: dict[str, str] = {}
    for p in school.people:
        dn = person_dn(p.username, "ad", "nested")
        _ad_ok(
            conn,
            p.username,
            conn.add(dn, ["top", "person", "organizationalPerson", "user"], _ad_person_attrs(p, ref, rng)),
        )
        dn_of[p.username] = dn
        when = ref - dt.timedelta(days=p.created_days, hours=-8, minutes=-rng.randint(0, 59))
        created[dn] = when.strftime("%Y%m%d%H%M%S.0Z")
    for username, given, surname, year in hb.pupils():
        ou = f"OU={_PUPIL_YEARS[year]},{_ad_dn(hb.NESTED_PUPILS_OU)},{base}"
        dn = f"CN={escape_rdn(f'{given} {surname} ({username})')},{ou}"
        attrs = {
            "sAMAccountName": username,
            "userPrincipalName": f"{username}@{hb.DOMAIN}",
            "givenName": given,
            "sn": surname,
            "displayName": f"{given} {surname}",
            "description": f"Pupil ({_PUPIL_YEARS[year]})",
            # disabled, and no password: pupils sign in elsewhere; PASSWD_NOTREQD is not planted here
            "userAccountControl": str(hb.UAC_NORMAL_ACCOUNT | hb.UAC_ACCOUNTDISABLE),
        }
        _ad_ok(conn, username, conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs))
        dn_of[username] = dn
    members = school.groups("ad")
    nested = school.nested["ad"]
    group_dn = {g: f"CN={escape_rdn(g)},{_ad_dn(hb.nested_group_ou(g))},{base}" for g in members}

    def depth(g: str) -> int:
        return 1 + max((depth(n) for n in nested.get(g, ())), default=-1)

    # Inner groups first, so each outer group can list its member groups when it is created.
    for g in sorted(members, key=depth):
        attrs = {"description": hb.group_description(g), "sAMAccountName": g.replace(" ", "_")[:20]}
        member = [dn_of[u] for u in members[g]] + [group_dn[n] for n in nested.get(g, ())]
        if member:
            attrs["member"] = member
        _ad_ok(conn, g, conn.add(group_dn[g], "group", attrs))
    admins = [dn_of[u] for u in hb.AD_DOMAIN_ADMINS]
    _ad_ok(conn, "Domain Admins", conn.modify(hb.AD_DOMAIN_ADMINS_DN, {"member": [(MODIFY_ADD, admins)]}))
    return created


# Run by the system python3 (Samba's own bindings): whenCreated is system-only over LDAP, but the
# system session may write it offline. Reads {dn: generalized time} from stdin.
_BACKDATE = """
import json, sys, ldb
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
lp = LoadParm(); lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
for dn, when in json.load(sys.stdin).items():
    m = ldb.Message(); m.dn = ldb.Dn(db, dn)
    m["whenCreated"] = ldb.MessageElement(when, ldb.FLAG_MOD_REPLACE, "whenCreated")
    db.modify(m)
"""


def _ad_backdate(root: Path, created: dict[str, str]) -> None:
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
    res = subprocess.run(
        [python, "-c", _BACKDATE, str(root / "etc" / "smb.conf"), str(root / "private" / "sam.ldb")],
        input=json.dumps(created),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if res.returncode != 0:
        raise UnreachableError(f"could not set whenCreated in the AD template: {res.stderr.strip()[-600:]}")


def _start_ad(
    root: Path, bins: dict[str, str], *, detach: bool, seed: bool, ip: str, timeout: float, layout: str
) -> SandboxInfo:
    template = _ad_template(bins, seed=seed, ip=ip, layout=layout)
    _copy_samba_tree(template, root, ip)
    _ensure_hosts(ip)
    log = root / "log" / "samba.out"
    proc = _spawn(_samba_argv(bins, root, detach=detach), root, log, detach=detach, keep_stdin=not detach)
    try:
        conn = _ad_wait(proc, root, timeout)
        conn.unbind()
        info = SandboxInfo(
            flavour="ad",
            dir=root,
            config_path=root / CONFIG_FILE,
            urls=[f"ldaps://{AD_HOST}", f"ldap://{AD_HOST}"],
            pid=proc.pid,
            bind_dn=AD_ADMIN_DN,
            base_dn=hb.AD_BASE_DN,
            bind_password=hb.SANDBOX_ADMIN_PASSWORD,
            ca_file=root / "private" / "tls" / "ca.pem",
            admin_dn=AD_ADMIN_DN,
            admin_password=hb.SANDBOX_ADMIN_PASSWORD,
            ip=ip,
            seeded=seed,
            layout=layout,
            process=None if detach else proc,
            start_ticks=_ticks(proc.pid),
        )
        if detach:
            _keep_detached(proc)
        _write_files(info, url=info.urls[0], ca_file="private/tls/ca.pem", seed=seed)
        _write_state(info)
        return info
    except BaseException:
        _end_popen(proc)
        raise


# --------------------------------------------------------------------------------------------------
# aupctl.toml and the data files


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _qlist(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _layout_shape(flavour: str, layout: str) -> dict[str, Any]:
    """What the config says about where things are: OUs, privileged groups, roles, system groups."""
    ad = flavour == "ad"
    base = hb.AD_BASE_DN if ad else hb.OPENLDAP_BASE_DN
    if layout == "flat":
        return {
            "ous": (hb.FLAT_PEOPLE_OU, hb.FLAT_LEAVERS_OU, hb.FLAT_GROUPS_OU),
            "privileged": [hb.FLAT_IT_ADMINS],
            # roles known by group only: no ou (new accounts go to staff_ou)
            "roles": [(role, None, hb.FLAT_ROLE_GROUPS[role]) for role in hb.STAFF_OUS],
            "group": {k: f"cn={g},{hb.FLAT_SYSTEMS_OU},{base}" for k, g in hb.FLAT_SYSTEM_GROUPS.items()},
        }
    if layout == "nested":
        # Governors all sit in one OU, so that role keeps an ou; the others are spread over sites.
        roles = [(role, _ad_dn(hb.NESTED_ROLE_OUS["governor"]) if role == "governor" else None, hb.ROLE_GROUPS[role])
                 for role in hb.STAFF_OUS]  # fmt: skip
        group = {
            k: f"CN={s['group']},{_ad_dn(hb.NESTED_SYSTEM_OUS[k])},{base}" for k, s in hb.SYSTEMS.items() if s["group"]
        }
        return {
            "ous": tuple(_ad_dn(o) for o in (hb.NESTED_STAFF_OU, hb.NESTED_LEAVERS_OU, hb.NESTED_GROUPS_OU)),
            "privileged": [hb.IT_ADMINS, hb.AD_DOMAIN_ADMINS_DN],
            "roles": roles,
            "group": group,
        }
    return {
        "ous": ("ou=Staff", "ou=Leavers", "ou=Groups"),
        "privileged": [hb.IT_ADMINS, hb.AD_DOMAIN_ADMINS_DN] if ad else [hb.IT_ADMINS],
        "roles": [(role, f"ou={ou},ou=Staff", hb.ROLE_GROUPS[role]) for role, ou in hb.STAFF_OUS.items()],
        "group": {k: s["group"] for k, s in hb.SYSTEMS.items() if s["group"]},
    }


def config_toml(flavour: str, *, url: str, ca_file: str, bind_dn: str, layout: str = DEFAULT_LAYOUT) -> str:
    """The sandbox's aupctl.toml (relative paths are relative to the file's directory)."""
    ad = flavour == "ad"
    base = hb.AD_BASE_DN if ad else hb.OPENLDAP_BASE_DN
    shape = _layout_shape(flavour, layout)
    staff_ou, leavers_ou, groups_ou = shape["ous"]
    privileged = shape["privileged"]
    what = flavour if layout == DEFAULT_LAYOUT else f"{flavour}, layout {layout}"
    out = [
        f"# aupctl sandbox ({what}): {hb.SCHOOL_NAME}, a fictional school. Throwaway; see docs/sandbox.md.",
        "",
        "[school]",
        f"name = {_q(hb.SCHOOL_NAME)}",
        f"aup_version = {_q(hb.AUP_VERSION)}",
        "",
        "[directory]",
        f"flavour = {_q(flavour)}",
        f"url = {_q(url)}",
        f"ca_file = {_q(ca_file)}",
        f"bind_dn = {_q(bind_dn)}",
        f"bind_password_file = {_q(BIND_PW_FILE)}",
        f"base_dn = {_q(base)}",
        f"staff_ou = {_q(staff_ou)}",
        f"leavers_ou = {_q(leavers_ou)}",
        f"groups_ou = {_q(groups_ou)}",
        "timeout = 5",
        f"privileged_groups = {_qlist(privileged)}",
        *([] if ad else ['placeholder_member = "cn=nobody,ou=Groups"  # stands in for an empty groupOfNames']),
        "",
        "[accounts]",
        'username = "{first_initial}{last_name}"',
        "max_length = 20",
        f'email = "{{username}}@{hb.DOMAIN}"',
    ]
    if ad:
        out.append(f"upn_suffix = {_q(hb.DOMAIN)}")
    for role, ou, groups in shape["roles"]:
        out += ["", f"[roles.{role}]"]
        if ou is not None:
            out.append(f"ou = {_q(ou)}")
        out += [f"groups = {_qlist(groups)}", f"systems = {_qlist(hb.ROLE_SYSTEMS[role])}"]
    for key, system in hb.SYSTEMS.items():
        out += ["", f"[systems.{key}]", f"name = {_q(system['name'])}"]
        if key in shape["group"]:
            out.append(f"group = {_q(shape['group'][key])}")
        out.append(f"approvers = {_qlist(system['approvers'])}")
        if "review_days" in system:
            out.append(f"review_days = {system['review_days']}")
        if system.get("instructions"):
            out.append(f"instructions = {_q(system['instructions'])}")
    out += [
        "",
        "[passwords]",
        "max_age_days = 0",
        "min_length = 12",
        "stale_after_days = 90",
        "initial_grace_days = 14",
        'shared_account_patterns = ["supply*", "*.shared", "office", "staffroom*"]',
        'deny_words = ["hollybank", "password", "welcome", "letmein", "school"]',
        "",
        "[laptops]",
        'ssh_user = "aupctl"',
        'known_hosts = "known_hosts"',
        "checkin_every_days = 90",
        "max_pending_updates = 0",
        "max_signature_age_days = 7",
        "require_encryption = true",
        'approved_software = ["Microsoft Office", "Google Chrome", "Mozilla Firefox", "SIMS", '
        '"Sophos Endpoint", "Smart Notebook", "VLC media player", "7-Zip"]',
        "parallel = 20",
        "connect_timeout = 10",
        "",
        "[[licences]]",
        'product = "Microsoft Office"',
        'match = ["Microsoft Office*", "Microsoft 365*"]',
        "seats = 40",
        'expires = "2027-08-31"',
        "",
        "[[licences]]",
        'product = "Smart Notebook"',
        'match = ["SMART Notebook*", "Smart Notebook*"]',
        "seats = 20",
        "",
        "[state]",
        'path = "state.db"',
        "# The sandbox's own audit key and checkpoints, so a new sandbox in this folder starts a new record",
        'audit_key_file = "audit.key"',
        'checkpoints = "checkpoints.jsonl"',
        "",
    ]
    return "\n".join(out)


def _write_files(info: SandboxInfo, *, url: str, ca_file: str, seed: bool) -> None:
    root = info.dir
    pw = root / BIND_PW_FILE
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info.bind_password + "\n")
    pw.chmod(0o600)
    (root / CONFIG_FILE).write_text(
        config_toml(info.flavour, url=url, ca_file=ca_file, bind_dn=info.bind_dn, layout=info.layout),
        encoding="utf-8",
    )
    if seed:
        (root / "aup-signatures.csv").write_text(hb.signatures_csv(info.layout), encoding="utf-8")
        (root / "intake.csv").write_text(hb.intake_csv(), encoding="utf-8")
