"""Every sandbox layout of both flavours (the any_sandbox fixture) keeps one contract: its config loads
and binds over verified TLS, every OU, role group, system group and privileged group it names exists,
and staff_ou / leavers_ou hold exactly the school's staff and leavers."""

from __future__ import annotations

import ldap3

from aupctl import config as config_mod
from aupctl import sandbox as sb
from aupctl.sandbox import school as hb


def usernames(conn: ldap3.Connection, base: str, flavour: str) -> set[str]:
    key = "uid" if flavour == "openldap" else "sAMAccountName"
    flt = "(objectClass=inetOrgPerson)" if flavour == "openldap" else "(&(objectCategory=person)(objectClass=user))"
    found = conn.extend.standard.paged_search(base, flt, attributes=[key], paged_size=500, generator=False)
    out = set()
    for e in found:
        if e["type"] == "searchResEntry":
            value = e["attributes"][key]
            out.add(str(value[0] if isinstance(value, list) else value))  # uid is multi-valued
    return out


def exists(conn: ldap3.Connection, dn: str) -> bool:
    return conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectClass"])


def test_every_layout_keeps_the_config_contract(any_sandbox: sb.SandboxInfo) -> None:
    info = any_sandbox
    assert info.layout in hb.LAYOUTS[info.flavour]
    cfg = config_mod.load(str(info.config_path))
    assert cfg.directory.flavour == info.flavour and cfg.directory.base_dn == info.base_dn
    school = hb.school(info.layout)
    conn = info.connect()  # the config's own bind account
    staff_ou, leavers_ou = cfg.dn(cfg.directory.staff_ou), cfg.dn(cfg.directory.leavers_ou)
    for dn in (staff_ou, leavers_ou, cfg.dn(cfg.directory.groups_ou)):
        assert exists(conn, dn), dn
    staff = usernames(conn, staff_ou, info.flavour)
    leavers = usernames(conn, leavers_ou, info.flavour)
    assert leavers == {p.username for p in school.leavers}
    # the flat layout keeps its leavers inside the people OU: staff_ou's subtree holds both
    assert staff - leavers == {p.username for p in school.staff}
    for name, role in cfg.roles.items():
        if role.ou:
            assert exists(conn, cfg.dn(role.ou)), name
        for g in role.groups:
            assert exists(conn, cfg.group_dn(g)), (name, g)
    for key, system in cfg.systems.items():
        if system.group:
            assert exists(conn, cfg.group_dn(system.group)), key
    for g in cfg.directory.privileged_groups:
        assert exists(conn, cfg.group_dn(g)), g
    conn.unbind()
    # a seeded person binds with the published password, by DN (OpenLDAP) or UPN (AD)
    c = info.connect(info.bind_name("zclarke"), hb.SANDBOX_PASSWORD)
    assert c.bound
    c.unbind()


def test_any_env_opens_the_layout(any_env: tuple) -> None:
    info, cfg, directory, state = any_env
    assert cfg.source == str(info.config_path) and state is not None and directory is not None
