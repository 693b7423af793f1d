"""normalise_dn: its one-regex path for plain DNs (a review normalises 10,000s) agrees with the
split-and-strip path, and DNs that differ only in case or spacing compare the same."""

from __future__ import annotations

import re

import pytest

from aupctl.directory import is_under, normalise_dn, same_dn

WHITESPACE = [chr(c) for c in range(0x3001) if chr(c).isspace()]

DNS = [
    "uid=bench00001,ou=Teachers,ou=Staff,dc=hollybank,dc=test",
    "CN=Bench System 1 Users,OU=Groups,DC=hollybank,DC=test",
    "cn=Zo\u00eb Clarke,ou=Staff,dc=x",
    "cn=Gemma Smith-Jones,ou=Staff,dc=x",
    "cn=Siobh\u00e1n O'Brien,ou=Staff,dc=x",
    "CN=Smith\\, Jo,OU=Staff,DC=x",  # escaped comma
    "cn=a+uid=b,dc=x",  # multi-valued RDN
    "cn=\\#hash,dc=x",
    'cn="quoted",dc=x',
    "uid=a, ou=b,dc=c",  # spaces around separators
    "uid=a ,ou=b",
    "uid = a,ou=b",
    " uid=a,ou=b",
    "uid=a,ou=b ",
    "cn=a  b,dc=c",  # inner spaces are kept
    "cn=x=y,dc=z",  # '=' in a value
    "cn=x=y,a",  # malformed
    "a,cn=x",
    "uid=a,,dc=b",
    "=x,dc=y",
    "cn=,dc=y",
    "cn==x,dc=y",
    "",
    "\u0130stanbul=x,dc=y",  # lower() changes length
    *(f"cn=a{w},dc=b" for w in WHITESPACE),
    *(f"cn={w}a,dc=b" for w in WHITESPACE),
    *(f"cn=a{w}b,dc=b" for w in WHITESPACE),
]


def split_path(dn: str) -> str:
    """normalise_dn without its regex path (the function as it was before that path was added)."""
    from aupctl.directory import dn as dn_module

    real = dn_module._DN_PLAIN
    try:
        dn_module._DN_PLAIN = re.compile(r"(?!)")  # matches nothing
        return dn_module.normalise_dn.__wrapped__(dn)
    finally:
        dn_module._DN_PLAIN = real


@pytest.mark.parametrize("dn", DNS)
def test_regex_path_agrees_with_the_split_path(dn: str) -> None:
    assert normalise_dn.__wrapped__(dn) == split_path(dn)


def test_case_and_spacing_do_not_matter() -> None:
    assert same_dn("uid=Jo,OU=Staff,DC=x", "uid=jo, ou=staff ,dc=x")
    assert not same_dn("uid=jo,ou=Staff,dc=x", "uid=jo2,ou=Staff,dc=x")
    assert is_under("uid=jo,OU=Leavers,DC=x", "ou=leavers, dc=x")
    assert not is_under("uid=jo,ou=NotLeavers,dc=x", "ou=Leavers,dc=x")


def test_escaped_forms_of_one_value_compare_the_same() -> None:
    # slapd sends `\2C` for a comma a person wrote as `\,` (the flat sandbox's `cn=Brown\, Michael`)
    assert same_dn("cn=Brown\\2C Michael,ou=People,dc=x", "cn=Brown\\, Michael,ou=People,dc=x")
    assert same_dn("cn=Zo\\C3\\AB Clarke,dc=x", "cn=Zo\u00eb Clarke,dc=x")
    assert same_dn("uid=b+cn=a,dc=x", "cn=a+uid=b,dc=x")  # the order inside a multi-valued RDN
    assert not same_dn("cn=Brown\\2C Michael,dc=x", "cn=Brown Michael,dc=x")


def test_group_name_reads_an_escaped_cn_whole() -> None:
    from aupctl.directory import group_name

    # a group made by hand with a comma and angle brackets in its name: its nesting shown as "Ops\" before
    assert group_name("CN=Ops\\, Zoë \\<team\\>,OU=Groups,DC=hollybank,DC=test") == "Ops, Zoë <team>"
    assert group_name("CN=Ops\\2C Zo\\C3\\AB,OU=Groups,DC=x") == "Ops, Zoë"  # as a server may send it
    assert group_name("cn=sims,ou=Systems,ou=Groups,dc=x") == "sims"
    assert group_name("CN=Domain Admins,CN=Users,DC=x") == "Domain Admins"
