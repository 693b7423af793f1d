"""Every job end to end on every sandbox layout of both flavours (issue "Any school's directory").

One story per layout, through the CLI as a technician runs it, with each effect read back from the
directory by its native attribute: `memberUid` (a username) for posixGroup, `member` for groupOfNames
and AD, both for RFC 2307bis. A job that read or wrote only `member` would pass on the standard school
and fail here on the flat one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import payload, run_main

from aupctl import sandbox as sb
from aupctl.config import load
from aupctl.directory import normalise_dn
from aupctl.sandbox import school as hb

APPROVER = "Mrs A Patel (Headteacher)"


def cli(info: sb.SandboxInfo, *args: str) -> tuple[int, str]:
    code, out, err = run_main(*args, config=info.config_path)
    return code, out + err


def group_dn(info: sb.SandboxInfo, system: str) -> str:
    cfg = load(str(info.config_path))
    group = cfg.systems[system].group
    assert group, system
    return cfg.group_dn(group)


def role_group_dn(info: sb.SandboxInfo, role: str) -> str:
    cfg = load(str(info.config_path))
    return cfg.group_dn(cfg.roles[role].groups[0])


def _user_of(conn: Any, dn: str, ad: bool) -> str | None:
    attr = "sAMAccountName" if ad else "uid"
    conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=[attr])
    if not conn.entries:
        return None
    values = conn.entries[0].entry_attributes_as_dict.get(attr) or []
    return str(values[0]).lower() if values else None


def native_members(info: sb.SandboxInfo, dn: str) -> dict[str, set[str]]:
    """Who a group holds, per attribute, as lower-case usernames (member DNs looked up)."""
    ad = info.flavour == "ad"
    conn = info.connect()
    try:
        conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["member", "uniqueMember", "memberUid"])
        assert conn.entries, f"group {dn} not found"
        attrs = conn.entries[0].entry_attributes_as_dict
        out: dict[str, set[str]] = {}
        for name in ("member", "uniqueMember"):
            users = {_user_of(conn, str(v).split("#", 1)[0], ad) for v in attrs.get(name) or []}
            users.discard(None)
            if attrs.get(name):
                out[name] = {u for u in users if u}
        if attrs.get("memberUid"):
            out["memberUid"] = {str(v).lower() for v in attrs["memberUid"]}
        return out
    finally:
        conn.unbind()


def holds(info: sb.SandboxInfo, dn: str, username: str) -> bool:
    """In the group by every attribute the group uses (2307bis: member and memberUid both)."""
    found = native_members(info, dn)
    assert found, f"{dn} has no members at all"
    inside = [username in users for users in found.values()]
    assert all(inside) or not any(inside), f"{username}: {dn} has its attributes out of step: {found}"
    return all(inside)


def in_any_group(info: sb.SandboxInfo, username: str) -> list[str]:
    """Every group that still names the person, by DN or by memberUid."""
    ad = info.flavour == "ad"
    conn = info.connect()
    try:
        attr = "sAMAccountName" if ad else "uid"
        conn.search(info.base_dn, f"(&(objectClass=person)({attr}={username}))", attributes=[attr])
        assert len(conn.entries) == 1, username
        dn = conn.entries[0].entry_dn
        f = f"(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
        conn.search(info.base_dn, f, attributes=["cn"])
        return [e.entry_dn for e in conn.entries]
    finally:
        conn.unbind()


def staff(info: sb.SandboxInfo) -> dict[str, dict[str, Any]]:
    code, out = cli(info, "--format", "json", "staff", "list")
    assert code == 0, out
    data = payload(out)
    rows = data["data"] if isinstance(data, dict) and "data" in data else data
    return {r["username"].lower(): r for r in rows}


@pytest.fixture(scope="module")
def story(any_sandbox: sb.SandboxInfo) -> sb.SandboxInfo:
    return any_sandbox


def test_doctor_is_green(story: sb.SandboxInfo) -> None:
    code, out = cli(story, "doctor")
    assert code == 0, out
    assert "FAIL" not in out.upper().replace("FAILOVER", "")


def test_staff_list_places_everyone_and_their_role(story: sb.SandboxInfo) -> None:
    people = staff(story)
    school = hb.school(story.layout)
    for person in school.people:
        if person.username in hb.HAND_MADE or person.role == "governor" or person.disabled or person.leaver:
            continue  # staff list shows enabled staff
        if person.username == hb.PLANTED["leaver_with_access"]:
            continue  # a leaver: in the leavers OU, which may sit inside the staff OU (flat layout)
        assert person.username in people, person.username
    teacher = next(p for p in school.people if p.role == "teacher" and p.username not in hb.PLANTED.values())
    ta = next(p for p in school.people if p.role == "ta" and p.username not in hb.PLANTED.values())
    assert people[teacher.username]["role"] == "teacher"
    assert people[ta.username]["role"] == "ta"


def test_review_before_adopt_is_refused_and_changes_nothing(story: sb.SandboxInfo) -> None:
    code, out = cli(story, "aup", "import", str(story.dir / "aup-signatures.csv"), "--yes")
    assert code == 0, out
    sims = group_dn(story, "sims")
    before = native_members(story, sims)
    code, out = cli(story, "access", "review", "--fix", "--yes")
    assert code == 2, out
    assert "adopt" in out
    assert native_members(story, sims) == before


def test_adopt_then_review_finds_the_planted_problems(story: sb.SandboxInfo) -> None:
    code, out = cli(story, "access", "adopt", "--approved-by", APPROVER, "--yes")
    assert code == 0, out
    code, out = cli(story, "--format", "json", "access", "review")
    assert code == 1, out
    data = payload(out)
    findings = data["findings"] if isinstance(data, dict) else data
    seen = {(f.get("target") or f.get("username"), f.get("kind") or f.get("code")) for f in findings}
    flat = json.dumps(findings)
    assert hb.PLANTED["not_eligible_member"] in flat, seen
    assert hb.PLANTED["unsigned_with_access"] in flat, seen
    code, out = cli(story, "access", "review", "--fix", "--yes")
    assert code in (0, 1), out
    assert not holds(story, group_dn(story, "sims"), hb.PLANTED["not_eligible_member"])
    assert not holds(story, group_dn(story, "sims"), hb.PLANTED["unsigned_with_access"])


def test_grant_and_revoke_write_the_groups_native_attribute(story: sb.SandboxInfo) -> None:
    raise_dn = group_dn(story, "raise")
    assert not holds(story, raise_dn, "zclarke")
    code, out = cli(
        story, "access", "grant", "zclarke", "raise", "--approved-by", APPROVER, "--reason", "lead", "--yes"
    )
    assert code == 0, out
    assert holds(story, raise_dn, "zclarke")
    code, out = cli(story, "access", "revoke", "zclarke", "raise", "--reason", "test", "--yes")
    assert code == 0, out
    assert not holds(story, raise_dn, "zclarke")


def test_intake_puts_new_staff_in_their_role_groups(story: sb.SandboxInfo, tmp_path: Path) -> None:
    creds = tmp_path / "creds.csv"
    code, out = cli(story, "staff", "import", str(story.dir / "intake.csv"), "--credentials-out", str(creds), "--yes")
    assert code == 0, out
    with creds.open(encoding="utf-8") as fh:
        made = [row["username"] for row in csv.DictReader(fh)]
    assert made
    people = staff(story)
    for username in made:
        role = people[username.lower()]["role"]
        assert role, username
        assert holds(story, role_group_dn(story, role), username.lower()), (username, role)
    if story.layout == "flat":  # a posixAccount school: new people are posixAccount too, with unique uids
        conn = story.connect()
        try:
            conn.search(story.base_dn, "(objectClass=posixAccount)", attributes=["uidNumber", "uid"])
            numbers = [int(e.uidNumber.value) for e in conn.entries]
            uids = {str(e.uid.value).lower() for e in conn.entries}
        finally:
            conn.unbind()
        assert len(numbers) == len(set(numbers))
        assert {u.lower() for u in made} <= uids


def test_leaver_withdraw_and_restore(story: sb.SandboxInfo, tmp_path: Path) -> None:
    before = {normalise_dn(g) for g in in_any_group(story, "skhan")}
    assert before
    code, out = cli(story, "leaver", "withdraw", "skhan", "--reason", "resigned", "--yes")
    assert code == 0, out
    assert in_any_group(story, "skhan") == []
    code, out = cli(story, "leaver", "restore", "skhan", "--credentials-out", str(tmp_path / "skhan.csv"), "--yes")
    assert code == 0, out
    assert {normalise_dn(g) for g in in_any_group(story, "skhan")} == before


def test_password_audit_sees_privileged_members(story: sb.SandboxInfo) -> None:
    code, out = cli(story, "--format", "json", "password", "audit", "--no-hash-check")
    assert code == 1, out
    assert hb.PLANTED["privileged"] in out
