"""aupctl.sandbox: both flavours start, hold Hollybank Primary School with every planted problem,
bind over verified TLS with the config's own credentials, and stop only what they started."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import ldap3
import pytest
from ldap3.core.exceptions import LDAPBindError
from sandbox_helpers import ad_slot, ad_unavailable, cannot_run

from aupctl import config as config_mod
from aupctl import sandbox as sb
from aupctl.credentials import read_secret_file
from aupctl.errors import InputError, NotFoundError
from aupctl.sandbox import school as hb

REPO = Path(__file__).resolve().parent.parent
NOW = dt.datetime.now(dt.UTC)


def start_in_child(flavour: str, directory: Path) -> int:
    """start(detach=True) in a Python process that then exits, as `aupctl sandbox start` does."""
    code = (
        "import sys; from pathlib import Path; from aupctl import sandbox;"
        "print(sandbox.start(sys.argv[1], Path(sys.argv[2]), detach=True).pid)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", code, flavour, str(directory)], capture_output=True, text=True, timeout=180, env=env
    )
    assert res.returncode == 0, res.stderr
    return int(res.stdout.strip())


def detached_round_trip(flavour: str, directory: Path) -> None:
    pid = start_in_child(flavour, directory)
    st = sb.status(directory)
    assert st["running"] and st["pid"] == pid and st["detached"] and st["flavour"] == flavour
    conn = sb.info_from(directory).connect()  # the parent has gone; the server answers
    assert conn.bound
    conn.unbind()
    with pytest.raises(InputError, match="already running"):
        sb.start(flavour, directory)
    assert sb.stop(directory) is True
    assert sb.status(directory)["running"] is False
    assert sb.stop(directory) is False  # nothing left to stop


# Detached AD runs first in this module: one AD DC at a time, and ad_sandbox holds 389/636 later.
def test_ad_detached_outlives_its_parent_and_stop_ends_it(tmp_path: Path) -> None:
    why = ad_unavailable()
    if why:
        cannot_run(why)
    with ad_slot():
        detached_round_trip("ad", tmp_path / "ad")
        # again in the same directory: a stopped sandbox starts afresh (Samba's msg.sock and friends go too)
        detached_round_trip("ad", tmp_path / "ad")


def test_openldap_detached_outlives_its_parent_and_stop_ends_it(tmp_path: Path) -> None:
    detached_round_trip("openldap", tmp_path / "ol")


# -- the config each sandbox writes, used as a technician would -----------------------------------


def bind_with_config(cfg: config_mod.Config) -> ldap3.Connection:
    tls = ldap3.Tls(ca_certs_file=cfg.directory.ca_file, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(cfg.directory.url[0], tls=tls, connect_timeout=5)
    password = read_secret_file(cfg.directory.bind_password_file, "bind password")
    return ldap3.Connection(server, cfg.directory.bind_dn, password, auto_bind=True)


def people(conn: ldap3.Connection, base: str, flavour: str, attrs: list[str]) -> dict[str, ldap3.Entry]:
    key = "uid" if flavour == "openldap" else "sAMAccountName"
    flt = "(objectClass=inetOrgPerson)" if flavour == "openldap" else "(&(objectCategory=person)(objectClass=user))"
    conn.search(base, flt, attributes=[key, *attrs])
    return {str(e[key].value): e for e in conn.entries}


def test_config_loads_and_binds_over_verified_tls(sandbox: sb.SandboxInfo) -> None:
    cfg = config_mod.load(str(sandbox.config_path))
    assert cfg.directory.flavour == sandbox.flavour
    assert cfg.directory.url == [sandbox.urls[0]] and cfg.directory.url[0].startswith("ldaps://")
    assert Path(cfg.directory.ca_file).is_file()
    assert (Path(cfg.directory.bind_password_file).stat().st_mode & 0o777) == 0o600
    assert cfg.school.name == hb.SCHOOL_NAME and cfg.school.aup_version == "2024-09"
    assert set(cfg.roles) == {"teacher", "ta", "office", "slt", "site", "governor"}
    assert cfg.systems["sims"].group == "SIMS Users" and cfg.systems["sap"].group is None
    assert cfg.systems["sims"].approvers == [hb.HEADTEACHER, hb.BUSINESS_MANAGER]
    assert cfg.systems["intranet"].instructions
    assert "IT Admins" in cfg.directory.privileged_groups
    assert cfg.state.path == str(sandbox.dir / "state.db")
    assert cfg.passwords.stale_after_days == 90 and "supply*" in cfg.passwords.shared_account_patterns
    if sandbox.flavour == "ad":
        assert cfg.accounts.upn_suffix == "hollybank.test"
        assert hb.AD_DOMAIN_ADMINS_DN in cfg.directory.privileged_groups
    conn = bind_with_config(cfg)
    staff = people(conn, cfg.dn(cfg.directory.staff_ou), sandbox.flavour, [])
    leavers = people(conn, cfg.dn(cfg.directory.leavers_ou), sandbox.flavour, [])
    conn.unbind()
    assert len(staff) == 120 == len(hb.school().staff)
    assert set(leavers) == {p.username for p in hb.school().leavers}
    assert {"zclarke", "lkowalski", "sobrien", "gsmithjones", "mnguyen", "pvanderberg", "jfernandez"} <= set(staff)
    assert {"jsmith", "jsmith2", "skhan", "bfeatherstonehaughwa"} <= set(staff)


def test_roles_match_their_ous(sandbox: sb.SandboxInfo) -> None:
    cfg = config_mod.load(str(sandbox.config_path))
    conn = bind_with_config(cfg)
    for role, spec in cfg.roles.items():
        found = people(conn, cfg.dn(spec.ou), sandbox.flavour, [])
        want = {p.username for p in hb.school().staff if p.role == role}
        assert set(found) == want, role
    conn.unbind()


def test_data_files(sandbox: sb.SandboxInfo) -> None:
    rows = list(csv.DictReader(io.StringIO((sandbox.dir / "aup-signatures.csv").read_text())))
    signed = {r["username"]: r for r in rows}
    assert not set(hb.UNSIGNED) & set(signed)
    assert signed["hmarsh"]["version"] == "2023-09"
    assert signed["zclarke"]["version"] == "2024-09"
    assert len(signed) == len(hb.school().people) - len(hb.UNSIGNED)
    intake = list(csv.DictReader(io.StringIO((sandbox.dir / "intake.csv").read_text())))
    assert len(intake) == 25
    assert list(intake[0]) == [
        "first_name", "last_name", "preferred_name", "role", "staff_code", "email", "department",
        "start_date", "systems", "approved_by",
    ]  # fmt: skip
    assert any((r["first_name"], r["last_name"]) == hb.INTAKE_CLASH for r in intake)
    assert any(not r["first_name"].isascii() for r in intake)
    assert {r["start_date"] for r in intake} == {hb.next_september(dt.date.today()).isoformat()}
    assert all(r["role"] in hb.STAFF_OUS for r in intake)


def test_cli_env_points_at_the_sandbox(sandbox: sb.SandboxInfo, cli_env) -> None:
    env = cli_env(sandbox)
    assert env == {"AUPCTL_CONFIG": str(sandbox.config_path)}
    assert config_mod.load(None).directory.base_dn == sandbox.base_dn


# -- OpenLDAP: the planted problems ---------------------------------------------------------------


def days_ago(when: dt.datetime) -> float:
    return (NOW - when).total_seconds() / 86400


def member_dns(conn: ldap3.Connection, base: str, group: str) -> set[str]:
    conn.search(f"cn={group},ou=Groups,{base}", "(objectClass=*)", ldap3.BASE, attributes=["member"])
    return {m.lower() for m in conn.entries[0]["member"].values}


def test_openldap_planted_problems(openldap_sandbox: sb.SandboxInfo) -> None:
    info = openldap_sandbox
    base = info.base_dn
    conn = info.connect()
    attrs = ["userPassword", "pwdLastSuccess", "createTimestamp", "pwdAccountLockedTime", "displayName"]
    everyone = people(conn, base, "openldap", attrs)
    dn = {u: e.entry_dn.lower() for u, e in everyone.items()}
    sims, tt = member_dns(conn, base, "SIMS Users"), member_dns(conn, base, "Target Tracker Users")
    p = hb.PLANTED

    assert ",ou=support,ou=staff," in dn[p["not_eligible_member"]] and dn[p["not_eligible_member"]] in sims
    hlowe = everyone[p["disabled_with_access"]]
    assert hlowe.pwdAccountLockedTime.value is not None
    assert dn["hlowe"] in sims and dn["hlowe"] in tt
    assert ",ou=leavers," in dn[p["leaver_with_access"]]
    assert dn[p["leaver_with_access"]] in member_dns(conn, base, "Schoolcomms Users")
    assert days_ago(everyone[p["stale"]].pwdLastSuccess.value) > 200
    never = everyone[p["never_logged_on"]]
    assert never.pwdLastSuccess.value is None and 199 < days_ago(never.createTimestamp.value) < 202
    assert everyone[p["shared_account"]].displayName.value == "Supply Teacher"
    assert dn["supply"].startswith("uid=supply,ou=teachers,ou=staff,")
    admins = member_dns(conn, base, "IT Admins")
    assert ",ou=office,ou=staff," in dn[p["privileged"]] and dn[p["privileged"]] in admins
    assert dn[hb.LEGIT_IT_ADMIN] in admins

    pw = {u: e.userPassword.value for u, e in everyone.items()}  # the service account reads hashes
    assert pw["nprice"] == b"Password123"
    assert pw["gford"].startswith(b"{MD5}")
    assert pw["ehall"] == pw["jwood"] and pw["ehall"].startswith(b"{SHA}")
    assert pw["mbennett"].startswith(b"{SSHA}") and pw["zclarke"].startswith(b"{SSHA}")
    ordinary = [e for u, e in everyone.items() if u not in hb.PLANTED.values() and ",ou=staff," in dn[u]]
    assert all(days_ago(e.pwdLastSuccess.value) < 60 for e in ordinary)  # nobody else looks stale
    conn.unbind()


def test_openldap_binds_lockout_lastbind_and_acls(fresh_openldap: sb.SandboxInfo) -> None:
    info = fresh_openldap
    assert info.connect(info.bind_name("mbennett"), "Hollybank2024!").bound
    assert info.connect(info.bind_name("nprice"), "Password123").bound  # cleartext still binds
    with pytest.raises(LDAPBindError):
        info.connect(info.bind_name("hlowe"), hb.SANDBOX_PASSWORD)  # pwdAccountLockedTime: locked

    # lastbind: a bind records pwdLastSuccess
    user = info.connect(info.bind_name("zclarke"), hb.SANDBOX_PASSWORD)
    svc = info.connect()
    svc.search(info.bind_name("zclarke"), "(objectClass=*)", ldap3.BASE, attributes=["pwdLastSuccess"])
    assert days_ago(svc.entries[0].pwdLastSuccess.value) < 0.01

    # a user changes their own password; ppolicy refuses a short one
    assert not user.extend.standard.modify_password(old_password=hb.SANDBOX_PASSWORD, new_password="short")
    assert user.result["description"] == "constraintViolation"
    assert user.extend.standard.modify_password(old_password=hb.SANDBOX_PASSWORD, new_password="a-long-new-pass-2026")
    assert info.connect(info.bind_name("zclarke"), "a-long-new-pass-2026").bound

    # the service account writes under ou=Staff and ou=Groups, and not elsewhere
    dn = info.bind_name("gsmithjones")
    assert svc.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})
    with pytest.raises(LDAPBindError):
        info.connect(dn, hb.SANDBOX_PASSWORD)
    assert svc.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
    assert info.connect(dn, hb.SANDBOX_PASSWORD).bound
    group = f"cn=RAISE Online Users,ou=Groups,{info.base_dn}"
    assert svc.modify(group, {"member": [(ldap3.MODIFY_ADD, [dn])]})
    assert svc.modify_dn(dn, "uid=gsmithjones", new_superior=f"ou=Leavers,{info.base_dn}")
    assert not svc.modify(f"cn=default,ou=policies,{info.base_dn}", {"pwdMinLength": [(ldap3.MODIFY_REPLACE, ["4"])]})
    assert svc.result["description"] == "insufficientAccessRights"
    # an ordinary user reads the directory but not password hashes
    user.search(info.base_dn, "(uid=ehall)", attributes=["userPassword", "mail"])
    assert user.entries[0].mail.value == "ehall@hollybank.test" and not user.entries[0].userPassword.values


def test_openldap_starttls_and_anonymous(openldap_sandbox: sb.SandboxInfo) -> None:
    info = openldap_sandbox
    tls = ldap3.Tls(ca_certs_file=str(info.ca_file), validate=ssl.CERT_REQUIRED)
    conn = ldap3.Connection(ldap3.Server(info.urls[1], tls=tls), info.bind_dn, info.bind_password)
    conn.open()
    assert conn.start_tls() and conn.bind()
    anon = ldap3.Connection(ldap3.Server(info.urls[1]), auto_bind=True)
    anon.search(info.base_dn, "(objectClass=*)")
    assert anon.entries == []  # nothing for anonymous but the root DSE


def test_openldap_without_seed_has_only_the_skeleton(tmp_path: Path) -> None:
    info = sb.start("openldap", tmp_path / "empty", detach=False, seed=False)
    try:
        conn = info.connect()
        conn.search(info.base_dn, "(objectClass=inetOrgPerson)")
        assert conn.entries == []
        conn.search(info.base_dn, "(objectClass=organizationalUnit)", attributes=["ou"])
        assert {"Staff", "Teachers", "Groups", "Leavers", "Service"} <= {str(e.ou.value) for e in conn.entries}
        assert config_mod.load(str(info.config_path)).directory.flavour == "openldap"
        assert not (info.dir / "intake.csv").exists()
    finally:
        info.stop()


# -- AD: the planted problems ---------------------------------------------------------------------

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: nested membership


def test_ad_planted_problems(ad_sandbox: sb.SandboxInfo) -> None:
    info = ad_sandbox
    base = info.base_dn
    conn = info.connect()
    attrs = ["userAccountControl", "lastLogonTimestamp", "whenCreated", "memberOf", "displayName"]
    everyone = people(conn, base, "ad", attrs)
    dn = {u: e.entry_dn.lower() for u, e in everyone.items()}

    def groups(user: str) -> set[str]:
        return {g.split(",", 1)[0][3:].lower() for g in everyone[user].memberOf.values}

    def uac(user: str) -> int:
        return int(everyone[user].userAccountControl.value)

    p = hb.PLANTED
    assert ",ou=support,ou=staff," in dn[p["not_eligible_member"]] and "sims users" in groups("wgreen")
    assert uac(p["disabled_with_access"]) & 2 and {"sims users", "target tracker users"} <= groups("hlowe")
    assert ",ou=leavers," in dn["tbarker"] and "schoolcomms users" in groups(p["leaver_with_access"])
    assert days_ago(everyone[p["stale"]].lastLogonTimestamp.value) > 200
    never = everyone[p["never_logged_on"]]
    assert not never.lastLogonTimestamp.value and 199 < days_ago(never.whenCreated.value) < 230
    assert uac(p["never_expires"]) == 0x10200
    assert uac(p["passwd_notreqd"]) == 0x220
    assert everyone["supply"].displayName.value == "Supply Teacher" and ",ou=teachers,ou=staff," in dn["supply"]
    assert {"it admins", "domain admins"} <= groups(p["privileged"])
    assert {"it admins", "domain admins"} <= groups(hb.LEGIT_IT_ADMIN)
    ordinary = [e for u, e in everyone.items() if u not in hb.PLANTED.values() and ",ou=staff," in dn[u]]
    assert all(uac(str(e.sAMAccountName.value)) == 512 for e in ordinary)
    assert all(days_ago(e.lastLogonTimestamp.value) < 90 for e in ordinary)

    # SIMS Office is nested in SIMS Users: office staff count only through the chain
    assert "sims office" in groups("adubois") and "sims users" not in groups("adubois")
    sims = f"CN=SIMS Users,OU=Groups,{base}"
    conn.search(base, f"(&(objectClass=user)(memberOf:{IN_CHAIN}:={sims}))", attributes=["sAMAccountName"])
    assert "adubois" in {str(e.sAMAccountName.value) for e in conn.entries}
    conn.unbind()


def test_ad_binds(ad_sandbox: sb.SandboxInfo) -> None:
    info = ad_sandbox
    assert info.connect(info.bind_name("zclarke"), hb.SANDBOX_PASSWORD).bound
    assert info.connect(info.bind_name("mbennett"), "Hollybank2024!").bound
    with pytest.raises(LDAPBindError):
        info.connect(info.bind_name("hlowe"), hb.SANDBOX_PASSWORD)  # disabled
    # plain simple bind on 389 is refused; StartTLS with the DC's CA works
    tls = ldap3.Tls(ca_certs_file=str(info.ca_file), validate=ssl.CERT_REQUIRED)
    conn = ldap3.Connection(ldap3.Server(info.urls[1], tls=tls), info.bind_dn, info.bind_password)
    conn.open()
    assert conn.start_tls() and conn.bind()


def test_second_ad_dc_is_refused_while_one_runs(ad_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="389/636"):
        sb.start("ad", tmp_path / "second", detach=False)
    assert not (tmp_path / "second").exists()


# -- lifecycle and refusals -----------------------------------------------------------------------


def test_stop_ends_only_its_own_server(tmp_path: Path) -> None:
    a = sb.start("openldap", tmp_path / "a", detach=False)
    b = sb.start("openldap", tmp_path / "b", detach=False)
    try:
        assert sb.stop(a.dir) is True
        assert a.process.poll() is not None and not sb.status(a.dir)["running"]
        assert b.running and b.connect().bound
        assert sb.status(b.dir)["running"]
    finally:
        a.stop()
        b.stop()
    assert b.process.poll() is not None


def test_stop_never_signals_a_reused_pid(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        d = tmp_path / "stale"
        d.mkdir()
        ticks = sb._ticks(other.pid)
        (d / sb.STATE_FILE).write_text(json.dumps({"flavour": "openldap", "pid": other.pid, "start_ticks": ticks + 1}))
        assert sb.status(d)["running"] is False
        assert sb.stop(d) is False
        assert other.poll() is None  # still alive
    finally:
        other.kill()
        other.wait()


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="unknown sandbox flavour"):
        sb.start("novell", tmp_path / "x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        sb.start("openldap", foreign, detach=False)
    assert (foreign / "notes.txt").read_text() == "mine"

    info = sb.start("openldap", tmp_path / "once", detach=False)
    try:
        with pytest.raises(InputError, match="already running"):
            sb.start("openldap", tmp_path / "once", detach=False)
        with pytest.raises(InputError, match="already running"):
            sb.start("ad", tmp_path / "once", detach=False)
    finally:
        info.stop()
    # a stopped sandbox's directory starts afresh
    again = sb.start("openldap", tmp_path / "once", detach=False)
    again.stop()

    with pytest.raises(NotFoundError):
        sb.status(tmp_path / "nothing-here")
    assert sb.stop(tmp_path / "nothing-here") is False

    monkeypatch.setattr(sb.os, "geteuid", lambda: 1000)
    with pytest.raises(InputError, match="needs root"):
        sb.start("ad", tmp_path / "ad-as-user")
    monkeypatch.undo()

    monkeypatch.setattr(sb.shutil, "which", lambda *a, **k: None)
    with pytest.raises(InputError, match="apt-get install slapd"):
        sb.start("openldap", tmp_path / "no-slapd")
    with pytest.raises(InputError, match="apt-get install samba"):
        sb._binary("samba", "samba")


def test_fresh_openldap_is_cheap(tmp_path: Path) -> None:
    sb.prepare_template("openldap")
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        info = sb.start("openldap", tmp_path / str(i), detach=False)
        times.append(time.perf_counter() - t0)
        info.stop()
    times.sort()
    print(f"fresh seeded slapd: median {times[2] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    assert times[2] < 0.5


def test_school_data_is_deterministic_and_usernames_fold() -> None:
    assert hb.fold("Zoë") == "zoe" and hb.fold("Łukasz") == "lukasz" and hb.fold("O'Brien") == "obrien"
    assert hb.fold("Nguyễn") == "nguyen" and hb.fold("Van der Berg") == "vanderberg"
    assert hb.fold("Smith-Jones") == "smithjones" and hb.fold("Yılmaz") == "yilmaz"
    names = [p.username for p in hb.school().people]
    assert len(names) == len(set(names)) and all(len(n) <= 20 and n.isascii() for n in names)
    for key, user in hb.PLANTED.items():
        assert hb.school().person(user), key
    assert sb.openldap_ldif(today=dt.date(2026, 1, 1)) == sb.openldap_ldif(today=dt.date(2026, 1, 1))


def test_hosts_entry_is_idempotent_and_moves_with_the_ip(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 dc1.hollybank.test files.example # theirs\n")
    sb._ensure_hosts("127.0.0.1", hosts)
    first = hosts.read_text()
    assert first.splitlines() == ["127.0.0.1 localhost", "10.0.0.9 files.example", "127.0.0.1 dc1.hollybank.test dc1"]
    sb._ensure_hosts("127.0.0.1", hosts)
    assert hosts.read_text() == first
    sb._ensure_hosts("127.0.0.2", hosts)
    assert hosts.read_text().splitlines()[-1] == "127.0.0.2 dc1.hollybank.test dc1"
    assert hosts.read_text().count("dc1.hollybank.test") == 1


def test_a_new_sandbox_in_the_same_folder_starts_a_new_audit_record(tmp_path) -> None:
    """`make demo` twice: the second sandbox's store is new, so its checkpoints must be too, or doctor
    calls the fresh store a replaced one."""
    from cli_helpers import run_main

    for _ in range(2):
        info = sb.start("openldap", tmp_path / "sb", detach=False)
        try:
            code, out, err = run_main("log", "checkpoint", config=info.config_path)
            assert code == 0, out + err
            code, out, err = run_main("doctor", config=info.config_path)
            assert code == 0, out + err
        finally:
            info.stop()
    assert (tmp_path / "sb" / "checkpoints.jsonl").exists()
