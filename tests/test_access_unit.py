"""Pure parts of access and aup: approver matching, dates, the signatures CSV, the fix plan built
from findings, and the AD nesting walk (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from aupctl.access.aup import read_signatures
from aupctl.access.aup import signed_date as parse_date
from aupctl.access.grant import canonical_approver, parse_until
from aupctl.access.review import CHECKS, Problem, Review, _finding, fix_plan
from aupctl.config import parse
from aupctl.errors import InputError, RefusedError
from aupctl.state import State

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
systems = ["sims", "sap"]

[systems.sims]
name = "SIMS"
group = "SIMS Users"
approvers = ["Mrs K Adeyemi (Headteacher)", "Mr P Doyle (School Business Manager)", "Mrs K Adams (Deputy)"]

[systems.sap]
name = "SAP"
approvers = ["Mr P Doyle (School Business Manager)"]
instructions = "Form HR-ICT-7"

[state]
path = "state.db"
"""


@pytest.fixture
def cfg():
    return parse(CONFIG, "test.toml")


def test_approver_exact_prefix_and_case(cfg) -> None:
    assert canonical_approver(cfg, "sims", "mrs k adeyemi (headteacher)") == "Mrs K Adeyemi (Headteacher)"
    assert canonical_approver(cfg, "sims", "Mr  P   Doyle") == "Mr P Doyle (School Business Manager)"
    with pytest.raises(RefusedError, match="not an approver for SIMS"):
        canonical_approver(cfg, "sims", "Mrs K Ad")  # two approvers start so: ambiguous
    with pytest.raises(RefusedError, match=r"systems\.sap\.approvers"):
        canonical_approver(cfg, "sap", "Mrs K Adeyemi")
    with pytest.raises(RefusedError):
        canonical_approver(cfg, "sims", "Mr")  # too short to be a prefix
    with pytest.raises(InputError, match="empty"):
        canonical_approver(cfg, "sims", "  ")


def test_until_and_dates() -> None:
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    assert parse_until(future) == future and parse_until(None) is None and parse_until("") is None
    with pytest.raises(InputError, match="already passed"):
        parse_until("2001-01-01")
    with pytest.raises(InputError, match="not a date"):
        parse_until("next July")
    assert parse_date("05/09/2024", "x") == dt.date(2024, 9, 5)
    with pytest.raises(InputError, match="in the future"):
        parse_date(future, "x")


def test_until_on_and_the_csv_read_dates_one_way(cfg, tmp_path) -> None:
    """--until, aup sign --on and the signatures CSV all read dates through dates.py: UK day-first works, a
    US-style date is refused naming the accepted forms (never read as another day)."""
    year = dt.date.today().year + 2
    assert parse_until(f"31/07/{year}") == f"{year}-07-31"
    with pytest.raises(InputError, match=r"--until: .*YYYY-MM-DD or DD/MM/YYYY"):
        parse_until(f"07/31/{year}")
    assert parse_date("13/09/2024", "--on") == dt.date(2024, 9, 13)
    with pytest.raises(InputError, match=r"--on: .*YYYY-MM-DD or DD/MM/YYYY"):
        parse_date("09/13/2024", "--on")
    p = tmp_path / "s.csv"
    p.write_text("username,signed_on\na,13/09/2024\nb,09/13/2024\n")
    with pytest.raises(InputError, match=r"line 3: signed_on: .*DD/MM/YYYY.*nothing was recorded"):
        read_signatures(cfg, str(p))


