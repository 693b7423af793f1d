"""Leavers against real servers, on both flavours: withdraw now, schedule and run-due, cancel, restore
(and the forced password change), an account already disabled or moved, an unknown user, a wave
killed part-way and finished by a re-run, RDN clashes and hostile names."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
from cli_helpers import user_bind

from aupctl import config as config_mod
from aupctl.directory import is_under, open_directory, parse_filetime, same_dn
from aupctl.errors import NotFoundError, PartialError, RefusedError
from aupctl.leavers.restore import restore
from aupctl.leavers.schedule import Request, run_due, withdraw
from aupctl.leavers.withdraw import current_row, leaver_tasks
from aupctl.plan import Plan, apply
from aupctl.records import approvals, tasks
from aupctl.records.leavers import DONE, SCHEDULED
from aupctl.sandbox import school as hb
from aupctl.state import State

TODAY = dt.date.today()
PLANTED = set(hb.PLANTED.values()) | {hb.LEGIT_IT_ADMIN}


@pytest.fixture(scope="module")
def cfg(sandbox):
    return config_mod.load(str(sandbox.config_path))


@pytest.fixture(scope="module")
def directory(cfg):
    d = open_directory(cfg)
    yield d
    d.close()


@pytest.fixture(scope="module")
def state(cfg):
    st = State(cfg.state.path)
    yield st
    st.close()


def candidates(flavour: str) -> list[hb.Person]:
    """Seeded staff with the known sandbox password, none planted."""
    return [
        p
        for p in hb.school().staff
        if not p.leaver
        and not p.disabled
        and p.username not in PLANTED
        and p.role in ("teacher", "ta", "office")
        and hb.password_for(p.username, flavour) == hb.SANDBOX_PASSWORD
    ]


@pytest.fixture(scope="module")
def people(sandbox) -> Iterator[hb.Person]:
    """Each test takes its own people (the last two are kept back: a colleague, and one for OpenLDAP only)."""
    return iter(candidates(sandbox.flavour)[:-2])


def directory_dn(cfg, username: str) -> str:
    d = open_directory(cfg)
    try:
        return d.flavour.find_user(d, username).dn
    finally:
        d.close()


def take(people: Iterator[hb.Person], *systems: str) -> hb.Person:
    """The next person in the groups of all these systems."""
    for p in people:
        if set(systems) <= set(p.systems):
            return p
    raise AssertionError(f"no more sandbox staff in {systems}")


def grant(state: State, username: str, system: str, days_ago: int = 0) -> int:
    """An approval as the access commands record it, granted `days_ago` days ago."""
    aid = approvals.record(state, username=username, system=system, approver=hb.HEADTEACHER, reason="test")
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    state.execute("UPDATE approvals SET granted_at = ? WHERE id = ?", (when.replace(microsecond=0).isoformat(), aid))
    return aid


def give_laptop(state: State, username: str) -> str:
    tag = f"HB-{uuid.uuid4().hex[:5].upper()}"
    state.execute(
        "INSERT INTO devices (tag, host, os, host_key_type, host_key, fingerprint, assigned_to, enrolled_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        (tag, "127.0.1.9", "windows", "ssh-ed25519", "AAAA", "SHA256:x", username, "2026-01-01T00:00:00+00:00"),
    )
    return tag


def withdraw_now(cfg, directory, state, *usernames: str, reason: str = "resigned", today: dt.date = TODAY) -> Plan:
    plan = withdraw(cfg, directory, state, [Request(u, None, reason) for u in usernames], today=today)
    apply(plan, state)
    return plan


def audit_count(state: State) -> int:
    return state.query("SELECT count(*) AS n FROM audit")[0]["n"]


def assert_withdrawn(cfg, directory, state, username: str, leave_on: dt.date, reason: str) -> Any:
    f = directory.flavour
    acct = f.find_user(directory, username)
    assert acct.disabled
    assert acct.groups == []
    assert is_under(acct.dn, cfg.dn(cfg.directory.leavers_ou))
    assert acct.description == f"Left {leave_on}: {reason}"
    assert approvals.live(state, username=username) == []
    if f.name == "ad":
        raw = directory.read(acct.dn, ["accountExpires"], raw=True)
        expires = parse_filetime(int(next(iter(raw.values()))[0]))
        assert expires == dt.datetime.combine(leave_on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    row = current_row(state, username)
    assert row["status"] == DONE and row["done_at"] and same_dn(row["dn"], acct.dn)
    return acct


# -- withdraw now --


def test_withdraw_now_takes_everything_and_opens_the_tasks(cfg, directory, state, people) -> None:
    person = take(people, "sims")
    user = person.username
    before = directory.flavour.find_user(directory, user)
    assert user_bind(cfg, before.dn, hb.SANDBOX_PASSWORD).bound
    grant(state, user, "sims")
    grant(state, user, "sap")  # by hand: a task to remove it
    tag = give_laptop(state, user)

    plan = withdraw_now(cfg, directory, state, user, reason="resigned")
    actions = [c.action for c in plan.changes]
    assert actions[0] == "leaver-snapshot" and actions[-1] == "leaver-done"
    assert actions.index("disable") < actions.index("move") and actions.count("remove-member") == len(before.groups)

    acct = assert_withdrawn(cfg, directory, state, user, TODAY, "resigned")
    assert not user_bind(cfg, acct.dn, hb.SANDBOX_PASSWORD).bound  # the old password is gone for good
    assert not user_bind(cfg, before.dn, hb.SANDBOX_PASSWORD).bound
    row = current_row(state, user)
    snap = json.loads(row["snapshot"])
    assert same_dn(snap["dn"], before.dn) and sorted(snap["groups"]) == sorted(before.groups)
    assert {a["system"] for a in snap["approvals"]} == {"sims", "sap"}
    assert snap["attributes"]["description"] == [before.description]

    opened = {t["kind"]: t for t in leaver_tasks(state, row["id"])}
    assert set(opened) == {"revoke", "collect-laptop", "mailbox"}
    assert opened["revoke"]["system"] == "sap" and "SAP" in opened["revoke"]["text"]
    assert opened["collect-laptop"]["text"] == f"Collect laptop {tag} from {person.display_name} ({user})"
    assert "7.2.3" in opened["mailbox"]["text"]
    ended = approvals.live(state, username=user, status=("ended",))
    assert {a["ended_reason"] for a in ended} == {f"left {TODAY}: resigned"}
    actions_logged = {e.action for e in state.audit_entries(target=user)}
    assert {"leaver-snapshot", "disable", "set-password", "remove-member", "move", "open-task"} <= actions_logged

    again = withdraw(cfg, directory, state, [Request(user)], today=TODAY)
    assert again.empty and "already withdrawn" in again.notes[0]  # nothing twice
    assert len(leaver_tasks(state, row["id"])) == 3


def test_an_account_already_disabled_moved_and_half_stripped_is_carried_on(cfg, directory, state, people) -> None:
    f = directory.flavour
    user = take(people, "sims").username
    acct = f.find_user(directory, user)
    directory.modify(acct.dn, f.disable_changes(acct))  # someone got there first, by hand
    f.remove_member(directory, acct.groups[0], acct.dn)
    leavers = cfg.dn(cfg.directory.leavers_ou)
    directory.move(acct.dn, leavers)
    acct = f.find_user(directory, user)
    assert acct.disabled and is_under(acct.dn, leavers)

    plan = withdraw(cfg, directory, state, [Request(user, None, "dismissed")], today=TODAY)
    actions = [c.action for c in plan.changes]
    assert "move" not in actions
    if f.password_change_unlocks:  # OpenLDAP: locked again after the password is set
        assert actions[:3] == ["leaver-snapshot", "set-password", "disable"]
    else:
        assert "disable" not in actions
    apply(plan, state)
    acct = assert_withdrawn(cfg, directory, state, user, TODAY, "dismissed")
    assert not user_bind(cfg, acct.dn, hb.SANDBOX_PASSWORD).bound


def test_an_unknown_user_refuses_the_lot_before_anything_changes(cfg, directory, state, people) -> None:
    good = take(people).username
    n = audit_count(state)
    with pytest.raises(NotFoundError) as exc:
        withdraw(cfg, directory, state, [Request(good), Request("nosuch*)(uid=*"), Request("x,y")], today=TODAY)
    with pytest.raises(NotFoundError, match="the same account"):
        withdraw(cfg, directory, state, [Request(good), Request(good.upper())], today=TODAY)
    assert "2 leaver(s) refused; nothing was changed" in exc.value.message
    assert "'nosuch*)(uid=*': no such account" in exc.value.message
    assert audit_count(state) == n and current_row(state, good) is None
    assert not directory.flavour.find_user(directory, good).disabled


def test_rdn_clash_in_the_leavers_ou_is_refused_with_nothing_changed(cfg, directory, state, people) -> None:
    f = directory.flavour
    acct = f.find_user(directory, take(people).username)
    rdn = acct.dn.split(",", 1)[0]
    squatter = f"{rdn},{cfg.dn(cfg.directory.leavers_ou)}"
    if f.name == "ad":  # a contact is a person but not a user: not an account aupctl would find
        directory.add(squatter, ["top", "person", "organizationalPerson", "contact"], {"description": "old leaver"})
    else:
        directory.add(squatter, ["account"], {"uid": acct.username, "description": "old leaver"})
    n = audit_count(state)
    with pytest.raises(RefusedError, match="already exists"):
        withdraw(cfg, directory, state, [Request(acct.username)], today=TODAY)
    assert audit_count(state) == n and not f.find_user(directory, acct.username).disabled


# -- scheduling --


def test_scheduled_then_run_due_on_the_day_and_not_before(cfg, directory, state, people) -> None:
    f = directory.flavour
    user = take(people).username
    day = TODAY + dt.timedelta(days=10)
    plan = withdraw(cfg, directory, state, [Request(user, day, "end of contract")], today=TODAY)
    assert [c.action for c in plan.changes] == ["leaver-schedule"]
    apply(plan, state)
    assert current_row(state, user)["status"] == SCHEDULED
    assert not f.find_user(directory, user).disabled

    early = run_due(cfg, directory, state, today=day - dt.timedelta(days=1))
    assert all(c.target != user for c in early.changes)
    apply(early, state)  # other tests' leftovers only; ours stays scheduled
    assert current_row(state, user)["status"] == SCHEDULED and not f.find_user(directory, user).disabled

    due = run_due(cfg, directory, state, today=day)
    assert any(c.target == user and c.action == "disable" for c in due.changes)
    apply(due, state)
    assert_withdrawn(cfg, directory, state, user, day, "end of contract")
    assert all(c.target != user for c in run_due(cfg, directory, state, today=day).changes)  # nothing twice


def test_rescheduling_and_cancel(cfg, directory, state, people) -> None:
    from aupctl.leavers.schedule import cancel

    user = take(people).username
    first, later = TODAY + dt.timedelta(days=5), TODAY + dt.timedelta(days=8)
    apply(withdraw(cfg, directory, state, [Request(user, first, "maternity cover ends")], today=TODAY), state)
    assert withdraw(cfg, directory, state, [Request(user, first)], today=TODAY).empty  # same again: nothing
    plan = withdraw(cfg, directory, state, [Request(user, later)], today=TODAY)
    assert [c.action for c in plan.changes] == ["leaver-reschedule"]
    apply(plan, state)
    assert current_row(state, user)["leave_on"] == later.isoformat()
    assert current_row(state, user)["reason"] == "maternity cover ends"

    apply(cancel(state, user), state)
    assert current_row(state, user) is None
    assert all(c.target != user for c in run_due(cfg, directory, state, today=later).changes)
    assert not directory.flavour.find_user(directory, user).disabled


# -- restore --


def change_password_as_user(sandbox, cfg, dn: str, username: str, old: str, new: str) -> None:
    """The person chooses their own password, as themselves (not as the admin)."""
    if sandbox.flavour == "openldap":
        conn = user_bind(cfg, dn, old)
        assert conn.bound
        assert conn.extend.standard.modify_password(user=dn, old_password=old, new_password=new), conn.result
        conn.unbind()
        return
    # AD refuses the must-change account's own bind (data 773), so the change is made as Windows makes it
    # at the logon screen: a *change* (delete the old password, add the new) that only the old password
    # allows, sent over a colleague's ordinary bind (AD grants Everyone the Change Password right).
    colleague = candidates(sandbox.flavour)[-1]
    conn = user_bind(cfg, directory_dn(cfg, colleague.username), hb.SANDBOX_PASSWORD)
    assert conn.bound
    change = {
        "unicodePwd": [
            (ldap3.MODIFY_DELETE, [f'"{old}"'.encode("utf-16-le")]),
            (ldap3.MODIFY_ADD, [f'"{new}"'.encode("utf-16-le")]),
        ]
    }
    assert conn.modify(dn, change), conn.result
    conn.unbind()


def test_restore_puts_back_the_snapshot_with_a_new_password_to_change(
    sandbox, cfg, directory, state, people, tmp_path
) -> None:
    f = directory.flavour
    person = take(people, "sims", "target_tracker")
    user = person.username
    before = f.find_user(directory, user)
    before_raw = directory.read(before.dn, f.restorable_attributes, raw=True)
    grant(state, user, "sims", days_ago=200)  # past SIMS's 180-day review: not restored
    grant(state, user, "target_tracker", days_ago=30)
    grant(state, user, "sap", days_ago=30)  # by hand, within review: restored, its removal task closed
    grant(state, user, "intranet", days_ago=400)  # by hand, past review: its removal task stays open
    give_laptop(state, user)
    pending = tasks.open_task(state, kind="grant", text="Give SAP", username=user, system="sap")  # not yet done
    withdraw_now(cfg, directory, state, user, reason="suspended pending investigation")
    row = current_row(state, user)
    assert next(t for t in tasks.list_tasks(state, username=user) if t["id"] == pending)["closed_at"]

    creds = tmp_path / "creds.csv"
    plan = restore(cfg, directory, state, user, credentials_out=str(creds), today=TODAY)
    assert any("sims not restored" in n for n in plan.notes)
    apply(plan, state)

    acct = f.find_user(directory, user)
    assert same_dn(acct.dn, before.dn) and not acct.disabled and acct.must_change
    sims_group = cfg.group_dn("SIMS Users")
    assert sorted(map(str.lower, acct.groups)) == sorted(g.lower() for g in before.groups if not same_dn(g, sims_group))
    assert directory.read(acct.dn, f.restorable_attributes, raw=True) == before_raw  # description, accountExpires
    assert {a["system"] for a in approvals.live(state, username=user)} == {"target_tracker", "sap"}
    assert all(a["source"] == "restore" for a in approvals.live(state, username=user))
    left_open = [t for t in leaver_tasks(state, row["id"]) if t["closed_at"] is None]
    assert [(t["kind"], t["system"]) for t in left_open] == [("revoke", "intranet"), ("grant", "sap")]
    assert current_row(state, user) is None  # the withdrawal is over: status 'restored'

    assert creds.stat().st_mode & 0o777 == 0o600
    header, line = creds.read_text(encoding="utf-8").splitlines()
    assert header == "username,name,password,must_change"
    new_password = line.split(",")[2]
    assert new_password not in json.dumps([e.details for e in state.audit_entries()])

    assert not user_bind(cfg, acct.dn, hb.SANDBOX_PASSWORD).bound
    conn = user_bind(cfg, acct.dn, new_password)
    if sandbox.flavour == "openldap":  # ppolicy: the bind works, but nothing else until it is changed
        assert conn.bound
        assert not conn.search(acct.dn, "(objectClass=*)", ldap3.BASE)
        assert conn.result["result"] == 50
    else:  # AD: pwdLastSet 0, "user must reset password" (data 773)
        assert not conn.bound and "data 773" in conn.result["message"]
    chosen = "Their-Own-Choice-" + uuid.uuid4().hex[:8]
    change_password_as_user(sandbox, cfg, acct.dn, user, new_password, chosen)
    conn = user_bind(cfg, acct.dn, chosen)
    assert conn.bound and conn.search(acct.dn, "(objectClass=*)", ldap3.BASE)

    with pytest.raises(RefusedError, match="already restored"):
        restore(cfg, directory, state, user, credentials_out=str(tmp_path / "again.csv"), today=TODAY)


def test_restore_refuses_without_a_snapshot_or_a_credentials_file(cfg, directory, state, people, tmp_path) -> None:
    from aupctl.errors import InputError

    user = take(people).username
    with pytest.raises(RefusedError, match="no snapshot"):
        restore(cfg, directory, state, user, credentials_out=str(tmp_path / "c.csv"), today=TODAY)
    apply(withdraw(cfg, directory, state, [Request(user, TODAY + dt.timedelta(days=3))], today=TODAY), state)
    with pytest.raises(RefusedError, match="only scheduled"):
        restore(cfg, directory, state, user, credentials_out=str(tmp_path / "c.csv"), today=TODAY)
    from aupctl.leavers.schedule import cancel

    apply(cancel(state, user), state)
    withdraw_now(cfg, directory, state, user)
    with pytest.raises(InputError, match="needs --credentials-out"):
        restore(cfg, directory, state, user, credentials_out=None, today=TODAY)
    (tmp_path / "taken.csv").write_text("keep me")
    with pytest.raises(InputError, match="never overwritten"):
        restore(cfg, directory, state, user, credentials_out=str(tmp_path / "taken.csv"), today=TODAY)
    assert (tmp_path / "taken.csv").read_text() == "keep me"
    assert directory.flavour.find_user(directory, user).disabled  # nothing changed


def test_hostile_names_round_trip(cfg, directory, state, tmp_path) -> None:
    """An entry whose RDN needs escaping (AD: CN is the display name) goes out and comes back."""
    f = directory.flavour
    username = "lv" + uuid.uuid4().hex[:8]
    dn, classes, attrs = f.new_user(
        username=username,
        given_name="Zoë",
        surname="O'Brien-Smith, Jr",
        display_name=f"Zoë O'Brien-Smith, Jr (*) {username[-4:]}",
        email="",
        staff_code="",
        ou_dn=cfg.dn("ou=Support,ou=Staff"),
    )
    directory.add(dn, classes, attrs)
    f.add_member(directory, cfg.group_dn("All Staff"), dn)
    withdraw_now(cfg, directory, state, username, reason="a,b (test) *")
    assert_withdrawn(cfg, directory, state, username, TODAY, "a,b (test) *")
    apply(restore(cfg, directory, state, username, credentials_out=str(tmp_path / "c.csv"), today=TODAY), state)
    acct = f.find_user(directory, username)
    assert same_dn(acct.dn, dn) and [g.lower() for g in acct.groups] == [cfg.group_dn("All Staff").lower()]


# -- a wave killed part-way --


def test_a_wave_interrupted_by_ctrl_c_is_finished_by_a_rerun(cfg, directory, state, people) -> None:
    users = [take(people, "sims").username for _ in range(3)]
    for u in users:
        grant(state, u, "sap")
    originals = {u: directory.flavour.find_user(directory, u) for u in users}
    plan = withdraw(cfg, directory, state, [Request(u, None, "July") for u in users], today=TODAY)
    # Ctrl-C in the middle of the second person, after their snapshot and first group.
    second = [i for i, c in enumerate(plan.changes) if c.target == users[1]]
    stop_at = next(i for i in second if plan.changes[i].action == "remove-member") + 1

    def interrupted() -> None:
        raise KeyboardInterrupt

    plan.changes[stop_at].run = interrupted
    with pytest.raises(PartialError) as exc:
        apply(plan, state)
    assert exc.value.exit_code == 4 and exc.value.done == stop_at
    assert current_row(state, users[0])["status"] == DONE
    assert current_row(state, users[1])["status"] == "withdrawing"
    assert current_row(state, users[2]) is None

    # cron's run-due finishes a half-done withdrawal whatever its date says
    early = run_due(cfg, directory, state, today=TODAY - dt.timedelta(days=30))
    assert {c.target for c in early.changes} == {users[1]}
    rerun = withdraw(cfg, directory, state, [Request(u, None, "July") for u in users], today=TODAY)
    assert all(c.target != users[0] for c in rerun.changes)
    carried_on = [c.action for c in rerun.changes if c.target == users[1]]
    assert "leaver-snapshot" not in carried_on and "set-password" not in carried_on  # done before the Ctrl-C
    apply(rerun, state)
    for u in users:
        assert_withdrawn(cfg, directory, state, u, TODAY, "July")
        snap = json.loads(current_row(state, u)["snapshot"])  # taken once, before the interruption
        assert sorted(snap["groups"]) == sorted(originals[u].groups) and same_dn(snap["dn"], originals[u].dn)
        kinds = [t["kind"] for t in leaver_tasks(state, current_row(state, u)["id"])]
        assert sorted(kinds) == ["mailbox", "revoke"]  # no task opened twice


def test_restore_refuses_when_its_place_is_taken_or_gone(cfg, directory, state, people, tmp_path) -> None:
    f = directory.flavour
    acct = f.find_user(directory, take(people).username)
    withdraw_now(cfg, directory, state, acct.username)
    squatter = acct.dn  # someone new was given the same name in the same OU meanwhile
    if f.name == "ad":
        directory.add(squatter, ["top", "person", "organizationalPerson", "contact"], {"description": "new starter"})
    else:
        directory.add(squatter, ["account"], {"uid": acct.username, "description": "new starter"})
    n = audit_count(state)
    with pytest.raises(RefusedError, match="cannot move .* back: .* already exists"):
        restore(cfg, directory, state, acct.username, credentials_out=str(tmp_path / "c.csv"), today=TODAY)
    assert audit_count(state) == n and not (tmp_path / "c.csv").exists()
    assert f.find_user(directory, acct.username).disabled


def test_restore_undoes_a_withdrawal_stopped_half_way(cfg, directory, state, people, tmp_path) -> None:
    f = directory.flavour
    before = f.find_user(directory, take(people, "sims").username)
    user = before.username
    plan = withdraw(cfg, directory, state, [Request(user, None, "wrong person")], today=TODAY)
    stop_at = [c.action for c in plan.changes].index("describe")  # moved and stripped, not yet stamped

    def interrupted() -> None:
        raise KeyboardInterrupt

    plan.changes[stop_at].run = interrupted
    with pytest.raises(PartialError):
        apply(plan, state)
    assert current_row(state, user)["status"] == "withdrawing"
    apply(restore(cfg, directory, state, user, credentials_out=str(tmp_path / "c.csv"), today=TODAY), state)
    acct = f.find_user(directory, user)
    assert same_dn(acct.dn, before.dn) and not acct.disabled and acct.description == before.description
    assert sorted(g.lower() for g in acct.groups) == sorted(g.lower() for g in before.groups)
    assert current_row(state, user) is None


def test_openldap_group_of_unique_names_is_emptied_and_restored(openldap_sandbox, tmp_path) -> None:
    """Another school's OpenLDAP may use groupOfUniqueNames (uniqueMember) for its groups."""
    cfg = config_mod.load(str(openldap_sandbox.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    try:
        user = candidates("openldap")[-2].username  # kept back from `people`, like the colleague
        acct = d.flavour.find_user(d, user)
        group = cfg.group_dn(f"Unique {uuid.uuid4().hex[:6]}")
        d.add(group, ["groupOfUniqueNames"], {"cn": group.split(",")[0][3:], "uniqueMember": [acct.dn]})
        assert any(same_dn(g, group) for g in d.flavour.find_user(d, user).groups)
        withdraw_now(cfg, d, st, user)
        assert d.flavour.find_user(d, user).groups == []
        assert withdraw(cfg, d, st, [Request(user)], today=TODAY).empty
        apply(restore(cfg, d, st, user, credentials_out=str(tmp_path / "c.csv"), today=TODAY), st)
        assert any(same_dn(g, group) for g in d.flavour.find_user(d, user).groups)
    finally:
        st.close()
        d.close()
