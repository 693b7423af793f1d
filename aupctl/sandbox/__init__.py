"""A throwaway slapd or Samba AD DC seeded with Hollybank Primary School (aupctl.sandbox.school).

Used by `aupctl sandbox start|status|stop`, `make demo` and the tests' fixtures. A sandbox lives in
one directory: the server's files, DIR/aupctl.toml (loads with aupctl.config.load), bind.pw,
aup-signatures.csv, intake.csv and DIR/sandbox.json (flavour, pid, URLs) for status/stop.

Fresh sandboxes are cheap because the seeded directory is built once into a template cache
(templates_dir()) and copied: OpenLDAP's mdb file after slapadd, Samba's provisioned and seeded
private/state directories. docs/sandbox.md describes the school and the planted problems.

Layouts (school.LAYOUTS): "standard" (both flavours, the default), "flat" (OpenLDAP: one
ou=People, posixGroup/memberUid groups, one RFC 2307bis group, roles known by group only) and
"nested" (AD: an OU per site and department, system groups in their own OU tree, a 2,000-member
group, three-level nesting). Each layout has its own template in the cache.

Linux only: the servers are Linux daemons, watched through /proc and prctl. Importing the package
elsewhere fails its assert; `aupctl sandbox` says so first (commands/sandbox.py).

The package: handle (SandboxInfo, state file, stop), process (spawning and identity), cache (the
template cache), tls, files (aupctl.toml, bind.pw), openldap, samba, school (the seeded school's
data). This module keeps the public API: `from aupctl import sandbox as sb; sb.start(...)`.
"""

from __future__ import annotations

import os  # tests patch sb.os and sb.shutil
import shutil
import sys
from pathlib import Path
from typing import Any

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from ..errors import (
    InputError,
    NotFoundError,
)
from . import school
from .cache import (
    _TEMPLATE_FORMAT,
    ENV_TEMPLATES,
    _copy_sparse,
    _file_stamp,
    _locked,
    _prune,
    _ref_time,
    templates_dir,
)
from .files import (
    _layout_shape,
    _q,
    _qlist,
    _write_files,
    config_toml,
)
from .handle import (
    _ATTACHED,
    AD_ADMIN_DN,
    AD_HOST,
    BIND_PW_FILE,
    CONFIG_FILE,
    DEFAULT_IP,
    DEFAULT_LAYOUT,
    FLAVOURS,
    LAYOUTS,
    OPENLDAP_ROOT_DN,
    OPENLDAP_SERVICE_DN,
    RFC2307BIS_SCHEMA,
    STATE_FILE,
    SandboxInfo,
    _ad_dn,
    _info_from_state,
    _read_state,
    _stop_attached,
    _write_state,
    person_dn,
    stop,
)
from .openldap import (
    _flat_entries,
    _gt,
    _ldif_attr,
    _openldap_dirs,
    _openldap_template,
    _ou_entry,
    _person_times,
    _policy_and_service,
    _render_ldif,
    _slapd_conf,
    _ssha,
    _start_openldap,
    _user_password,
    _wait_openldap,
    openldap_ldif,
    rfc2307bis_schema,
)
from .process import (
    _ANON_BIND,
    _DETACHED,
    _LIBC,
    _binary,
    _check_ip,
    _die_with_parent,
    _end_pid,
    _end_popen,
    _free_port,
    _is_ours,
    _keep_detached,
    _ldap_answers,
    _local_addresses,
    _log_tail,
    _port_open,
    _proc_stat,
    _reap,
    _spawn,
    _ticks,
)
from .samba import (
    _AD_NESTED_FORMAT,
    _AD_TEMPLATE_DAYS,
    _BACKDATE,
    _PUPIL_YEARS,
    _ad_backdate,
    _ad_base_template,
    _ad_bucket,
    _ad_ok,
    _ad_person_attrs,
    _ad_run,
    _ad_seed,
    _ad_seed_nested,
    _ad_template,
    _ad_tls,
    _ad_wait,
    _check_ad_host,
    _copy_samba_tree,
    _ensure_hosts,
    _filetime,
    _finish_samba_template,
    _samba_argv,
    _samba_conf_options,
    _samba_version_stamp,
    _school_fingerprint,
    _start_ad,
    ad_ports_busy,
)
from .tls import (
    _make_tls,
)

# Files and directories a sandbox creates; only these are removed when a stopped sandbox is restarted.
# fmt: off
_OWNED = {
    STATE_FILE, CONFIG_FILE, BIND_PW_FILE, "aup-signatures.csv", "intake.csv", "ca.pem", "server.pem",
    "server.key", "slapd.conf", "slapd.pid", "slapd.args", "slapd.log", "db", "etc", "private", "state",
    "cache", "run", "log", "bind-dns", "gencache.tdb", "state.db", "state.db-wal", "state.db-shm",
    "state.db-journal", "known_hosts", RFC2307BIS_SCHEMA, "checkpoints.jsonl",
    # Samba's messaging files in its lock directory (the sandbox root): without these a stopped AD
    # sandbox could not be started again in the same directory (copytree met msg.sock).
    "msg.lock", "msg.sock", "names.tdb",
}


# --------------------------------------------------------------------------------------------------
# Public API


def default_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("aupctl")) / "sandbox"


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
    layout: how the school is laid out (sandbox.school.LAYOUTS[flavour]; docs/sandbox.md).
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
