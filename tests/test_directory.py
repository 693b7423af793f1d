"""The directory layer against real servers, on both flavours: TLS, failover, bind errors, paging, and
every flavour operation (disable, password, forced change, membership, escaping, nested groups)."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import pytest
from cli_helpers import user_bind

from aupctl import config as config_mod
from aupctl.directory import Directory, entries, normalise_dn, open_directory, same_dn
from aupctl.errors import AuthError, ConfigError, UnreachableError
from aupctl.passphrase import generate


@pytest.fixture(scope="module")
def cfg(sandbox):
    return config_mod.load(str(sandbox.config_path))


@pytest.fixture(scope="module")
def directory(cfg):
    d = open_directory(cfg)
    yield d
    d.close()


def with_dir(cfg, **changes):
    return dataclasses.replace(cfg, directory=dataclasses.replace(cfg.directory, **changes))


def test_connects_with_verified_tls(directory, cfg) -> None:
    assert directory.url in cfg.directory.url
    assert directory.conn is not None and directory.conn.bound
    assert directory.exists(cfg.dn(cfg.directory.staff_ou))


def test_failover_to_the_second_url(cfg) -> None:
    dead = "ldaps://127.0.0.1:1"
    d = Directory(with_dir(cfg, url=[dead, *cfg.directory.url], timeout=3), _password(cfg)).connect()
    assert d.url == cfg.directory.url[0]
    d.close()


def test_unreachable_names_every_url_within_the_timeout(cfg) -> None:
    urls = ["ldaps://127.0.0.1:1", "ldaps://127.0.0.1:2"]
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as exc:
        Directory(with_dir(cfg, url=urls, timeout=2), _password(cfg)).connect()
    assert time.monotonic() - t0 < 2 * 2 + 2
    assert all(u in exc.value.message for u in urls)
    assert exc.value.exit_code == 3


def test_wrong_password_is_a_refused_bind(cfg) -> None:
    with pytest.raises(AuthError) as exc:
        Directory(cfg, "not-the-password").connect()
    assert "refused the bind" in exc.value.message and exc.value.exit_code == 3


def test_untrusted_certificate_is_refused(cfg, tmp_path) -> None:
    import subprocess

    other = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(other),
            "-days",
            "1",
            "-subj",
            "/CN=not-the-school-ca",
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(UnreachableError, match="not trusted"):
        Directory(with_dir(cfg, ca_file=str(other)), _password(cfg)).connect()


def test_plain_ldap_is_refused_before_the_password_is_sent(cfg) -> None:
    with pytest.raises(ConfigError, match="plain LDAP"):
        Directory(
            with_dir(cfg, url=["ldap://127.0.0.1:1"], start_tls=False, allow_insecure=False), _password(cfg)
        ).connect()


def test_paged_search_reads_past_one_page(cfg) -> None:
    d = Directory(with_dir(cfg, page_size=10), _password(cfg)).connect()
    accounts = list(d.flavour.iter_accounts(d, with_groups=False))
    d.close()
    assert len(accounts) > 50
    assert len({a.dn for a in accounts}) == len(accounts)


def test_reconnects_once_after_a_lost_connection(cfg) -> None:
    d = Directory(cfg, _password(cfg)).connect()
    d.conn.socket.close()  # the server "went away" under us
    assert d.exists(cfg.dn(cfg.directory.staff_ou))
    d.close()


def _password(cfg) -> str:
    from aupctl.credentials import bind_password

    return bind_password(cfg.directory.bind_dn, cfg.directory.bind_password_file)


def _new_user(directory, cfg, display: str, username: str | None = None):
    username = username or "t" + uuid.uuid4().hex[:8]
    f = directory.flavour
    ou = cfg.dn(next(iter(cfg.roles.values())).ou)
    dn, classes, attrs = f.new_user(
        username=username,
        given_name=display.split()[0],
        surname=display.split()[-1],
        display_name=display,
        email=f"{username}@example.test",
        staff_code="T1",
        ou_dn=ou,
    )
    directory.add(dn, classes, attrs)
    password = generate()
    f.set_password(directory, dn, password)
    acct = f.find_user(directory, username)
    directory.modify(dn, f.enable_changes(acct))
    return f.find_user(directory, username), password


def test_account_lifecycle_disable_enable_password_and_forced_change(directory, cfg) -> None:
    f = directory.flavour
    acct, password = _new_user(directory, cfg, "Zoë O'Brien-Smith, Jr (*)")
    assert acct is not None and not acct.disabled
    assert acct.display_name == "Zoë O'Brien-Smith, Jr (*)"
    assert user_bind(cfg, acct.dn, password).bound

    directory.modify(acct.dn, f.disable_changes(acct))
    acct = f.find_user(directory, acct.username)
    assert acct.disabled
    assert not user_bind(cfg, acct.dn, password).bound  # a disabled account cannot log in

    directory.modify(acct.dn, f.enable_changes(acct))
    acct = f.find_user(directory, acct.username)
    assert not acct.disabled and user_bind(cfg, acct.dn, password).bound

    new = generate()
    f.set_password(directory, acct.dn, new)
    assert not user_bind(cfg, acct.dn, password).bound
    f.force_change(directory, acct.dn)
    assert f.find_user(directory, acct.username).must_change


def test_membership_is_idempotent_and_escaped(directory, cfg) -> None:
    f = directory.flavour
    acct, _ = _new_user(directory, cfg, "Anaïs a,b Test")
    group = cfg.group_dn(next(s.group for s in cfg.systems.values() if s.group))
    assert f.add_member(directory, group, acct.dn) is True
    assert f.add_member(directory, group, acct.dn) is False
    assert any(same_dn(g, group) for g in f.find_user(directory, acct.username).groups)
    assert f.remove_member(directory, group, acct.dn) is True
    assert f.remove_member(directory, group, acct.dn) is False
    assert not any(same_dn(g, group) for g in f.find_user(directory, acct.username).groups)


def test_filter_values_are_escaped(directory) -> None:
    f = directory.flavour
    assert f.find_user(directory, "*") is None
    assert f.find_user(directory, "x)(uid=*") is None
    assert "\\2a" in f.user_filter("*") and "\\28" in f.user_filter("(")


def test_ad_nested_groups_say_who_brought_a_member_in(ad_sandbox) -> None:
    cfg = config_mod.load(str(ad_sandbox.config_path))
    d = open_directory(cfg)
    members = d.flavour.effective_members(d, cfg.group_dn("SIMS Users"))
    d.close()
    assert members is not None
    via = {v for v in members.values() if v}
    assert any("SIMS Office" in v for v in via), "no member came in through the nested SIMS Office group"
    assert any(v is None for v in members.values()), "no direct members found"


def test_raw_searches_decode_entries_as_ldap3_does(cfg, monkeypatch) -> None:
    """Raw searches decode entries leanly (directory/entries.py): the same as ldap3's own decoder, paged,
    with the school's non-ASCII names, groups' member lists and every attribute of every entry."""
    decoded: list[str] = []
    decode = entries.decode_entry

    def counting(message: bytes) -> tuple | None:
        found = decode(message)
        if found is not None:
            decoded.append(found[1])
        return found

    monkeypatch.setattr(entries, "decode_entry", counting)
    lean = Directory(with_dir(cfg, page_size=50), _password(cfg)).connect()
    plain = Directory(with_dir(cfg, page_size=50), _password(cfg)).connect()
    del plain.conn.strategy._get_response  # back to ldap3's SyncStrategy._get_response
    del plain.conn.strategy.lean_entries
    fl = lean.flavour
    searches = [
        (cfg.dn(cfg.directory.staff_ou), fl.person_filter, [*fl.user_attributes, "objectClass"]),
        (cfg.directory.base_dn, fl.group_filter, ["member", "cn", "description"]),
        (cfg.directory.base_dn, "(objectClass=*)", ["*"]),
    ]
    for base, ldap_filter, attrs in searches:
        decoded.clear()
        got = list(lean.search(base, ldap_filter, attrs, raw=True))
        assert decoded == [dn for dn, _ in got], "not every entry was decoded leanly"
        assert got and got == list(plain.search(base, ldap_filter, attrs, raw=True))
        if base == cfg.directory.base_dn and attrs == ["*"]:
            assert len(got) > 50  # more than a page
    names = {
        v.decode()
        for _, a in lean.search(cfg.dn(cfg.directory.staff_ou), fl.person_filter, ["cn"], raw=True)
        for v in a["cn"]
    }
    assert any("ë" in n or "á" in n for n in names)
    lean.close()
    plain.close()


def test_connection_sends_without_nagle_delay(directory) -> None:
    # Nagle behind the server's delayed ACK held each command's bind ~40 ms
    assert directory.conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_openldap_group_of_unique_names_members_are_read(openldap_sandbox) -> None:
    """Other schools' OpenLDAP groups may be groupOfUniqueNames (uniqueMember, maybe with a #'..'B UID)."""
    cfg = config_mod.load(str(openldap_sandbox.config_path))
    d = open_directory(cfg)
    f = d.flavour
    people = [a.dn for a in f.iter_accounts(d, with_groups=False)][:3]
    gdn = cfg.group_dn("Unique Test " + uuid.uuid4().hex[:6])
    d.add(
        gdn, ["groupOfUniqueNames"], {"cn": gdn.split(",")[0][3:], "uniqueMember": [people[0], people[1] + "#'0101'B"]}
    )
    assert sorted(f.group_members(d, gdn)) == sorted(people[:2])
    assert sorted(f.all_groups(d)[normalise_dn(gdn)]) == sorted(people[:2])
    assert f.add_member(d, gdn, people[2]) is True
    assert f.remove_member(d, gdn, people[1]) is True
    assert sorted(f.group_members(d, gdn)) == sorted([people[0], people[2]])
    d.close()