def test_signatures_csv(cfg, tmp_path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("\ufeffUsername,AUP Version,Date Signed\nzclarke,,2025-09-03\nO'Brien-Smith,2024-09,03/09/2024\n")
    rows = read_signatures(cfg, str(p))
    assert [(r.line, r.username, r.version, r.signed_on.isoformat()) for r in rows] == [
        (2, "zclarke", "2025-09", "2025-09-03"),
        (3, "O'Brien-Smith", "2024-09", "2024-09-03"),
    ]
    p.write_text("username,signed_on\na,2024-01-01\nb,bad\nc,bad\n")
    with pytest.raises(InputError, match="line 3.*line 4.*nothing was recorded"):
        read_signatures(cfg, str(p))


def test_checks_cite_clauses() -> None:
    assert CHECKS["aup-unsigned"][0] == "9.1"
    assert all(clause == "1.3" for check, (clause, _, _) in CHECKS.items() if check != "aup-unsigned")
    assert not CHECKS["approval-overdue"][2] and not CHECKS["not-a-member"][2]


def _problem(check: str, user: str, system: str, dn: str | None = None, via: str | None = None, appr=None) -> Problem:
    return Problem(_finding(check, user, system, "x"), system, user, dn, via, appr)


def test_fix_plan_from_findings(cfg, tmp_path) -> None:
    st = State(tmp_path / "state.db")
    appr = {"id": 7, "username": "oshaw", "system": "sims", "status": "active", "approver": "A"}
    appr2 = {"id": 8, "username": "wgreen", "system": "sims", "status": "active", "approver": "A"}
    appr3 = {"id": 9, "username": "jsap", "system": "sap", "status": "active", "approver": "A"}
    result = Review(
        [
            _problem("no-approval", "outsider", "sims", "uid=outsider,ou=Teachers,ou=Staff,dc=s,dc=test"),
            _problem("aup-unsigned", "oshaw", "sims", "uid=oshaw,ou=Teachers,ou=Staff,dc=s,dc=test", appr=appr),
            _problem("role-not-eligible", "wgreen", "sims", "uid=wgreen,dc=s,dc=test", appr=appr2),
            _problem("aup-unsigned", "wgreen", "sims", "uid=wgreen,dc=s,dc=test", appr=appr2),
            _problem("no-approval", "nested", "sims", "uid=nested,dc=s,dc=test", via="cn=SIMS Office,dc=s,dc=test"),
            _problem("approval-overdue", "old", "sims", "uid=old,dc=s,dc=test"),
            _problem("not-a-member", "drift", "sims"),
            _problem("disabled-member", "jsap", "sap", appr=appr3),
        ],
        {},
    )
    plan = fix_plan(cfg, None, st, result)  # type: ignore[arg-type]
    rows = [(c.action, c.target) for c in plan.changes]
    assert rows == [
        ("open-task", "jsap"),
        ("end-approval", "jsap"),
        ("remove-member", "oshaw"),
        ("approval-waiting", "oshaw"),
        ("remove-member", "outsider"),
        ("remove-member", "wgreen"),
        ("end-approval", "wgreen"),
    ]
    assert any("SIMS Office" in n and "nested" in n for n in plan.notes)
    assert any("review_days" in n for n in plan.notes)
    assert "Form HR-ICT-7" in plan.changes[0].description
    st.close()


def test_ad_nesting_walk_names_the_first_group() -> None:
    from aupctl.directory import ActiveDirectory, normalise_dn

    class FakeGroups(ActiveDirectory):
        def __init__(self, groups):
            self.groups = groups

        def all_groups(self, directory):
            return {normalise_dn(k): v for k, v in self.groups.items()}

    top, office, inner = "CN=SIMS Users,DC=s", "CN=SIMS Office,DC=s", "CN=Inner,DC=s"
    fl = FakeGroups({top: ["CN=A,DC=s", office], office: ["CN=B,DC=s", inner, top], inner: ["CN=C,DC=s", "CN=A,DC=s"]})
    out = fl.members_of_groups(None, [top, "CN=Missing,DC=s"])  # type: ignore[arg-type]
    assert out[top] == {"CN=A,DC=s": None, "CN=B,DC=s": office, "CN=C,DC=s": office}
    assert out["CN=Missing,DC=s"] is None
