"""Every membership job on the nested AD layout (conftest's ad_nested): staff three OUs deep, system groups
under OU=Applications named by full DN, SIMS Users > SIMS Office > SIMS Office (<site>) nesting, a
2,000-member group (ranged reads), accounts made by hand (no mail, no employeeNumber/employeeID).
One AD DC for the module: each test takes its own people."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator

import pytest
from cli_helpers import payload, run_main

from aupctl import config as config_mod
from aupctl.access.adopt import adopt_plan
from aupctl.access.aup import import_plan
from aupctl.access.grant import grant_plan, revoke_plan
from aupctl.access.review import review
from aupctl.directory import normalise_dn, open_directory, same_dn
from aupctl.leavers.restore import restore
from aupctl.leavers.schedule import Request, withdraw
from aupctl.passwords.audit import privileged_members
from aupctl.plan import apply
from aupctl.records import approvals
from aupctl.sandbox import school as hb
from aupctl.state import State

TODAY = dt.date.today()


@pytest.fixture(scope="module")
def nested(ad_nested) -> Iterator[tuple]:
    info = ad_nested
    cfg = config_mod.load(str(info.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    apply(import_plan(cfg, d, st, str(info.dir / "aup-signatures.csv")), st)
    apply(adopt_plan(cfg, d, st, hb.HEADTEACHER), st)  # the safe order: adopt before review --fix
    try:
        yield info, cfg, d, st
    finally:
        st.close()
        d.close()


def test_review_through_three_levels_and_fix(nested) -> None:
    info, cfg, d, st = nested
    sims = cfg.systems["sims"].group
    members = d.flavour.members_of_groups(d, [sims])[sims]
    dhart = d.flavour.find_user(d, "dhart")
    assert dhart.ou.lower().startswith("ou=office,ou="), "staff three OUs deep"
    via = next(v for m, v in members.items() if same_dn(m, dhart.dn))
    assert via and "SIMS Office" in via, "found only by expanding the nesting"
    assert approvals.live(st, username="dhart", system="sims"), "adopt records members brought in by nesting"
    found = {(f.subject, f.check, f.system) for f in review(cfg, d, st).findings}
    assert ("tbarker", "leaver-member", "schoolcomms") in found
    assert ("hlowe", "disabled-member", "target_tracker") in found
    # (Schoolcomms' role findings depend on how roles known only by groups are resolved: not fixed here.)
    code, out, err = run_main("access", "review", "target_tracker", "--fix", "--yes", config=info.config_path)
    assert code == 1, out + err
    hlowe = d.flavour.find_user(d, "hlowe")
    tt = cfg.systems["target_tracker"].group
    assert not any(same_dn(m, hlowe.dn) for m in d.flavour.group_members(d, tt))


def test_grant_and_revoke_on_a_group_outside_groups_ou(nested) -> None:
    info, cfg, d, st = nested
    fl = d.flavour
    raise_dn = cfg.systems["raise"].group
    in_raise = {normalise_dn(m) for m in fl.group_members(d, raise_dn)}
    teacher = next(
        a
        for a in fl.iter_accounts(d)
        if any("teaching staff" in g.lower() for g in a.groups)
        and not any(g.lower().startswith("cn=leadership,") for g in a.groups)
        and normalise_dn(a.dn) not in in_raise
        and not a.disabled
        and a.username not in hb.UNSIGNED
        and a.username not in hb.PLANTED.values()
        and "," in a.ou.split(",", 2)[-1]
    )
    apply(grant_plan(cfg, d, st, teacher.username, "raise", hb.HEADTEACHER, "test"), st)
    assert any(same_dn(m, teacher.dn) for m in fl.group_members(d, raise_dn))
    apply(revoke_plan(cfg, d, st, teacher.username, "raise", "test over"), st)
    assert not any(same_dn(m, teacher.dn) for m in fl.group_members(d, raise_dn))


def test_leaver_from_a_nested_ou_and_a_hand_made_account(nested) -> None:
    info, cfg, d, st = nested
    fl = d.flavour
    taken = set(hb.PLANTED.values()) | set(hb.UNSIGNED) | {"dhart", "tbarker"}
    person = next(
        a
        for a in fl.iter_accounts(d)
        if "site," in a.ou.lower() and len(a.groups) >= 2 and not a.disabled and a.username not in taken
    )
    users = [person.username, "mbrown"]  # mbrown: CN=Brown\, Michael, made by hand, no mail
    before = {u: sorted(normalise_dn(g) for g in fl.find_user(d, u).groups) for u in users}
    assert all(before.values())
    apply(withdraw(cfg, d, st, [Request(u, None, "resigned") for u in users], today=TODAY), st)
    for u in users:
        gone = fl.find_user(d, u)
        assert gone.groups == [] and gone.disabled
    for u in users:
        apply(restore(cfg, d, st, u, credentials_out=str(info.dir / f"{u}.csv"), today=TODAY), st)
        assert sorted(normalise_dn(g) for g in fl.find_user(d, u).groups) == before[u], u


def test_big_group_privileged_and_staff_show(nested) -> None:
    info, cfg, d, st = nested
    pupils = d.flavour.group_members(d, cfg.group_dn("All Pupils"))
    assert len(pupils) == 2000, "every value of a 2,000-member group"
    found = privileged_members(cfg, d)
    dhart = d.flavour.find_user(d, "dhart")
    assert any("IT Admins" in g for g in found.get(normalise_dn(dhart.dn), [])), found.get(normalise_dn(dhart.dn))
    code, out, err = run_main("--format", "json", "staff", "show", "mbrown", config=info.config_path)
    assert code == 0, err
    shown = payload(out)
    shown = shown[0] if isinstance(shown, list) else shown
    assert shown["groups"], shown


def test_intake_of_roles_known_by_groups(nested, tmp_path) -> None:
    info, cfg, d, st = nested
    path = tmp_path / "intake.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role"])
        w.writerows([("Ngozi", "Eze", "ta")])
    creds = tmp_path / "creds.csv"
    code, out, err = run_main(
        "staff", "import", str(path), "--yes", "--credentials-out", str(creds), config=info.config_path
    )
    assert code == 0, out + err
    with creds.open() as fh:
        (username,) = [r["username"] for r in csv.DictReader(fh)]
    acct = d.flavour.find_user(d, username)
    assert same_dn(acct.ou, cfg.dn(cfg.directory.staff_ou)), "a role without ou: staff_ou"
    for g in cfg.roles["ta"].groups:
        assert any(same_dn(m, acct.dn) for m in d.flavour.group_members(d, cfg.group_dn(g))), g
