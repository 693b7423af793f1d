"""The OpenLDAP sandbox: slapd.conf, the school as LDIF, the slapadd template and starting slapd."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from ..errors import (
    UnreachableError,
)
from . import school as hb
from .cache import (
    _TEMPLATE_FORMAT,
    _copy_sparse,
    _file_stamp,
    _locked,
    _prune,
    _ref_time,
)
from .files import (
    _write_files,
)
from .handle import (
    CONFIG_FILE,
    DEFAULT_LAYOUT,
    OPENLDAP_ROOT_DN,
    OPENLDAP_SERVICE_DN,
    RFC2307BIS_SCHEMA,
    SandboxInfo,
    _write_state,
    person_dn,
)
from .process import (
    _end_popen,
    _free_port,
    _keep_detached,
    _ldap_answers,
    _log_tail,
    _port_open,
    _spawn,
    _ticks,
)
from .tls import (
    _make_tls,
)

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
    # Over 80 lines: mostly slapd.conf's own text (ACLs, overlays), kept in the order slapd reads it.
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
