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
from ldap3 import MODIFY_REPLACE

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


# --------------------------------------------------------------------------------------------------
# This round's jobs (MIS sync, recertification, reminders, estate, domain audit, evidence, the report), on
# the same sandbox per layout, after the first round's story above. They run with their own config file
# (jobs.toml: the sandbox's, plus [access], [mail] reaching the smtp_server fixture and [notify]) over the
# same state store, so the stories above keep the sandbox's own config.

EMPTY_SYSTEM, EMPTY_ADMINS = "Library Users", "Empty Admins"
LIBRARIAN = "Zoë Ní Bhriain <library@hollybank.test>"  # approves only the empty system
GROUP_CLASSES = {"group", "groupofnames", "groupofuniquenames", "posixgroup"}
TECH = "Kofi Mensah <kmensah@hollybank.test>"


def effective_usernames(info: sb.SandboxInfo, dn: str) -> set[str]:
    """Everyone a group gives access to, read here with plain ldap3 and no aupctl code: member and
    uniqueMember DNs (a group among them followed, cycles too) and memberUid usernames, lower case."""
    ad = info.flavour == "ad"
    attr = "sAMAccountName" if ad else "uid"
    conn = info.connect()
    out: set[str] = set()
    seen: set[str] = set()
    queue = [dn]
    try:
        while queue:
            gdn = queue.pop()
            if normalise_dn(gdn) in seen:
                continue
            seen.add(normalise_dn(gdn))
            conn.search(gdn, "(objectClass=*)", search_scope="BASE", attributes=["member", "uniqueMember", "memberUid"])
            assert conn.entries, gdn
            attrs = conn.entries[0].entry_attributes_as_dict
            out |= {str(v).lower() for v in attrs.get("memberUid") or []}
            for value in [*(attrs.get("member") or []), *(attrs.get("uniqueMember") or [])]:
                mdn = str(value).split("#", 1)[0]
                conn.search(mdn, "(objectClass=*)", search_scope="BASE", attributes=["objectClass", attr])
                if not conn.entries:
                    continue  # a placeholder or a dangling DN
                entry = conn.entries[0].entry_attributes_as_dict
                if {str(c).lower() for c in entry.get("objectClass") or []} & GROUP_CLASSES:
                    queue.append(mdn)
                elif entry.get(attr):
                    out.add(str(entry[attr][0]).lower())
        return out
    finally:
        conn.unbind()


def mail_of(info: sb.SandboxInfo, username: str) -> str | None:
    """The person's `mail` as the directory holds it (None: none)."""
    attr = "sAMAccountName" if info.flavour == "ad" else "uid"
    conn = info.connect()
    try:
        conn.search(info.base_dn, f"(&(objectClass=person)({attr}={username}))", attributes=["mail"])
        assert len(conn.entries) == 1, username
        values = conn.entries[0].entry_attributes_as_dict.get("mail") or []
        return str(values[0]) if values else None
    finally:
        conn.unbind()


def data_of(out: str) -> Any:
    doc = json.loads(out)
    assert doc["version"] == 1 and "exit_code" in doc, doc
    return doc


