"""The sandbox's other layouts on real servers: flat OpenLDAP (one ou=People, posixAccount people,
posixGroup/memberUid groups, an RFC 2307bis group, roles by group only, accounts made by hand) and
nested AD (OUs per site, system groups in their own OU tree, 2,000 members, three-level nesting)."""

from __future__ import annotations

import json
from pathlib import Path

import ldap3
import pytest
from click.testing import CliRunner
from ldap3.core.exceptions import LDAPObjectClassViolationResult

from aupctl import config as config_mod
from aupctl import sandbox as sb
from aupctl import sandbox_school as hb
from aupctl.commands import cli
from aupctl.errors import InputError

BASE = hb.OPENLDAP_BASE_DN
PEOPLE = f"ou=People,{BASE}"
FORMER = f"ou=Former,ou=People,{BASE}"


def by_uid(conn: ldap3.Connection, base: str, flt: str, attrs: list[str]) -> dict[str, ldap3.Entry]:
    conn.search(base, flt, attributes=["uid", *attrs])
    return {str(e.uid.value): e for e in conn.entries}


def uid_at(conn: ldap3.Connection, dn: str) -> str:
    """The uid of the entry at dn (slapd answers \\2C where we wrote \\,: compare entries, not strings)."""
    assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["uid"]), dn
    return str(conn.entries[0].uid.value)


def group(conn: ldap3.Connection, dn: str) -> ldap3.Entry:
    assert conn.search(
        dn, "(objectClass=*)", ldap3.BASE, attributes=["objectClass", "memberUid", "member", "gidNumber"]
    )
    return conn.entries[0]


# -- flat OpenLDAP ---------------------------------------------------------------------------------


def test_flat_config_describes_the_layout(flat_openldap: sb.SandboxInfo) -> None:
    assert flat_openldap.layout == "flat" and flat_openldap.flavour == "openldap"
    cfg = config_mod.load(str(flat_openldap.config_path))
    d = cfg.directory
    assert (d.staff_ou, d.leavers_ou, d.groups_ou) == ("ou=People", "ou=Former,ou=People", "ou=Groups")
    assert d.privileged_groups == ["itadmins"]
    # roles are known by group only: no ou anywhere
    assert set(cfg.roles) == set(hb.STAFF_OUS) and all(r.ou is None for r in cfg.roles.values())
    assert cfg.roles["teacher"].groups == ["teachers", "staff"]
    assert cfg.systems["sims"].group == f"cn=sims,ou=Systems,ou=Groups,{BASE}"
    assert cfg.systems["sap"].group is None
    assert "layout flat" in flat_openldap.config_path.read_text().splitlines()[0]
    # every system group the config names exists, and each role's groups exist
    conn = flat_openldap.connect()
    for key, system in cfg.systems.items():
        if system.group:
            assert "posixGroup" in group(conn, cfg.group_dn(system.group)).objectClass.values, key
    for role in cfg.roles.values():
        for g in role.groups:
            assert group(conn, cfg.group_dn(g)).memberUid.values, g
    assert group(conn, cfg.group_dn("itadmins")).memberUid.values
    conn.unbind()


def test_flat_people_are_posix_accounts_in_one_ou(flat_openldap: sb.SandboxInfo) -> None:
    school = hb.school("flat")
    conn = flat_openldap.connect()
    attrs = ["objectClass", "uidNumber", "gidNumber", "homeDirectory", "loginShell", "mail", "employeeNumber", "cn"]
    everyone = by_uid(conn, PEOPLE, "(objectClass=inetOrgPerson)", attrs)
    former = by_uid(conn, FORMER, "(objectClass=inetOrgPerson)", [])
    assert set(everyone) == {p.username for p in school.people}
    assert set(former) == {p.username for p in school.leavers}  # leavers sit inside the people OU
    uid_numbers = set()
    for username, e in everyone.items():
        assert {"inetOrgPerson", "posixAccount"} <= set(e.objectClass.values), username
        assert e.gidNumber.value == hb.FLAT_STAFF_GID and e.homeDirectory.value == f"/home/{username}"
        uid_numbers.add(e.uidNumber.value)
        assert e.loginShell.value == ("/usr/sbin/nologin" if school.person(username).leaver else "/bin/bash")
    assert len(uid_numbers) == len(everyone)  # unique
    # made by hand: no mail, no staff code, named by cn (one DN holds an escaped comma)
    for username in hb.HAND_MADE:
        e = everyone[username]
        assert not e.mail.values and not e.employeeNumber.values, username
        assert e.entry_dn.startswith("cn="), e.entry_dn
        assert e.uidNumber.value < 2000  # low numbers from an older server
    assert everyone["mbrown"].cn.value == "Brown, Michael"
    assert uid_at(conn, sb.person_dn("mbrown", "openldap", "flat")) == "mbrown"
    assert uid_at(conn, flat_openldap.bind_name("zoe")) == "zoe"
    assert everyone["zoe"].cn.value == "Zoë"
    assert everyone["zclarke"].mail.value == "zclarke@hollybank.test"
    conn.unbind()


def test_flat_groups_are_posix_with_one_rfc2307bis(flat_openldap: sb.SandboxInfo) -> None:
    school = hb.school("flat")
    conn = flat_openldap.connect()
    conn.search(BASE, "(objectClass=posixGroup)", attributes=["cn", "objectClass", "memberUid", "member", "gidNumber"])
    groups = {str(e.cn.value): e for e in conn.entries}
    assert set(groups) == set(school.groups("openldap"))
    gids = [e.gidNumber.value for e in groups.values()]
    assert len(set(gids)) == len(gids)
    for cn, e in groups.items():
        assert set(e.memberUid.values) == set(school.groups("openldap")[cn]), cn
        if cn in hb.FLAT_RFC2307BIS:
            assert {"groupOfNames", "posixGroup"} <= set(e.objectClass.values)
            # member and memberUid in step: the same people, by DN and by username
            assert {uid_at(conn, m) for m in e.member.values} == set(e.memberUid.values)
        else:
            assert "groupOfNames" not in e.objectClass.values and not e.member.values, cn
    conn.unbind()


