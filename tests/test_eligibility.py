"""The one eligibility rule (aupctl/eligibility.py): what grant refuses with is what review reports first."""

from __future__ import annotations

import pytest

from aupctl.config import parse
from aupctl.directory import Account
from aupctl.eligibility import ineligible, is_leaver
from aupctl.roles import RoleInfo

CONFIG = """
[school]
name = "St Swithun's"
aup_version = "2025-09"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:1"
bind_dn = "cn=x,dc=s,dc=test"
base_dn = "dc=s,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"

[roles.teacher]
ou = "ou=Teachers,ou=Staff"
systems = ["sims"]

[roles.ta]
ou = "ou=TAs,ou=Staff"
systems = []

[systems.sims]
name = "SIMS"
group = "SIMS Users"
approvers = ["Mrs K Adeyemi"]

[state]
path = "state.db"
"""

TEACHER = RoleInfo("teacher", "account is in ou=Teachers,ou=Staff,dc=s,dc=test")
TA = RoleInfo("ta", "account is in ou=TAs,ou=Staff,dc=s,dc=test")
NONE = RoleInfo(None, "no role: not in a role's OU or groups, and none recorded")


@pytest.fixture
def cfg(tmp_path):
    return parse(CONFIG, str(tmp_path / "config.toml"))


def _acct(ou: str, *, disabled: bool = False) -> Account:
    return Account(dn=f"uid=jo,{ou},dc=s,dc=test", username="jo", display_name="Jo Bloggs", disabled=disabled)


def test_an_eligible_teacher_has_no_reason(cfg) -> None:
    assert ineligible(cfg, _acct("ou=Teachers,ou=Staff"), "sims", TEACHER, True) == []


def test_every_reason_in_order(cfg) -> None:
    # Disabled, a role that may not hold SIMS, and unsigned: all three, the disabled account first.
    found = ineligible(cfg, _acct("ou=TAs,ou=Staff", disabled=True), "sims", TA, False)
    assert [p.check for p in found] == ["disabled-member", "role-not-eligible", "aup-unsigned"]
    assert "is disabled" in found[0].reason
    assert "may not be nominated for SIMS" in found[1].reason and "roles.ta.systems: none" in found[1].reason
    assert "has not signed the current AUP (version 2025-09)" in found[2].reason
    assert "aupctl aup sign jo" in found[2].refusal()


def test_a_leaver_needs_no_role(cfg) -> None:
    leaver = _acct("ou=Leavers")
    assert is_leaver(cfg, leaver)
    found = ineligible(cfg, leaver, "sims", NONE, False)
    assert [p.check for p in found] == ["leaver-member", "aup-unsigned"]
    assert "is a leaver (in ou=Leavers,dc=s,dc=test)" in found[0].reason


def test_no_role_and_the_aup_not_asked(cfg) -> None:
    # signed=None: the caller records the signature in the same plan (aup sign applying a waiting grant).
    found = ineligible(cfg, _acct("ou=Staff"), "sims", NONE, None)
    assert [p.check for p in found] == ["role-not-eligible"]
    assert "has no role" in found[0].reason and "staff set-role" in found[0].refusal()