@pytest.fixture(scope="module")
def jobs(story: sb.SandboxInfo, smtp_server: Any) -> Path:
    """jobs.toml for this layout's sandbox: its config plus [access] (the approvers' files), [mail] and
    [notify]; the same state store (state.db beside it)."""
    text = story.config_path.read_text(encoding="utf-8")
    assert "[access]" not in text and "[mail]" not in text and "[notify]" not in text
    # two groups with nobody in them, as this layout makes groups: a system's and a privileged one
    cfg = load(str(story.config_path))
    conn = story.connect(story.admin_dn, story.admin_password)
    try:
        for cn in (EMPTY_SYSTEM, EMPTY_ADMINS):
            dn = cfg.group_dn(cn)
            if story.flavour == "ad":
                attrs: dict[str, Any] = {"sAMAccountName": cn.replace(" ", "_")}
                ok = conn.add(dn, "group", attrs)
            elif story.layout == "flat":  # memberUid only: posixGroup on a structural class, no member at all
                ok = conn.add(dn, ["namedObject", "posixGroup"], {"gidNumber": str(7000 + len(cn))})
            else:  # groupOfNames must hold a member: the school's placeholder stands in
                ok = conn.add(dn, "groupOfNames", {"member": [cfg.dn(cfg.directory.placeholder_member)]})
            assert ok, conn.result
    finally:
        conn.unbind()
    text = text.replace("privileged_groups = [", f'privileged_groups = ["{EMPTY_ADMINS}", ', 1)
    text += f'\n[systems.library]\nname = "Library <Loans> \\"Q\\""\ngroup = "{cfg.group_dn(EMPTY_SYSTEM)}"\n'
    text += f'approvers = ["Mrs A Patel (Headteacher)", "{LIBRARIAN}"]\n'
    text += f'\n[access]\nrecertify_dir = "{story.dir / "recertify"}"\n'
    text += smtp_server.mail_toml() + f'\n[notify]\ntechnician = "{TECH}"\n'
    path = story.dir / "jobs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def jcli(jobs: Path, *args: str) -> tuple[int, str, str]:
    return run_main(*args, config=jobs)


