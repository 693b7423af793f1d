"""Pipelined writes (aupctl/directory/pipeline.py) and the intake's one-add path on OpenLDAP: the encoding is
byte for byte ldap3's, answers come back in order on a real slapd, and every refusal falls back to the long
way: a dropped connection (resent on a new one), a ppolicy that will not take a hashed password, a group that
already holds a new person."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import ldap3
import pytest
from ldap3.operation.add import add_operation
from ldap3.operation.modify import modify_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.asn1 import encode
from test_intake import credentials, password_works

from aupctl.config import load
from aupctl.directory import open_directory, pipeline, same_dn
from aupctl.plan import apply
from aupctl.staff import intake
from aupctl.state import State


def _ldap3(msgid: int, kind: str, request) -> bytes:
    m = LDAPMessage()
    m["messageID"] = MessageID(msgid)
    m["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    return encode(m)


@pytest.mark.parametrize("msgid", [1, 127, 128, 255, 256, 70000])
def test_add_is_encoded_as_ldap3_encodes_it(msgid: int) -> None:
    attrs = {
        "uid": "zoe.obrien",
        "cn": "Zoë O'Brien (a,b) *",
        "description": "é" * 200,  # a long-form length (two bytes)
        "mail": ["zoe@school.test", "z.obrien@school.test"],
        "employeeNumber": 42,
        "userPassword": b"{SSHA}\x00\xff",
    }
    dn = "uid=zoe.obrien,ou=Teachers,ou=Staff,dc=hollybank,dc=test"
    theirs = {"objectClass": ["inetOrgPerson"]} | {
        k: [str(x) if isinstance(x, int) else x for x in (v if isinstance(v, list) else [v])] for k, v in attrs.items()
    }
    expected = _ldap3(msgid, "addRequest", add_operation(dn, theirs, True))
    assert pipeline.message(msgid, pipeline.add_request(dn, ["inetOrgPerson"], attrs)) == expected


def test_modify_is_encoded_as_ldap3_encodes_it() -> None:
    members = [f"uid=user{i},ou=Staff,dc=test" for i in range(100)]  # a body longer than 255 bytes
    expected = _ldap3(
        9, "modifyRequest", modify_operation("cn=All Staff,dc=test", {"member": [(ldap3.MODIFY_ADD, members)]}, True)
    )
    ours = pipeline.message(
        9, pipeline.modify_request("cn=All Staff,dc=test", [(pipeline.MODIFY_ADD, "member", members)])
    )
    assert ours == expected


def test_answers_are_decoded_and_split_where_they_end() -> None:
    text = b"Password fails quality checking policy"
    body = pipeline._tlv(0x0A, bytes([19])) + pipeline._tlv(0x04, b"") + pipeline._tlv(0x04, text)
    answer = pipeline.message(300, pipeline._tlv(0x69, body))
    assert pipeline._decode(answer)[0] == 300
    result = pipeline._decode(answer)[2]
    assert (result.code, result.name, result.message, result.ok) == (19, "constraintViolation", text.decode(), False)
    big = pipeline.message(
        7,
        pipeline._tlv(0x67, pipeline._tlv(0x0A, b"\x00") + pipeline._tlv(0x04, b"") + pipeline._tlv(0x04, b"x" * 300)),
    )
    buf = bytearray(answer + big)
    assert pipeline._message_size(bytearray(buf[:1])) is None
    assert pipeline._message_size(bytearray(big[:2])) is None  # a long-form length not all here yet
    assert pipeline._message_size(buf) == len(answer)
    assert pipeline._message_size(bytearray(big)) == len(big)


# -- on a real slapd --


@pytest.fixture(scope="module")
def env(openldap_sandbox):
    cfg = load(str(openldap_sandbox.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    yield openldap_sandbox, cfg, d, st
    st.close()
    d.close()


def _people(prefix: str, n: int) -> list[tuple[str, list[str], dict]]:
    ou = "ou=Teachers,ou=Staff,dc=hollybank,dc=test"
    return [
        (f"uid={prefix}{i},{ou}", ["inetOrgPerson"], {"uid": f"{prefix}{i}", "sn": "Pipe", "cn": f"Pipe {prefix}{i}"})
        for i in range(n)
    ]


def test_many_requests_answered_in_order_and_ldap3_carries_on(env) -> None:
    info, cfg, d, st = env
    people = _people("plorder", 250)  # more than MAX_OUTSTANDING: sent as answers come back
    people[120] = ("uid=plorder120,ou=Nowhere,dc=hollybank,dc=test", people[120][1], people[120][2])
    conn = d.conn
    results = pipeline.Pipeline(d).run([pipeline.add_request(*p) for p in people], "testing")
    assert len(results) == 250
    assert [r.name for r in results].count("success") == 249
    assert results[120].name == "noSuchObject"
    again = pipeline.Pipeline(d).run([pipeline.add_request(*people[0])], "testing")
    assert again[0].name == "entryAlreadyExists"
    assert d.conn is conn  # the same connection throughout, and ldap3 reads it as before
    found = list(d.search(cfg.directory.base_dn, "(uid=plorder*)", ["uid"]))
    assert len(found) == 249


def write_file(path: Path, prefix: str, count: int) -> list[str]:
    codes = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role", "staff_code"])
        for i in range(count):
            codes.append(f"{prefix}{i:03d}")
            w.writerow(["Piper", f"Ó Néill-{chr(97 + i % 26)}{i}", "teacher", codes[-1]])
    return codes


def import_file(cfg, d, st, f: Path, creds: Path, *, before_apply=None):
    people = intake.read_intake(cfg, f)
    plan = intake.build(cfg, d, st, people, credentials_out=str(creds), source=str(f))
    plan.check_ready()
    if before_apply:
        before_apply(plan)
    try:
        apply(plan.plan, st)
    finally:
        plan.close()
    return plan


def check_ready(info, cfg, d, codes: list[str], creds: Path) -> None:
    """Each person once, enabled, must change the password, the one in the file works, in their groups."""
    fl = d.flavour
    written = credentials(creds)
    teacher_groups = [cfg.group_dn(g) for g in cfg.roles["teacher"].groups]
    for code in codes:
        found = [
            fl.account(dn, a)
            for dn, a in d.search(cfg.directory.base_dn, f"(employeeNumber={code})", fl.user_attributes)
        ]
        assert len(found) == 1, code
        acct = found[0]
        assert not acct.disabled and acct.must_change, acct.username
        assert acct.password_changed is not None  # set in the add: dated from the entry's creation
        assert password_works(info, cfg, acct, written[acct.username]["password"]), acct.username
        for g in teacher_groups:
            assert fl.is_member(d, g, acct.dn), (acct.username, g)


def test_connection_dropped_after_the_adds_are_sent_is_resent_on_a_new_one(env, tmp_path, monkeypatch) -> None:
    info, cfg, d, st = env
    f = tmp_path / "drop.csv"
    codes = write_file(f, "PD", 12)
    real = pipeline.Pending._receive_all
    dropped = []

    def drop_once(self):
        if not dropped:
            dropped.append(self.what)
            # the connection dropped under the TLS layer (the server may have made some: never read)
            with socket.fromfd(self.directory.conn.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM) as raw:
                raw.shutdown(socket.SHUT_RDWR)
        return real(self)

    monkeypatch.setattr(pipeline.Pending, "_receive_all", drop_once)
    import_file(cfg, d, st, f, tmp_path / "creds.csv")
    assert dropped == ["creating accounts"]
    check_ready(info, cfg, d, codes, tmp_path / "creds.csv")
    assert not st.query("SELECT * FROM provisioned WHERE status='creating'")


def test_ppolicy_refusing_hashed_passwords_falls_back_to_the_long_way(env, tmp_path) -> None:
    info, cfg, d, st = env
    admin = info.connect(info.admin_dn, info.admin_password)
    policy = f"cn=default,ou=policies,{info.base_dn}"
    assert admin.modify(policy, {"pwdCheckQuality": [(ldap3.MODIFY_REPLACE, ["2"])]}), admin.result
    try:
        f = tmp_path / "quality.csv"
        codes = write_file(f, "PQ", 5)
        plan = import_file(cfg, d, st, f, tmp_path / "creds.csv")
        assert plan.runner is not None and plan.runner.one_request is False  # told by the server, not assumed
        check_ready(info, cfg, d, codes, tmp_path / "creds.csv")
    finally:
        admin.modify(policy, {"pwdCheckQuality": [(ldap3.MODIFY_REPLACE, ["1"])]})
        admin.unbind()


def test_a_group_already_holding_a_new_person_is_done_member_by_member(env, tmp_path) -> None:
    info, cfg, d, st = env
    f = tmp_path / "held.csv"
    codes = write_file(f, "PH", 6)
    group = cfg.group_dn(cfg.roles["teacher"].groups[0])

    def put_one_in_first(plan) -> None:
        first = next(e for e in plan.entries if e.action == "create")
        d.modify(group, {"member": [(ldap3.MODIFY_ADD, [first.dn])]})  # as a half-finished earlier run might

    plan = import_file(cfg, d, st, f, tmp_path / "creds.csv", before_apply=put_one_in_first)
    check_ready(info, cfg, d, codes, tmp_path / "creds.csv")
    members = [m for m in d.read(group, ["member"])["member"]]
    for e in plan.entries:
        assert sum(same_dn(m, e.dn) for m in members) == 1


def test_ad_makes_accounts_the_long_way(ad_sandbox) -> None:
    cfg = load(str(ad_sandbox.config_path))
    with open_directory(cfg) as d:
        assert d.flavour.ready_user({"sAMAccountName": "x"}, "Some-Pass-Word-77") is None
        assert d.flavour.pipelined_writes is False