def test_flat_planted_problems(flat_openldap: sb.SandboxInfo) -> None:
    conn = flat_openldap.connect()
    systems = f"ou=Systems,ou=Groups,{BASE}"
    sims = group(conn, f"cn=sims,{systems}")
    assert {"wgreen", "hlowe", "supply", "oshaw", "hmarsh"} <= set(sims.memberUid.values)
    assert sb.person_dn("wgreen", "openldap", "flat") in sims.member.values
    assert "hlowe" in group(conn, f"cn=targettracker,{systems}").memberUid.values
    assert "tbarker" in group(conn, f"cn=schoolcomms,{systems}").memberUid.values
    assert set(group(conn, f"cn=itadmins,ou=Groups,{BASE}").memberUid.values) == {"kmensah", "dhart"}
    people = by_uid(
        conn, PEOPLE, "(objectClass=inetOrgPerson)", ["userPassword", "pwdAccountLockedTime", "pwdLastSuccess"]
    )
    assert people["nprice"].userPassword.value == b"Password123"
    assert people["gford"].userPassword.value.startswith(b"{MD5}")
    assert people["ehall"].userPassword.value == people["jwood"].userPassword.value
    assert people["hlowe"].pwdAccountLockedTime.values and people["tbarker"].pwdAccountLockedTime.values
    assert not people["gturner"].pwdLastSuccess.values
    assert people["tbarker"].entry_dn.endswith(FORMER)
    conn.unbind()
    # the teachers' role group does not name wgreen (a TA): the eligibility plant still holds
    assert "wgreen" not in hb.school("flat").groups("openldap")["teachers"]


def test_flat_schema_refuses_what_a_real_school_would(fresh_flat_openldap: sb.SandboxInfo) -> None:
    """A plain posixGroup takes no member (DN), a 2307bis group takes both, and people bind."""
    info = fresh_flat_openldap
    conn = info.connect()
    zoe = sb.person_dn("zoe", "openldap", "flat")
    sims = f"cn=sims,ou=Systems,ou=Groups,{BASE}"
    raise_ = f"cn=raise,ou=Systems,ou=Groups,{BASE}"
    assert conn.modify(sims, {"member": [(ldap3.MODIFY_ADD, [zoe])], "memberUid": [(ldap3.MODIFY_ADD, ["zoe"])]})
    assert conn.modify(raise_, {"memberUid": [(ldap3.MODIFY_ADD, ["zoe"])]})
    conn.raise_exceptions = True
    with pytest.raises(LDAPObjectClassViolationResult):
        conn.modify(raise_, {"member": [(ldap3.MODIFY_ADD, [zoe])]})
    assert "zoe" in group(conn, sims).memberUid.values and zoe in group(conn, sims).member.values
    conn.unbind()
    for username in ("zoe", "mbrown", "zclarke"):  # hand-made (cn RDN, a comma) and generated (uid RDN)
        c = info.connect(info.bind_name(username), hb.SANDBOX_PASSWORD)
        assert c.extend.standard.who_am_i(), username
        c.unbind()


def test_flat_cli_start_status_stop(tmp_path: Path) -> None:
    d = tmp_path / "flat"
    runner = CliRunner()
    res = runner.invoke(cli, ["sandbox", "start", "--layout", "flat", "--dir", str(d)], catch_exceptions=False)
    try:
        assert res.exit_code == 0, res.output
        assert "openldap sandbox, layout flat running" in res.output
        st = runner.invoke(cli, ["--format", "json", "sandbox", "status", "--dir", str(d)], catch_exceptions=False)
        assert st.exit_code == 0, st.output
        data = json.loads(st.stdout)
        assert data["layout"] == "flat" and data["flavour"] == "openldap" and data["running"] is True
        table = runner.invoke(cli, ["sandbox", "status", "--dir", str(d)], catch_exceptions=False)
        assert "layout" in table.stdout and "flat" in table.stdout
        cfg = config_mod.load(str(d / "aupctl.toml"))
        assert cfg.directory.staff_ou == "ou=People"
        conn = sb.info_from(d).connect()
        assert conn.search(PEOPLE, "(objectClass=posixAccount)", attributes=["uid"]) and len(conn.entries) > 100
        conn.unbind()
    finally:
        stop = runner.invoke(cli, ["sandbox", "stop", "--dir", str(d)], catch_exceptions=False)
    assert stop.exit_code == 0 and "stopped" in stop.output
    assert sb.status(d)["running"] is False and sb.status(d)["layout"] == "flat"


def test_layout_refusals(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="layout 'flat' for ad") as exc:
        sb.start("ad", tmp_path / "x", layout="flat")
    assert "--flavour openldap" in (exc.value.hint or "")
    with pytest.raises(InputError, match="layout 'nested' for openldap"):
        sb.start("openldap", tmp_path / "y", layout="nested")
    assert not (tmp_path / "y").exists()
    res = CliRunner().invoke(cli, ["sandbox", "start", "--layout", "nested", "--dir", str(tmp_path / "z")])
    assert res.exit_code == 2 and "expected one of: standard, flat" in res.output


def test_flat_ldif_is_deterministic() -> None:
    import datetime as dt

    day = dt.date(2026, 1, 1)
    assert sb.openldap_ldif(today=day, layout="flat") == sb.openldap_ldif(today=day, layout="flat")
    assert sb.openldap_ldif(today=day, layout="flat") != sb.openldap_ldif(today=day)
