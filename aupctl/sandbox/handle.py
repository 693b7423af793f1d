"""The sandbox handle (SandboxInfo), its constants and its state file DIR/sandbox.json; stop()."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from ..errors import (
    InputError,
)
from . import school as hb
from .process import (
    _DETACHED,
    _end_pid,
    _end_popen,
    _is_ours,
)

FLAVOURS = ("openldap", "ad")
LAYOUTS = hb.LAYOUTS
DEFAULT_LAYOUT = hb.DEFAULT_LAYOUT
RFC2307BIS_SCHEMA = "rfc2307bis.schema"  # the flat layout's nis.schema with posixGroup AUXILIARY
STATE_FILE = "sandbox.json"
CONFIG_FILE = "aupctl.toml"
BIND_PW_FILE = "bind.pw"
AD_HOST = f"dc1.{hb.DOMAIN}"
DEFAULT_IP = "127.0.0.1"

OPENLDAP_SERVICE_DN = f"cn=aupctl,ou=Service,{hb.OPENLDAP_BASE_DN}"
OPENLDAP_ROOT_DN = f"cn=admin,{hb.OPENLDAP_BASE_DN}"
AD_ADMIN_DN = f"CN=Administrator,CN=Users,{hb.AD_BASE_DN}"
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
    layout: str = DEFAULT_LAYOUT  # sandbox.school.LAYOUTS[flavour]
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


@atexit.register
def _stop_attached() -> None:
    for info in list(_ATTACHED.values()):
        with contextlib.suppress(Exception):
            info.stop()


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
