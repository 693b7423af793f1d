"""The AD sandbox: a Samba AD DC provisioned once, seeded with the school over LDAP, copied per sandbox."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from ..errors import (
    InputError,
    UnreachableError,
)
from . import school as hb
from .cache import (
    _TEMPLATE_FORMAT,
    _file_stamp,
    _locked,
    _prune,
    _ref_time,
)
from .files import (
    _write_files,
)
from .handle import (
    AD_ADMIN_DN,
    AD_HOST,
    CONFIG_FILE,
    DEFAULT_IP,
    DEFAULT_LAYOUT,
    SandboxInfo,
    _ad_dn,
    _write_state,
    person_dn,
)
from .process import (
    _end_popen,
    _keep_detached,
    _local_addresses,
    _log_tail,
    _port_open,
    _spawn,
    _ticks,
)

# AD templates are rebuilt when older than this: whenCreated/lastLogonTimestamp are planted relative
# to the build date, and ordinary staff must stay well inside passwords.stale_after_days (90).
_AD_TEMPLATE_DAYS = 28
# Bump when the nested AD layout's seeding changes (its key also holds the school's data).
_AD_NESTED_FORMAT = "1"


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


def ad_ports_busy(ip: str = DEFAULT_IP) -> bool:
    """Something (an AD sandbox?) already listens on ip:389 or ip:636."""
    return _port_open(ip, 636) or _port_open(ip, 389)


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
        attrs = {
            "description": hb.group_description(g),
            "sAMAccountName": g.replace(" ", "_")[:20],
        }
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
        attrs: dict[str, Any] = {
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
        attrs = {
            "description": hb.group_description(g),
            "sAMAccountName": g.replace(" ", "_")[:20],
        }
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
