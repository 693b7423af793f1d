"""The sandbox's other layouts on real servers: flat OpenLDAP (one ou=People, posixAccount people,
posixGroup/memberUid groups, an RFC 2307bis group, roles by group only, accounts made by hand) and
nested AD (OUs per site, system groups in their own OU tree, 2,000 members, three-level nesting)."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import ldap3
import pytest
from cli_helpers import payload
from click.testing import CliRunner
from ldap3.core.exceptions import LDAPObjectClassViolationResult

from aupctl import config as config_mod
from aupctl import sandbox as sb
from aupctl.commands import cli
from aupctl.errors import InputError
from aupctl.sandbox import school as hb

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
        data = payload(st.stdout)
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


# -- nested AD -------------------------------------------------------------------------------------

AD_BASE = hb.AD_BASE_DN
AD_PEOPLE = "(&(objectCategory=person)(objectClass=user))"


def ad_people(conn: ldap3.Connection, base: str, attrs: list[str]) -> dict[str, ldap3.Entry]:
    found = conn.extend.standard.paged_search(
        base, AD_PEOPLE, attributes=["sAMAccountName", *attrs], paged_size=500, generator=False
    )
    return {str(e["attributes"]["sAMAccountName"]): e for e in found if e["type"] == "searchResEntry"}


def test_nested_config_describes_the_layout(ad_nested: sb.SandboxInfo) -> None:
    assert ad_nested.layout == "nested" and ad_nested.flavour == "ad"
    cfg = config_mod.load(str(ad_nested.config_path))
    d = cfg.directory
    assert (d.staff_ou, d.leavers_ou, d.groups_ou) == ("OU=Staff", "OU=Former Staff", "OU=Groups")
    # governors sit in one OU, so that role keeps one; the others are known by group
    assert cfg.roles["governor"].ou == "OU=Governors,OU=Staff"
    assert all(r.ou is None for name, r in cfg.roles.items() if name != "governor")
    conn = ad_nested.connect()
    groups_ou = cfg.dn(d.groups_ou).lower()
    for key, system in cfg.systems.items():
        if not system.group:
            continue
        dn = cfg.group_dn(system.group)
        assert dn.startswith("CN=") and ",OU=Applications," in dn and not dn.lower().endswith(groups_ou), key
        assert conn.search(dn, "(objectClass=group)", ldap3.BASE), key
    for g in d.privileged_groups:
        assert conn.search(cfg.group_dn(g), "(objectClass=group)", ldap3.BASE), g
    conn.unbind()


def test_nested_staff_are_spread_over_sites(ad_nested: sb.SandboxInfo) -> None:
    school = hb.school("nested")
    conn = ad_nested.connect()
    staff = ad_people(conn, f"OU=Staff,{AD_BASE}", ["mail", "employeeNumber", "employeeID"])
    leavers = ad_people(conn, f"OU=Former Staff,{AD_BASE}", [])
    pupils = ad_people(conn, f"OU=Pupils,{AD_BASE}", [])
    assert set(staff) == {p.username for p in school.staff}
    assert set(leavers) == {p.username for p in school.leavers}
    assert len(pupils) == hb.PUPIL_COUNT
    depth3 = [u for u, e in staff.items() if e["dn"].count("OU=") == 3]  # department, site, Staff
    assert len(depth3) > 80
    teaching_north = f"OU=Teaching,OU=North Site,OU=Staff,{AD_BASE}"
    assert any(e["dn"].endswith(teaching_north) for e in staff.values())
    for username, e in staff.items():
        want = sb.person_dn(username, "ad", "nested")
        assert e["dn"].lower() == want.lower(), username
    for username in hb.HAND_MADE:  # made by hand: no employee number or ID, no mail
        attrs = staff[username]["attributes"]
        assert not attrs["mail"] and not attrs["employeeNumber"] and not attrs["employeeID"], username
    assert staff["zclarke"]["attributes"]["mail"] == "zclarke@hollybank.test"
    conn.unbind()


def ldapsearch_values(info: sb.SandboxInfo, pw: Path, dn: str, attr: str) -> dict[str, int]:
    """Attribute description -> number of values, as ldapsearch (OpenLDAP's client) receives them."""
    env = dict(os.environ, LDAPTLS_CACERT=str(info.ca_file), LDAPTLS_REQCERT="demand")
    argv = ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", info.urls[0], "-D", info.bind_dn]
    argv += ["-y", str(pw), "-b", dn, "-s", "base", "(objectClass=group)", attr]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    return dict(Counter(line.split(":", 1)[0] for line in res.stdout.splitlines()[1:] if ":" in line))


def test_nested_2000_member_group_and_ranged_retrieval(ad_nested: sb.SandboxInfo, tmp_path: Path) -> None:
    dn = f"CN={hb.ALL_PUPILS},OU=Groups,{AD_BASE}"
    # bind.pw ends with a newline, which ldapsearch -y would send as part of the password
    pw = tmp_path / "bind.pw"
    pw.write_text(ad_nested.bind_password)
    pw.chmod(0o600)
    # Ranged retrieval, as Windows AD makes a client do above 1,500 values (MaxValRange)
    assert ldapsearch_values(ad_nested, pw, dn, "member;range=0-1499") == {"member;range=0-1499": 1500}
    assert ldapsearch_values(ad_nested, pw, dn, "member;range=1500-*") == {"member;range=1500-*": 500}
    # Samba 4.17, unlike Windows, answers a plain `member` read with every value: the sandbox cannot
    # show the silent cut at 1,500, only that ranged reads work (docs/sandbox.md).
    assert ldapsearch_values(ad_nested, pw, dn, "member") == {"member": hb.PUPIL_COUNT}
    conn = ad_nested.connect()  # ldap3's auto_range (on by default) follows member;range=1500-*
    assert conn.search(dn, "(objectClass=group)", ldap3.BASE, attributes=["member;range=0-1499"])
    members = conn.entries[0].member.values
    assert len(members) == hb.PUPIL_COUNT == len(set(members))
    assert all(",OU=Pupils," in m for m in members)
    conn.unbind()


def test_nested_three_levels_of_groups(ad_nested: sb.SandboxInfo) -> None:
    school = hb.school("nested")
    conn = ad_nested.connect()
    sims = f"CN=SIMS Users,OU=MIS,OU=Applications,{AD_BASE}"
    office = f"CN={hb.SIMS_OFFICE},OU=MIS,OU=Applications,{AD_BASE}"
    conn.search(sims, "(objectClass=group)", ldap3.BASE, attributes=["member"])
    assert office in conn.entries[0].member.values
    conn.search(office, "(objectClass=group)", ldap3.BASE, attributes=["member"])
    site_groups = set(conn.entries[0].member.values)
    assert site_groups == {f"CN={g},OU=MIS,OU=Applications,{AD_BASE}" for g in hb.SIMS_OFFICE_SITE.values()}
    # people three levels down: SIMS Users > SIMS Office > SIMS Office (site) > person
    office_with_sims = {u for g in hb.SIMS_OFFICE_SITE.values() for u in school.groups("ad")[g]}
    assert hb.PLANTED["privileged"] in office_with_sims
    in_chain = ad_people(conn, f"OU=Staff,{AD_BASE}", [])
    conn.search(f"OU=Staff,{AD_BASE}", f"(memberOf:1.2.840.113556.1.4.1941:={sims})", attributes=["sAMAccountName"])
    chain = {str(e.sAMAccountName.value) for e in conn.entries}
    direct = set(school.groups("ad")["SIMS Users"]) & set(in_chain)
    assert office_with_sims <= chain and direct <= chain
    assert not office_with_sims & set(school.groups("ad")["SIMS Users"])  # only through the nesting
    conn.unbind()


def test_nested_planted_problems(ad_nested: sb.SandboxInfo) -> None:
    conn = ad_nested.connect()
    found = ad_people(conn, AD_BASE, ["userAccountControl", "memberOf", "lastLogonTimestamp"])
    uac = {u: int(e["attributes"]["userAccountControl"]) for u, e in found.items()}
    assert uac["hlowe"] & hb.UAC_ACCOUNTDISABLE and uac["tbarker"] & hb.UAC_ACCOUNTDISABLE
    assert uac["kwalsh"] & hb.UAC_DONT_EXPIRE_PASSWORD and uac["rellis"] & hb.UAC_PASSWD_NOTREQD
    assert not uac["zclarke"] & hb.UAC_ACCOUNTDISABLE
    member_of = {u: " ".join(e["attributes"]["memberOf"]) for u, e in found.items()}
    assert "CN=SIMS Users," in member_of["wgreen"] and "CN=SIMS Users," in member_of["hlowe"]
    assert "CN=Schoolcomms Users," in member_of["tbarker"] and ",OU=Former Staff," in found["tbarker"]["dn"]
    assert "CN=Domain Admins," in member_of["dhart"] and "CN=IT Admins," in member_of["dhart"]
    assert not found["gturner"]["attributes"]["lastLogonTimestamp"]
    conn.unbind()
    c = ad_nested.connect(ad_nested.bind_name("zoe"), hb.SANDBOX_PASSWORD)  # a hand-made account binds
    assert c.bound
    c.unbind()
