"""directory/entries.py: the lean SearchResultEntry decoder gives what ldap3's own decoder gives, and
leaves anything else (other operations, ranged attributes, malformed or odd messages) to ldap3.
Messages are encoded by ldap3's pyasn1 definitions of RFC 4511, independent of the decoder under test.
The same comparison against slapd and Samba AD is in test_directory.py."""

from __future__ import annotations

import pytest
from ldap3.operation.search import search_result_entry_response_to_dict_fast
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    LDAPOID,
    AttributeDescription,
    AttributeValue,
    Control,
    Controls,
    Criticality,
    LDAPMessage,
    LDAPResult,
    MessageID,
    PartialAttribute,
    PartialAttributeList,
    ProtocolOp,
    ResultCode,
    SearchResultDone,
    SearchResultEntry,
    Vals,
)
from ldap3.utils.asn1 import decode_message_fast, encode

from aupctl.directory.entries import decode_entry


def entry_message(mid: int, dn: str, attrs: dict[str, list[bytes]], *, control: str = "") -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    attributes = PartialAttributeList()
    for i, (name, vals) in enumerate(attrs.items()):
        pa = PartialAttribute()
        pa["type"] = AttributeDescription(name)
        vs = Vals()
        for j, v in enumerate(vals):
            vs.setComponentByPosition(j, AttributeValue(v))
        pa["vals"] = vs
        attributes.setComponentByPosition(i, pa)
    entry["attributes"] = attributes
    msg = LDAPMessage()
    msg["messageID"] = MessageID(mid)
    op = ProtocolOp()
    op.setComponentByName("searchResEntry", entry)
    msg["protocolOp"] = op
    if control:
        c = Control()
        c["controlType"] = LDAPOID(control)
        c["criticality"] = Criticality(False)
        controls = Controls().subtype(implicitTag=Controls.tagSet[0])
        controls.setComponentByPosition(0, c)
        msg["controls"] = controls
    return encode(msg)


def ldap3_raw(message: bytes) -> tuple[int, str, dict[str, list[bytes]]]:
    decoded = decode_message_fast(message)
    assert decoded["protocolOp"] == 4
    entry = search_result_entry_response_to_dict_fast(decoded["payload"], None, None, False)
    return decoded["messageID"], entry["dn"], {k: list(v or []) for k, v in entry["raw_attributes"].items()}


CASES = [
    (1, "uid=jsmith,ou=Teachers,ou=Staff,dc=school,dc=test", {"uid": [b"jsmith"], "cn": [b"Jane Smith"]}),
    # names people really have, DN escapes, a multi-valued attribute, binary values
    (
        70000,
        "cn=O'Brien\\, Zo\u00eb,ou=Staff,dc=school,dc=test",
        {"cn": ["O'Brien, Zo\u00eb".encode()], "objectClass": [b"top", b"person", b"inetOrgPerson"]},
    ),
    (2**31 - 1, "uid=a*(b),dc=x", {"objectGUID": [bytes(range(16))], "description": [b"a,b"]}),
    # long-form lengths: a value over 127 and over 65,535 bytes, a group of 3,000 members
    (5, "cn=big,dc=x", {"description": [b"x" * 200], "jpegPhoto": [b"\xff" * 70_000]}),
    (6, "cn=Staff,ou=Groups,dc=x", {"member": [f"uid=u{i:05d},ou=Staff,dc=x".encode() for i in range(3000)]}),
    (7, "cn=nothing,dc=x", {}),  # an entry read with no attributes (1.1)
    (8, "", {"namingContexts": [b"dc=x"]}),  # the root DSE
]


@pytest.mark.parametrize("mid,dn,attrs", CASES)
def test_decodes_as_ldap3_does(mid: int, dn: str, attrs: dict[str, list[bytes]]) -> None:
    message = entry_message(mid, dn, attrs)
    assert decode_entry(message) == ldap3_raw(message) == (mid, dn, attrs)


def test_other_operations_are_left_to_ldap3() -> None:
    done = SearchResultDone()
    done["resultCode"] = ResultCode("success")
    done["matchedDN"] = LDAPDN("")
    done["diagnosticMessage"] = LDAPResult()["diagnosticMessage"].clone("")
    msg = LDAPMessage()
    msg["messageID"] = MessageID(3)
    op = ProtocolOp()
    op.setComponentByName("searchResDone", done)
    msg["protocolOp"] = op
    assert decode_entry(encode(msg)) is None


def test_ranged_attribute_is_left_to_ldap3_auto_range() -> None:
    message = entry_message(4, "CN=Big,OU=Groups,DC=x", {"member;range=0-1499": [b"CN=a,DC=x"]})
    assert decode_entry(message) is None


def test_entry_with_controls_is_left_to_ldap3() -> None:
    message = entry_message(4, "uid=a,dc=x", {"uid": [b"a"]}, control="1.3.6.1.4.1.4203.1.9.1.2")
    assert decode_message_fast(message)["controls"]  # really carries one
    assert decode_entry(message) is None


def test_malformed_or_odd_messages_are_left_to_ldap3() -> None:
    good = entry_message(9, "uid=a,dc=x", {"uid": [b"a"], "cn": [b"A"]})
    assert decode_entry(good) is not None
    for cut in range(1, len(good)):
        assert decode_entry(good[:cut]) is None, cut  # truncated anywhere
    assert decode_entry(good + b"\x00\x00") is None  # junk after the attributes
    latin1_dn = entry_message(9, "uid=a,dc=x", {"uid": [b"a"]}).replace(b"uid=a", b"uid=\xe9")
    assert decode_entry(latin1_dn) is None  # ldap3 tries its other encodings
    assert decode_entry(b"") is None