def _sync_staff(info: sb.SandboxInfo) -> tuple[list[dict[str, str]], list[str]]:
    """(export rows for every enabled staff account aupctl can place, usernames it cannot: no role or name),
    from the directory as aupctl reads it; hand-made accounts included (no staff code, no mail)."""
    from aupctl.directory import open_directory
    from aupctl.eligibility import is_leaver
    from aupctl.records.roles import recorded_roles
    from aupctl.roles import RoleResolver
    from aupctl.state import State

    cfg = load(str(info.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    try:
        resolve = RoleResolver(cfg, recorded_roles(st))
        rows, others = [], []
        for i, a in enumerate(d.flavour.iter_accounts(d, base=cfg.directory.base_dn, with_groups=True)):
            if is_leaver(cfg, a) or a.disabled:
                continue
            role = resolve(a).role
            if not (role and a.given_name and a.surname):
                others.append(a.username)
                continue
            rows.append({"Person ID": f"L{i:05d}", "Legal Forename": a.given_name, "Legal Surname": a.surname,
                         "Staff Code": a.staff_code or "", "Email": a.email or "", "Role": role,
                         "_username": a.username})  # fmt: skip
        return rows, others
    finally:
        st.close()
        d.close()


HAND = {"username": "zoe.nb", "given": "Zoë", "sn": "Ní Bhriain"}


def _hand_made_without_role(info: sb.SandboxInfo) -> None:
    """An account made by hand straight in the staff OU: in no role group, no mail, no staff code or ID."""
    from ldap3.utils.dn import escape_rdn

    cfg = load(str(info.config_path))
    where = cfg.dn(cfg.directory.staff_ou)
    conn = info.connect(info.admin_dn, info.admin_password)
    try:
        cn = f"{HAND['given']} {HAND['sn']}"
        if info.flavour == "ad":
            dn = f"CN={escape_rdn(cn)},{where}"
            attrs = {"sAMAccountName": HAND["username"], "givenName": HAND["given"], "sn": HAND["sn"],
                     "unicodePwd": '"Kettle-Harbour-Violet-42"'.encode("utf-16-le"), "userAccountControl": "512"}  # fmt: skip
            assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs), conn.result
        else:
            dn = f"cn={escape_rdn(cn)},{where}"
            attrs = {"uid": HAND["username"], "givenName": HAND["given"], "sn": HAND["sn"], "cn": cn}
            assert conn.add(dn, ["inetOrgPerson"], attrs), conn.result
    finally:
        conn.unbind()


def test_staff_sync_matches_everyone_then_a_marriage(story: sb.SandboxInfo, tmp_path: Path) -> None:
    from aupctl.staff.sync.profiles import PROFILES

    headers = PROFILES["sims"]
    _hand_made_without_role(story)
    rows, others = _sync_staff(story)
    assert any(r["_username"] in hb.HAND_MADE for r in rows) == (story.layout != "standard")
    assert HAND["username"] in others, "no role yet: aupctl cannot place the account by itself"
    others.remove(HAND["username"])
    rows.append({"Person ID": "L99999", "Legal Forename": HAND["given"], "Legal Surname": HAND["sn"],
                 "Staff Code": "", "Email": "", "Role": "ta", "_username": HAND["username"]})  # fmt: skip
    cfg_path = story.dir / "sync.toml"
    ignore = ", ".join(json.dumps(u) for u in others)
    cfg_path.write_text(
        story.config_path.read_text(encoding="utf-8") + f'\n[mis]\nprofile = "sims"\nignore = [{ignore}]\n'
    )

    def export(name: str, people: list[dict[str, str]]) -> Path:
        path = tmp_path / name
        ours = {"Person ID": "person_id", "Legal Forename": "legal_first", "Legal Surname": "legal_last",
                "Staff Code": "staff_code", "Email": "email", "Role": "role"}  # fmt: skip
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=[headers[v] for v in ours.values()])
            w.writeheader()
            for r in people:
                w.writerow({headers[ours[k]]: v for k, v in r.items() if k in ours})
        return path

    first = export("day1.csv", rows)
    code, out, err = run_main("--format", "json", "staff", "sync", str(first), "--yes", config=cfg_path)
    assert code == 0, (out, err)
    people = data_of(out)["data"]["people"]
    assert not [p for p in people if p["kind"] in ("ambiguous", "not in MIS", "joiner", "error")], people
    # the MIS id is on every account now (employeeID on AD, employeeType on OpenLDAP): matched by ID next time
    idattr = "employeeID" if story.flavour == "ad" else "employeeType"
    conn = story.connect()
    try:
        attr = "sAMAccountName" if story.flavour == "ad" else "uid"
        for r in rows[:: max(1, len(rows) // 10)] + [r for r in rows if r["_username"] in hb.HAND_MADE]:
            conn.search(story.base_dn, f"(&(objectClass=person)({attr}={r['_username']}))", attributes=[idattr])
            assert [str(v) for v in conn.entries[0].entry_attributes_as_dict.get(idattr) or []] == [r["Person ID"]], r
    finally:
        conn.unbind()
    # the account made by hand, in no role group: the MIS's role puts it in that role's groups
    cfg = load(str(story.config_path))
    for g in cfg.roles["ta"].groups:
        assert holds(story, cfg.group_dn(g), HAND["username"]), g
    # a marriage: the surname, display name changed on the account (username kept)
    bride = next(r for r in rows if r["_username"] in hb.HAND_MADE) if story.layout != "standard" else rows[3]
    # and a mover: a teacher who became office staff (role groups swapped, RAISE and Target Tracker ended)
    taken = {bride["_username"], HAND["username"], *hb.PLANTED.values(), hb.LEGIT_IT_ADMIN, "zclarke", "skhan"}
    mover = next(r for r in rows if r["Role"] == "teacher" and r["_username"] not in taken)
    moved = mover["_username"].lower()
    married = [
        dict(r, **{"Legal Surname": "Ní Bhriain"}) if r is bride else dict(r, Role="office") if r is mover else r
        for r in rows
    ]
    code, out, err = run_main("staff", "sync", str(export("day2.csv", married)), "--yes", config=cfg_path)
    assert code == 0, (out, err)
    for g in cfg.roles["office"].groups:
        assert holds(story, cfg.group_dn(g), moved), g
    for g in set(cfg.roles["teacher"].groups) - set(cfg.roles["office"].groups):
        assert not holds(story, cfg.group_dn(g), moved), g
    for key in ("raise", "target_tracker"):  # office staff may not hold them
        assert moved not in effective_usernames(story, group_dn(story, key)), key
    assert staff(story)[moved]["role"] == "office"
    conn = story.connect()
    try:
        conn.search(story.base_dn, f"(&(objectClass=person)({attr}={bride['_username']}))",
                    attributes=["sn", "displayName"])  # fmt: skip
        got = conn.entries[0].entry_attributes_as_dict
        assert [str(v) for v in got["sn"]] == ["Ní Bhriain"], got
    finally:
        conn.unbind()
    code, out, err = run_main("staff", "sync", str(export("day2.csv", married)), "--yes", config=cfg_path)
    assert code == 0 and "nothing to do" in out + err, (out, err)


def _recert_rows(story: sb.SandboxInfo) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((story.dir / "recertify").glob("recertify-*.csv")):
        with path.open(encoding="utf-8-sig") as fh:
            rows += [dict(r, _file=path.name) for r in csv.DictReader(fh)]
    return rows


def test_recertify_start_lists_exactly_each_groups_members(story: sb.SandboxInfo, jobs: Path, smtp_server: Any) -> None:
    before = len(smtp_server.received)
    code, out, err = jcli(jobs, "access", "recertify", "start", "--system", "sims", "--system", "target_tracker",
                          "--system", "sap", "--system", "library", "--format", "json", "--yes")  # fmt: skip
    assert code in (0, 1), (out, err)
    if code == 1:  # the sandbox's approvers are names without an address: each reported, files written
        assert {f["check"] for f in data_of(out)["findings"]} == {"no-mail-address"}, out
    rows = _recert_rows(story)
    assert rows, "no approvers' files written"
    cfg = load(str(jobs))
    for key in ("sims", "target_tracker", "library"):
        listed = {r["username"].lower() for r in rows if r["system"] == key}
        assert listed == effective_usernames(story, cfg.group_dn(cfg.systems[key].group)), key
    assert not [r for r in rows if r["system"] == "library"], "the empty group: nobody to ask about"
    mailed = {a for g in smtp_server.received[before:] for a in g.rcpt_tos}
    assert "library@hollybank.test" not in mailed, "no letter asking to review nobody"
    if story.layout == "nested":  # office staff hold SIMS through SIMS Office (<site>): said in `via`
        via = {r["via"] for r in rows if r["system"] == "sims" and r["via"]}
        assert via and all("SIMS Office" in v for v in via), via
    code, out, err = jcli(jobs, "--format", "json", "access", "recertify", "status")
    assert code == 0, err
    status = data_of(out)["data"]
    assert next(s for s in status["systems"] if s["system"] == "library")["members"] == 0
    sims = next(s for s in status["systems"] if s["system"] == "sims")
    assert sims["members"] == len(effective_usernames(story, group_dn(story, "sims"))) == sims["undecided"]


def test_recertify_decide_apply_and_close_change_the_native_groups(story: sb.SandboxInfo, jobs: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    tt = group_dn(story, "target_tracker")
    rows = [r for r in _recert_rows(story) if r["system"] == "target_tracker" and not r["via"]]
    head = [r for r in rows if r["approver"] == APPROVER]
    direct = {u for users in native_members(story, tt).values() for u in users}
    removed, kept = [r for r in head if r["username"].lower() in direct][:2]
    removed_user, kept_user = removed["username"].lower(), kept["username"].lower()
    assert holds(story, tt, removed_user) and holds(story, tt, kept_user)
    removed.update(decision="remove", note="left the year team <b>&</b>")
    kept.update(decision="keep", note="Zoë still leads assessment")
    path = tmp_path / "decisions.csv"
    fields = [k for k in head[0] if k != "_file"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(head)
    code, out, err = jcli(jobs, "access", "recertify", "apply", str(path), "--yes")
    assert code == 0, (out, err)
    assert not holds(story, tt, removed_user), "removed by the native attribute"
    assert holds(story, tt, kept_user)
    # one by one: a SIMS member kept by the business manager
    sims_row = next(r for r in _recert_rows(story) if r["system"] == "sims" and "okafor" in r["_file"])
    code, out, err = jcli(jobs, "access", "recertify", "decide", sims_row["username"], "sims", "keep",
                          "--by", "Mr D Okafor (School Business Manager)", "--yes")  # fmt: skip
    assert code == 0, (out, err)
    removed_sims = 0
    if story.layout == "nested":  # SIMS through SIMS Office (<site>): a task to take them out there, group kept
        nested = next(r for r in _recert_rows(story) if r["system"] == "sims" and r["via"] and "okafor" in r["_file"])
        before = effective_usernames(story, group_dn(story, "sims"))
        code, out, err = jcli(jobs, "access", "recertify", "decide", nested["username"], "sims", "remove",
                              "--by", "Mr D Okafor (School Business Manager)", "--note", "left the office", "--yes")  # fmt: skip
        assert code == 0, (out, err)
        assert effective_usernames(story, group_dn(story, "sims")) == before
        code, out, err = jcli(jobs, "--format", "json", "tasks", "list")
        assert any(nested["username"] in json.dumps(t) and "SIMS Office" in json.dumps(t) for t in data_of(out)["data"])
        removed_sims = 1
    code, out, err = jcli(jobs, "--format", "json", "access", "recertify", "status")
    status = data_of(out)["data"]
    by = {s["system"]: s for s in status["systems"]}
    assert (by["target_tracker"]["keep"], by["target_tracker"]["remove"]) == (1, 1)
    assert (by["sims"]["keep"], by["sims"]["remove"]) == (1, removed_sims)
    # close (moved to its due date): the undecided are reported (exit 1) and kept by default
    from aupctl.state import State

    st = State(load(str(jobs)).state.path)
    st.execute(
        "UPDATE recert_campaigns SET due = ? WHERE status = 'open'", (__import__("datetime").date.today().isoformat(),)
    )
    st.close()
    before = effective_usernames(story, group_dn(story, "sims"))
    code, out, err = jcli(jobs, "--format", "json", "access", "recertify", "close", "--yes")
    assert code == 1, (out, err)
    assert {f["check"] for f in data_of(out)["findings"]} == {"recertify-undecided"}
    assert effective_usernames(story, group_dn(story, "sims")) == before
    code, out, err = jcli(jobs, "--format", "json", "access", "recertify", "status")
    assert data_of(out)["data"]["campaign"]["status"] == "closed"


def test_recertify_close_with_unanswered_remove_empties_the_group(story: sb.SandboxInfo, jobs: Path) -> None:
    """A campaign on SIMS nobody answers, closed with [access] unanswered = "remove": every direct member out
    by the group's own attribute (posixGroup/2307bis memberUid too); on AD, the office staff who hold it
    through SIMS Office (> SIMS Office (site) on the nested school) stay, each with a task to take them out."""
    import datetime as dt

    from aupctl.state import State

    path = story.dir / "jobs-remove.toml"
    path.write_text(jobs.read_text(encoding="utf-8").replace("[access]\n", '[access]\nunanswered = "remove"\n', 1))
    sims = group_dn(story, "sims")
    nested = _nested_groups(story, sims)  # AD: SIMS Office sits in SIMS Users
    direct = {u for users in native_members(story, sims).values() for u in users} - nested
    assert direct
    code, out, err = run_main("access", "recertify", "start", "--system", "sims", "--yes", config=path)
    assert code in (0, 1), (out, err)
    st = State(load(str(path)).state.path)
    st.execute("UPDATE recert_campaigns SET due = ? WHERE status = 'open'", (dt.date.today().isoformat(),))
    st.close()
    code, out, err = run_main("--format", "json", "access", "recertify", "close", "--yes", config=path)
    assert code == 1, (out, err)
    left = {u for users in native_members(story, sims).values() for u in users}
    assert left <= nested, left - nested
    via = effective_usernames(story, sims)
    assert bool(via) == (story.flavour == "ad"), via  # AD: SIMS Office (> site) still gives office staff SIMS
    code, out, err = run_main("--format", "json", "tasks", "list", config=path)
    tasks_text = json.dumps(data_of(out)["data"]).lower()
    assert all(u in tasks_text for u in via), via


def _nested_groups(info: sb.SandboxInfo, dn: str) -> set[str]:
    """The names (sAMAccountName) of the groups a group lists as members (AD)."""
    if info.flavour != "ad":
        return set()
    conn = info.connect()
    try:
        conn.search(info.base_dn, f"(&(objectClass=group)(memberOf={dn}))", attributes=["sAMAccountName"])
        return {str(e.sAMAccountName.value).lower() for e in conn.entries}
    finally:
        conn.unbind()


def test_notify_sends_the_layouts_people_their_letters(story: sb.SandboxInfo, jobs: Path, smtp_server: Any) -> None:
    from aupctl.records import approvals
    from aupctl.state import State

    st = State(load(str(jobs)).state.path)
    try:
        waiting = sorted({r["username"].lower() for r in approvals.live(st, status=("waiting",))})
    finally:
        st.close()
    assert waiting, "the intake above left grants waiting for a signature"
    addresses = {u: mail_of(story, u) for u in waiting}
    # one of them with a display name that tries to start a line of its own and reorder the text
    odd_user = next(u for u, a in addresses.items() if a)
    attr = "sAMAccountName" if story.flavour == "ad" else "uid"
    conn = story.connect(story.admin_dn, story.admin_password)
    try:
        conn.search(story.base_dn, f"(&(objectClass=person)({attr}={odd_user}))")
        odd = "Jo\r\nBcc: evil@example.com\x1b[2J\u202eSmith"
        assert conn.modify(conn.entries[0].entry_dn, {"displayName": [(MODIFY_REPLACE, [odd])]}), conn.result
    finally:
        conn.unbind()
    before = len(smtp_server.received)
    code, out, err = jcli(jobs, "--format", "json", "notify", "--yes")
    assert code in (0, 1), (out, err)
    got = smtp_server.received[before:]
    letter = next(g for g in got if addresses[odd_user].lower() in {a.lower() for a in g.rcpt_tos})
    for part in ("plain", "html"):
        body = letter.message.get_body((part,)).get_content()
        assert "\x1b" not in body and "\u202e" not in body and "\nBcc:" not in body, body
        assert "Jo\\x0d\\x0aBcc: evil@example.com\\x1b[2J\\u202eSmith" in body, body
    assert "Bcc" not in letter.message and letter.rcpt_tos == (addresses[odd_user],)
    to = {a.lower() for g in got for a in g.rcpt_tos}
    want = {a.lower() for a in addresses.values() if a}
    assert want and want <= to, (want, to)
    findings = data_of(out).get("findings") or []
    assert code == (1 if findings else 0)
    assert all(f["check"] == "no-mail-address" for f in findings), findings  # someone without an address
    assert {u for u, a in addresses.items() if not a} <= {f["subject"].lower() for f in findings}, "each one named"
    again = len(smtp_server.received)
    code, out, err = jcli(jobs, "notify", "--yes")
    assert code in (0, 1) and len(smtp_server.received) == again, "nothing twice"


def _add_computers(info: sb.SandboxInfo) -> dict[str, str]:
    """Two computers on this layout, where such a school keeps them: name -> OS text."""
    conn = info.connect(info.admin_dn, info.admin_password)
    try:
        if info.flavour == "ad":
            # nested: an OU tree of the school's own, a site's laptops two levels down
            ou = "OU=Laptops,OU=North Site,OU=School Computers" if info.layout == "nested" else "CN=Computers"
            if info.layout == "nested":
                for part in ("OU=School Computers", "OU=North Site,OU=School Computers", ou):
                    assert conn.add(f"{part},{info.base_dn}", "organizationalUnit"), conn.result
            made = {
                "HB-W10-901": ("Windows 10 Pro", "10.0 (19045)"),
                "HB-W11-902": ("Windows 11 Education", "10.0 (26100)"),
            }
            for name, (os_name, version) in made.items():
                assert conn.add(f"CN={name},{ou},{info.base_dn}", ["top", "computer"], {
                    "sAMAccountName": f"{name}$", "userAccountControl": "4096",
                    "operatingSystem": os_name, "operatingSystemVersion": version}), conn.result  # fmt: skip
            return {n: f"{o} {v}" for n, (o, v) in made.items()}
        ou = "ou=Devices,ou=People" if info.layout == "flat" else "ou=Devices"
        assert conn.add(f"{ou},{info.base_dn}", "organizationalUnit", {"ou": "Devices"}), conn.result
        made = {"HB-LT-901": "Windows 10 Pro 10.0 (19045)", "Zoë's iMac": "macOS 26.1"}
        for name, desc in made.items():
            assert conn.add(f"cn={name},{ou},{info.base_dn}", "device", {"cn": name, "description": desc}), conn.result
        return made
    finally:
        conn.unbind()


def test_estate_list_and_audit_find_the_layouts_computers(story: sb.SandboxInfo, jobs: Path) -> None:
    made = _add_computers(story)
    code, out, err = jcli(jobs, "--format", "json", "estate", "list")
    assert code == 0, err
    rows = {r["name"]: r for r in data_of(out)["data"]}
    assert set(made) <= set(rows), rows.keys()
    if story.layout == "nested":
        assert all(rows[n]["ou"].startswith("OU=Laptops,OU=North Site,OU=School Computers,") for n in made), rows
    old = next(n for n in made if "901" in n)
    assert rows[old]["support"] == "ended" and rows[old]["release"] == "Windows 10 22H2"
    code, out, err = jcli(jobs, "--format", "json", "estate", "audit", "--no-probe")
    assert code == 1, (out, err)
    found = {(f["subject"], f["check"]) for f in data_of(out)["findings"]}
    assert (old, "os-unsupported") in found
    for name in made:  # a supported one: no finding
        if rows[name]["support"] != "ended":
            assert (name, "os-unsupported") not in found, name
    # [estate] base: where this school keeps them; a base that is not there is refused, not "no computers"
    where = rows[old]["ou"]
    for base, want in ((where, 0), (f"OU=Nowhere,{where}", 2)):
        path = story.dir / "estate-base.toml"
        path.write_text(jobs.read_text(encoding="utf-8") + f'\n[estate]\nbase = "{base}"\n', encoding="utf-8")
        code, out, err = run_main("--format", "json", "estate", "list", config=path)
        assert code == want, (out, err)
        if want == 0:
            assert {r["name"] for r in data_of(out)["data"]} == set(made)
        else:
            assert "estate.base" in err and "not in the directory" in err


def test_domain_audit_finds_the_layouts_privileged_groups_and_members(story: sb.SandboxInfo, jobs: Path) -> None:
    code, out, err = jcli(jobs, "--format", "json", "domain", "audit")
    assert code == 1, (out, err)
    doc = data_of(out)
    data = doc["data"]
    labels = {g["label"] for g in data["privileged_groups"]}
    if story.flavour == "ad":
        assert {"Domain Admins", "Administrators"} <= labels
    cfg = load(str(jobs))
    assert {g.split(",")[0].split("=")[-1] for g in cfg.directory.privileged_groups} <= labels | {
        g["name"] for g in data["privileged_groups"]
    }
    # who is in them: each group read here independently, nesting followed
    want: set[str] = set()
    for g in data["privileged_groups"]:
        want |= effective_usernames(story, g["dn"])
    admins = {a["username"].lower() for a in data["admins"]}
    assert {hb.PLANTED["privileged"], hb.LEGIT_IT_ADMIN} <= admins
    assert admins == want, admins ^ want
    assert data["admin_count"]["now"] == len(admins)
    only = {f["subject"] for f in doc["findings"] if f["check"] == "admin-only-account"}
    assert hb.PLANTED["privileged"] in only


def test_evidence_record_and_list(story: sb.SandboxInfo, jobs: Path) -> None:
    note = "<script>alert('x')</script> restore by Zoë Ní Bhriain \"ok\""
    code, out, err = jcli(jobs, "evidence", "record", "backup-tested", "--on", "2026-11-20", "--note", note, "--yes")
    assert code == 0, err
    code, out, err = jcli(jobs, "--format", "json", "evidence", "list")
    assert code == 0, err
    listed = data_of(out)["data"]
    assert [(e["kind"], e["on"], e["note"]) for e in listed] == [("backup-tested", "2026-11-20", note)]


def test_report_figures_equal_the_source_commands(story: sb.SandboxInfo, jobs: Path, tmp_path: Path) -> None:
    code, out, err = jcli(jobs, "--format", "json", "report")
    assert code in (0, 1), (out, err)
    school = data_of(out)["data"]["schools"][0]
    sections = school["sections"]
    # AUP: the same people and signatures `aup status` shows
    code, out, err = jcli(jobs, "--format", "json", "aup", "status")
    aup = data_of(out)["data"]
    assert sections["people"]["aup"]["staff"] == len(aup)
    assert sections["people"]["aup"]["signed"] == sum(1 for r in aup if r["signed"])
    # recertification: the campaign `access recertify status` shows
    code, out, err = jcli(jobs, "--format", "json", "access", "recertify", "status")
    camp = data_of(out)["data"]["campaign"]
    rec = sections["people"]["recertification"]
    assert (rec["code"], rec["status"]) == (camp["code"], camp["status"])
    # the audits' last runs: the findings `estate audit` and `domain audit` gave
    for kind, args in (("estate-audit", ("estate", "audit", "--no-probe")), ("domain-audit", ("domain", "audit"))):
        code, out, err = jcli(jobs, "--format", "json", *args)
        findings = data_of(out).get("findings") or []
        code, rep, err = jcli(jobs, "--format", "json", "report")
        latest = data_of(rep)["data"]["schools"][0]["sections"]["extra"][kind]["latest"]
        assert latest["total"] == len(findings), kind
    # admin accounts: the distinct accounts in the configured privileged groups, as read here
    cfg = load(str(jobs))
    code, out, err = jcli(jobs, "--format", "json", "report")
    pw = data_of(out)["data"]["schools"][0]["sections"]["passwords"]
    wanted: set[str] = set()
    for name in cfg.directory.privileged_groups:
        dn = cfg.dn(name) if "=" in name else cfg.group_dn(name)
        members = effective_usernames(story, dn)
        label = name.split(",")[0].split("=", 1)[1] if "=" in name else name  # a group named by DN: its cn
        assert pw["admin_groups"][label] == len(members), (name, pw["admin_groups"])
        wanted |= members
    assert len(pw["admin_groups"]) == len(cfg.directory.privileged_groups), pw["admin_groups"]
    assert pw["admin_accounts"] == len(wanted), "each account once, however many admin groups hold it"
    # evidence: what `evidence list` holds
    ev = {k["kind"]: k for k in sections["evidence"]["kinds"]}
    assert ev["backup-tested"]["last"] == "2026-11-20"
    # the HTML once per layout: self-contained, the note escaped; a name from the directory with ESC and a
    # bidi override (U+202E) shown as escapes, as on the terminal
    attr = "sAMAccountName" if story.flavour == "ad" else "uid"
    conn = story.connect(story.admin_dn, story.admin_password)
    try:
        conn.search(story.base_dn, f"(&(objectClass=person)({attr}={hb.PLANTED['privileged']}))")
        odd = "Denise\x1b[31m Hart\u202e <script>x</script>"
        assert conn.modify(conn.entries[0].entry_dn, {"displayName": [(MODIFY_REPLACE, [odd])]}), conn.result
    finally:
        conn.unbind()
    page = tmp_path / "report.html"
    code, out, err = jcli(jobs, "report", "--out", str(page))
    assert code in (0, 1), (out, err)
    html = page.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<script>x" not in html and "Hollybank" in html
    assert "\x1b" not in html and "\u202e" not in html and "Denise\\x1b[31m Hart\\u202e &lt;script&gt;x" in html
    assert "&lt;script&gt;" in html or "Ní Bhriain" in html
