"""Every group schema a school uses, on real slapd: the sandbox school's groups (systems, roles, IT Admins)
turned into posixGroup (memberUid, RFC 2307), RFC 2307bis (groupOfNames + posixGroup, on a slapd whose nis
schema makes posixGroup auxiliary, as rfc2307bis.schema does) and groupOfUniqueNames (some members with a
#'..'B UID), then every job that reads or writes membership run against them: access review and --fix,
grant, revoke, adopt, leaver withdraw and restore, the intake's role groups, the password audit's
privileged groups and `staff show`. Also: the last member of a groupOfNames (placeholder_member, or a
refusal with nothing changed), posixAccount for new accounts, and safe first contact (review --fix refused
before `access adopt`, or past max_removal_share, without --force)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from cli_helpers import payload, run_main

from aupctl import config as config_mod
from aupctl import sandbox as sb
from aupctl.access.adopt import adopt_plan
from aupctl.access.aup import import_plan, sign_plan
from aupctl.access.grant import grant_plan, revoke_plan
from aupctl.access.review import CHECKS, review
from aupctl.directory import normalise_dn, open_directory, same_dn, unresolved_dn
from aupctl.errors import RefusedError
from aupctl.leavers.restore import restore
from aupctl.leavers.schedule import Request, withdraw
from aupctl.passwords.audit import privileged_members
from aupctl.plan import apply
from aupctl.records import approvals
from aupctl.sandbox import school as hb
from aupctl.state import State

KINDS = ["posixGroup", "rfc2307bis", "groupOfUniqueNames"]
GHOST = "ghost.user"  # a memberUid no account holds


def _bis_schema(tmp: Path) -> Path:
    """nis.schema with posixGroup AUXILIARY (MUST gidNumber), as in rfc2307bis.schema, so it can sit on a
    groupOfNames."""
    _, schemas = sb._openldap_dirs()
    text = (schemas / "nis.schema").read_text()
    bis, n = re.subn(
        r"(NAME 'posixGroup'\s+DESC '[^']*'\s+)SUP top STRUCTURAL\s+MUST \( cn \$ gidNumber \)",
        r"\1SUP top AUXILIARY\n\tMUST gidNumber",
        text,
    )
    assert n == 1, "nis.schema's posixGroup is not as expected"
    out = tmp / "nis-2307bis.schema"
    out.write_text(bis)
    return out


def _start(tmp: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[sb.SandboxInfo]:
    if kind == "rfc2307bis":
        schema = _bis_schema(tmp)
        _, schemas = sb._openldap_dirs()
        plain = sb._slapd_conf
        monkeypatch.setattr(  # where start() looks it up: the sandbox's openldap module
            sb.openldap, "_slapd_conf", lambda *a, **k: plain(*a, **k).replace(f"{schemas}/nis.schema", str(schema))
        )
    info = sb.start("openldap", tmp / "sandbox", detach=False)
    try:
        yield info
    finally:
        info.stop()


def convert(info: sb.SandboxInfo, kind: str) -> dict[str, list[str]]:
    """Every group under ou=Groups re-made (same DN, same members) in the given schema; returns
    group DN -> member usernames. The pure posixGroup SIMS Users also gets a memberUid no account holds."""
    admin = info.connect(info.admin_dn, info.admin_password)
    base = f"ou=Groups,{info.base_dn}"
    admin.search(base, "(objectClass=groupOfNames)", ldap3.LEVEL, attributes=["cn", "description", "member"])
    groups = [(e.entry_dn, e.cn.value, e.description.value, list(e.member.values)) for e in admin.entries]
    out: dict[str, list[str]] = {}
    for i, (gdn, cn, desc, members) in enumerate(groups):
        dns = [m for m in members if not same_dn(m, gdn)]
        users = [ldap3.utils.dn.parse_dn(m)[0][1] for m in dns]
        attrs: dict = {"cn": cn, "gidNumber": str(5000 + i)}
        if desc:
            attrs["description"] = desc
        if kind == "posixGroup":
            classes = ["posixGroup"]
            if users:
                attrs["memberUid"] = users + ([GHOST] if cn == "SIMS Users" else [])
        elif kind == "rfc2307bis":
            classes = ["groupOfNames", "posixGroup"]
            attrs["member"] = dns or [gdn]
            if users:
                attrs["memberUid"] = users
        else:
            classes = ["groupOfUniqueNames"]
            del attrs["gidNumber"]
            attrs["uniqueMember"] = [m + ("#'0101'B" if j % 2 else "") for j, m in enumerate(dns)] or [gdn]
        assert admin.delete(gdn), admin.result
        assert admin.add(gdn, classes, attrs), (gdn, admin.result)
        out[gdn] = users
    admin.unbind()
    return out


@pytest.fixture(params=KINDS)
def school(request, tmp_path, monkeypatch) -> Iterator[tuple]:
    """(kind, sandbox, config, directory, state, usernames by group before the conversion)."""
    kind = request.param
    for info in _start(tmp_path, monkeypatch, kind):
        cfg = config_mod.load(str(info.config_path))
        d = open_directory(cfg)
        st = State(cfg.state.path)
        apply(import_plan(cfg, d, st, str(info.dir / "aup-signatures.csv")), st)
        before = review_rows(cfg, d, st)
        members = convert(info, kind)
        try:
            yield kind, info, cfg, d, st, members, before
        finally:
            st.close()
            d.close()


def review_rows(cfg, d, st) -> set[tuple[str, str, str]]:
    return {(f.subject, f.check, f.system or "") for f in review(cfg, d, st).findings}


def raw_group(d, gdn: str) -> dict[str, list[str]]:
    """The group's member values as stored, by attribute (lower-cased DNs, usernames as they are)."""
    attrs = d.read(gdn, ["member", "uniqueMember", "memberUid"]) or {}
    out = {k.lower(): [str(v) for v in vals] for k, vals in attrs.items()}
    return {
        "member": sorted(normalise_dn(v) for v in out.get("member", [])),
        "uniquemember": sorted(normalise_dn(v.split("#'")[0]) for v in out.get("uniquemember", [])),
        "memberuid": sorted(out.get("memberuid", [])),
    }


def holds(d, gdn: str, acct) -> bool:
    """Is the account in the group, checked in every attribute its schema uses (and in step for 2307bis)."""
    g = raw_group(d, gdn)
    by_dn = normalise_dn(acct.dn) in g["member"] or normalise_dn(acct.dn) in g["uniquemember"]
    by_uid = acct.username in g["memberuid"]
    if g["member"] and g["memberuid"] is not None and d.flavour.groups.read(d, gdn).kind == "rfc2307bis":
        assert by_dn == by_uid, f"member and memberUid out of step in {gdn}: {g}"
    return by_dn or by_uid


def test_review_finds_the_same_on_every_schema_and_fix_keeps_them_in_step(school) -> None:
    kind, info, cfg, d, st, members, before = school
    after = review_rows(cfg, d, st)
    if kind == "posixGroup":
        ghost = unresolved_dn(GHOST)
        assert (ghost, "no-approval", "sims") in after, "a memberUid no account holds is reported"
        after.discard((ghost, "no-approval", "sims"))
    assert after == before, f"{kind}: the review differs from the groupOfNames one"
    sims = cfg.group_dn("SIMS Users")
    code, out, err = run_main(
        "access", "adopt", "sims", "--approved-by", hb.HEADTEACHER, "--yes", config=info.config_path
    )  # the safe order: adopt, then review --fix
    assert code == 0, err
    result = review(cfg, d, st, "sims")
    removed = {p.username or p.member_dn for p in result.problems if CHECKS[p.finding.check][2]}
    assert removed, "the sandbox plants members who should not be there"
    code, out, err = run_main("access", "review", "sims", "--fix", "--yes", config=info.config_path)
    assert code == 1, err
    left = d.flavour.group_members(d, sims)
    assert left is not None and left, "members who should be there stay"
    for user in removed - {unresolved_dn(GHOST)}:
        acct = d.flavour.find_user(d, user)
        assert not holds(d, sims, acct), f"{user} still in {kind} SIMS Users"
    if kind == "posixGroup":
        assert GHOST not in raw_group(d, sims)["memberuid"], "the unknown memberUid was removed too"
    for dn in left:
        acct = d.flavour.find_user(d, ldap3.utils.dn.parse_dn(dn)[0][1])
        assert holds(d, sims, acct)


def test_grant_revoke_and_adopt(school) -> None:
    kind, info, cfg, d, st, members, _ = school
    fl = d.flavour
    raise_dn = cfg.group_dn("RAISE Online Users")
    user = next(
        p.username
        for p in hb.school().staff
        if "raise" in hb.ROLE_SYSTEMS[p.role]
        and not p.leaver
        and not p.disabled
        and p.username not in members[raise_dn]
        and p.username not in hb.PLANTED.values()
        and p.username not in hb.UNSIGNED
    )
    acct = fl.find_user(d, user)
    assert not holds(d, raise_dn, acct)
    apply(grant_plan(cfg, d, st, user, "raise", hb.HEADTEACHER, "test"), st)
    assert holds(d, raise_dn, acct) and any(same_dn(m, acct.dn) for m in fl.group_members(d, raise_dn))
    assert any(same_dn(g, raise_dn) for g in fl.find_user(d, user).groups), "fill_groups sees it"
    apply(revoke_plan(cfg, d, st, user, "raise", "test over"), st)
    assert not holds(d, raise_dn, acct)
    assert not any(same_dn(m, acct.dn) for m in fl.group_members(d, raise_dn))

    # A grant waiting for the AUP signature: `aup sign` gives the access, in the group's own schema.
    waiting = next(
        u
        for u in hb.UNSIGNED
        if hb.school().person(u).role in ("teacher", "slt")
        and u not in members[raise_dn]
        and not hb.school().person(u).leaver
        and not hb.school().person(u).disabled
    )
    st.execute("DELETE FROM signatures WHERE username = ?", (waiting,))
    approvals.record(st, username=waiting, system="raise", approver=hb.HEADTEACHER, status="waiting")
    apply(sign_plan(cfg, d, st, waiting), st)
    assert holds(d, raise_dn, fl.find_user(d, waiting)), f"{kind}: the waiting grant was given on signing"

    tt = cfg.group_dn("Target Tracker Users")
    st.execute("DELETE FROM approvals WHERE system = 'target_tracker'")
    plan = adopt_plan(cfg, d, st, hb.HEADTEACHER, "target_tracker")
    apply(plan, st)
    recorded = {r["username"] for r in approvals.live(st, system="target_tracker")}
    assert recorded == set(members[tt]), f"{kind}: adopt records each member once"


def test_leaver_withdraw_and_restore_every_membership(school) -> None:
    kind, info, cfg, d, st, members, _ = school
    fl = d.flavour
    user = next(u for u in members[cfg.group_dn("SIMS Users")] if u not in hb.PLANTED.values())
    acct = fl.find_user(d, user)
    groups = sorted(normalise_dn(g) for g in acct.groups)
    assert len(groups) >= 2, f"{user} is in their role groups and SIMS"
    apply(withdraw(cfg, d, st, [Request(user, None, "resigned")], today=dt.date.today()), st)
    gone = fl.find_user(d, user)
    assert gone.groups == []
    for gdn in groups:
        assert not holds(d, gdn, acct), f"{user} is still in {gdn}"
    snapshot = json.loads(st.query("SELECT snapshot FROM leavers WHERE username = ?", (user,))[0]["snapshot"])
    assert sorted(normalise_dn(g) for g in snapshot["groups"]) == groups, "the snapshot remembers every group"
    plan = restore(cfg, d, st, user, credentials_out=str(info.dir / "restored.csv"), today=dt.date.today())
    apply(plan, st)
    back = fl.find_user(d, user)
    assert sorted(normalise_dn(g) for g in back.groups) == groups
    for gdn in groups:
        assert holds(d, gdn, back)


def test_intake_puts_new_people_in_their_role_groups(school, tmp_path) -> None:
    kind, info, cfg, d, st, members, _ = school
    fl = d.flavour
    rows = [("Zofia", "Kowalczyk", "teacher"), ("Amara", "Okafor", "ta"), ("Piotr", "Nowak", "teacher")]
    path = tmp_path / "intake.csv"
    with path.open("w", newline="") as fh:  # no staff_code, no email: accounts without either work
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role"])
        w.writerows(rows)
    creds = tmp_path / "creds.csv"
    code, out, err = run_main(
        "staff", "import", str(path), "--yes", "--credentials-out", str(creds), config=info.config_path
    )
    assert code == 0, out + err
    with creds.open() as fh:
        made = {r["name"]: r["username"] for r in csv.DictReader(fh)}
    for first, last, role in rows:
        acct = fl.find_user(d, made[f"{first} {last}"])
        for g in hb.ROLE_GROUPS[role]:
            assert holds(d, cfg.group_dn(g), acct), f"{acct.username} not in {kind} {g}"
        assert "posixAccount" not in [str(c) for c in acct.raw.get("objectClass", [])], "the school's people are not"
    everyone = fl.group_members(d, cfg.group_dn("All Staff"))
    assert len(everyone) == len(members[cfg.group_dn("All Staff")]) + 3


def test_password_audit_privileged_and_staff_show(school) -> None:
    kind, info, cfg, d, st, members, _ = school
    it = cfg.group_dn(hb.IT_ADMINS)
    found = privileged_members(cfg, d)
    want = {normalise_dn(d.flavour.find_user(d, u).dn) for u in members[it]}
    assert want and {k for k, v in found.items() if hb.IT_ADMINS in v} == want
    assert len(members[it]) >= 2, "one IT Admin has a #'..'B UID on groupOfUniqueNames"
    for u in members[it]:  # find_user's own search for its groups (by member, uniqueMember or memberUid)
        assert any(same_dn(g, it) for g in d.flavour.find_user(d, u).groups), (kind, u)
    user = members[it][-1]
    code, out, err = run_main("--format", "json", "staff", "show", user, config=info.config_path)
    assert code == 0, err
    shown = payload(out)
    groups = shown[0]["groups"] if isinstance(shown, list) else shown["groups"]
    assert hb.IT_ADMINS in groups


# -- the last member of a groupOfNames --


def test_last_member_of_a_group_of_names_placeholder_or_refusal(fresh_openldap) -> None:
    info = fresh_openldap
    cfg = config_mod.load(str(info.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    try:
        fl = d.flavour
        people = [a for a in fl.iter_accounts(d, with_groups=False) if not a.disabled][:2]
        gdn = cfg.group_dn("Only One")
        d.add(gdn, ["groupOfNames"], {"cn": "Only One", "member": [people[0].dn]})
        placeholder = cfg.dn(cfg.directory.placeholder_member)

        # Without a placeholder: refused before anything changes, saying what to do.
        bare = dataclasses.replace(cfg, directory=dataclasses.replace(cfg.directory, placeholder_member=None))
        d_bare = open_directory(bare)
        try:
            with pytest.raises(RefusedError) as refused:
                d_bare.flavour.groups.check_removals(d_bare, [(gdn, people[0].dn)])
            assert "placeholder_member" in str(refused.value) and "nothing was changed" in str(refused.value)
            with pytest.raises(RefusedError):
                d_bare.flavour.remove_member(d_bare, gdn, people[0].dn)
            assert raw_group(d, gdn)["member"] == [normalise_dn(people[0].dn)]
        finally:
            d_bare.close()

        # With one: it stands in, in the same modify, and is never a member; the next add takes it out.
        assert fl.remove_member(d, gdn, people[0].dn) is True
        assert raw_group(d, gdn)["member"] == [normalise_dn(placeholder)]
        assert fl.group_members(d, gdn) == []
        assert fl.add_member(d, gdn, people[1].dn) is True
        assert raw_group(d, gdn)["member"] == [normalise_dn(people[1].dn)]
        assert fl.add_member(d, gdn, people[1].dn) is False
    finally:
        st.close()
        d.close()


def test_revoke_of_the_last_member_is_refused_without_a_placeholder(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    text = info.config_path.read_text()
    bare = info.dir / "bare.toml"  # beside the sandbox's own: its relative paths hold
    bare.write_text(re.sub(r"(?m)^placeholder_member = .*$", "", text))
    cfg = config_mod.load(str(bare))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    try:
        raise_dn = cfg.group_dn("RAISE Online Users")
        members = d.flavour.group_members(d, raise_dn)
        keep = members[-1]
        for m in members[:-1]:
            d.flavour.remove_member(d, raise_dn, m)
        user = ldap3.utils.dn.parse_dn(keep)[0][1]
        with pytest.raises(RefusedError, match="placeholder_member"):
            revoke_plan(cfg, d, st, user, "raise", "test")
        assert [normalise_dn(m) for m in d.flavour.group_members(d, raise_dn)] == [normalise_dn(keep)]
    finally:
        st.close()
        d.close()


# -- safe first contact --


def test_review_fix_before_adopt_is_refused_then_forced(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    cfg = config_mod.load(str(info.config_path))
    st = State(cfg.state.path)
    d = open_directory(cfg)
    try:
        tt = cfg.group_dn("Target Tracker Users")
        apply(import_plan(cfg, d, st, str(info.dir / "aup-signatures.csv")), st)
        before = sorted(d.flavour.group_members(d, tt))
        code, out, err = run_main("access", "review", "target_tracker", "--fix", "--yes", config=info.config_path)
        assert code == 2, out + err
        assert "no approval was ever recorded" in err and "access adopt" in err and "--force" in err
        assert sorted(d.flavour.group_members(d, tt)) == before, "nothing changed"
        code, out, err = run_main("access", "review", "target_tracker", "--fix", "--dry-run", config=info.config_path)
        assert code == 1 and "remove " in out and "--force" in err, "--dry-run shows the plan and why"
        assert sorted(d.flavour.group_members(d, tt)) == before
        code, out, err = run_main(
            "access", "review", "target_tracker", "--fix", "--force", "--yes", config=info.config_path
        )
        assert code == 1, err
        assert len(d.flavour.group_members(d, tt)) < len(before), "--force runs it"
    finally:
        st.close()
        d.close()


def test_review_fix_removing_more_than_the_share_is_refused(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    cfg = config_mod.load(str(info.config_path))
    st = State(cfg.state.path)
    d = open_directory(cfg)
    try:
        sims = cfg.group_dn("SIMS Users")
        apply(import_plan(cfg, d, st, str(info.dir / "aup-signatures.csv")), st)
        apply(adopt_plan(cfg, d, st, hb.HEADTEACHER), st)
        result = review(cfg, d, st, "sims")
        removing = {p.member_dn for p in result.problems if p.member_dn and p.finding.check != "approval-overdue"}
        assert len(removing) >= 2
        strict = info.dir / "strict.toml"
        strict.write_text(
            info.config_path.read_text().replace("[passwords]", "[access]\nmax_removal_share = 0.01\n\n[passwords]")
        )
        before = sorted(d.flavour.group_members(d, sims))
        code, out, err = run_main("access", "review", "sims", "--fix", "--yes", config=strict)
        assert code == 2 and "max_removal_share" in err and "access adopt" in err, out + err
        assert sorted(d.flavour.group_members(d, sims)) == before
        code, out, err = run_main("access", "review", "sims", "--fix", "--yes", config=info.config_path)
        assert code == 1, "within the default share it runs"
        assert len(d.flavour.group_members(d, sims)) < len(before)
    finally:
        st.close()
        d.close()


# -- posixAccount for new accounts --


def _make_posix(info: sb.SandboxInfo, count: int, first_uid: int, gid: int) -> list[int]:
    admin = info.connect(info.admin_dn, info.admin_password)
    admin.search(f"ou=Staff,{info.base_dn}", "(objectClass=inetOrgPerson)", attributes=["uid"])
    uids = []
    for i, e in enumerate(admin.entries[:count]):
        uid = first_uid + i * 7
        ok = admin.modify(
            e.entry_dn,
            {
                "objectClass": [(ldap3.MODIFY_ADD, ["posixAccount"])],
                "uidNumber": [(ldap3.MODIFY_ADD, [str(uid)])],
                "gidNumber": [(ldap3.MODIFY_ADD, [str(gid)])],
                "homeDirectory": [(ldap3.MODIFY_ADD, [f"/home/{e.uid.value}"])],
            },
        )
        assert ok, admin.result
        uids.append(uid)
    admin.unbind()
    return uids


def _intake(info, config: Path, tmp_path: Path, rows: list[tuple[str, str, str]]) -> dict[str, str]:
    path = tmp_path / "intake.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role"])
        w.writerows(rows)
    creds = tmp_path / "creds.csv"
    code, out, err = run_main("staff", "import", str(path), "--yes", "--credentials-out", str(creds), config=config)
    assert code == 0, out + err
    with creds.open() as fh:
        return {r["name"]: r["username"] for r in csv.DictReader(fh)}


def test_new_accounts_are_posix_where_the_schools_people_are(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    used = _make_posix(info, 5, 3000, 100)
    made = _intake(info, info.config_path, tmp_path, [("Ines", "Duarte", "teacher"), ("Yusuf", "Demir", "ta")])
    cfg = config_mod.load(str(info.config_path))
    d = open_directory(cfg)
    try:
        got = []
        for username in made.values():
            attrs = d.read(
                d.flavour.find_user(d, username).dn,
                ["objectClass", "uidNumber", "gidNumber", "homeDirectory", "loginShell"],
            )
            assert "posixAccount" in [str(c) for c in attrs["objectClass"]]
            assert int(attrs["gidNumber"][0]) == 100, "the gidNumber the school's people have"
            assert attrs["homeDirectory"][0] == f"/home/{username}" and attrs["loginShell"][0] == "/bin/bash"
            got.append(int(attrs["uidNumber"][0]))
        assert sorted(got) == [max(used) + 1, max(used) + 2], "the next free above those in use"
    finally:
        d.close()


def test_uid_range_and_templates_from_the_config(fresh_openldap, tmp_path) -> None:
    info = fresh_openldap
    _make_posix(info, 2, 20000, 100)
    text = info.config_path.read_text().replace(
        "[accounts]\n",
        '[accounts]\nposix = true\nuid_range = [7000, 7999]\ngid_number = 4242\nhome_directory = "/srv/home/{username}"\n'
        'login_shell = "/bin/zsh"\n',
    )
    cfgp = info.dir / "posix.toml"
    cfgp.write_text(text)
    made = _intake(info, cfgp, tmp_path, [("Mei", "Tanaka", "office")])
    cfg = config_mod.load(str(cfgp))
    d = open_directory(cfg)
    try:
        (username,) = made.values()
        attrs = d.read(d.flavour.find_user(d, username).dn, ["uidNumber", "gidNumber", "homeDirectory", "loginShell"])
        assert int(attrs["uidNumber"][0]) == 7000 and int(attrs["gidNumber"][0]) == 4242
        assert attrs["homeDirectory"][0] == f"/srv/home/{username}" and attrs["loginShell"][0] == "/bin/zsh"
    finally:
        d.close()


@pytest.mark.parametrize(
    "extra, needle",
    [
        ("uid_range = [10, 5]", "accounts.uid_range"),
        ('home_directory = "/home/{first_name}"', "accounts.home_directory"),
        ('posix = "yes"', "accounts.posix"),
        ('home_directory = "/home/{username.__class__}"', "accounts.home_directory"),
        ('login_shell = "{0}"', "accounts.login_shell"),
        ("max_removal_share = 2", "access.max_removal_share"),
        ('placeholder_member = "nobody"', "directory.placeholder_member"),
    ],
)
def test_bad_posix_keys_are_named(extra: str, needle: str) -> None:
    from aupctl.errors import ConfigError

    example = (Path(__file__).parent.parent / "config.example.toml").read_text()
    key = extra.split(" =")[0]
    text, n = re.subn(rf"(?m)^{key} = .*$", lambda _: extra, example)
    assert n == 1
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config_mod.parse(text, "x.toml")


# -- Active Directory: nested OUs, a system group elsewhere in the domain, nesting three levels deep --


def test_ad_nested_ous_and_a_system_group_three_levels_deep_anywhere(ad_sandbox) -> None:
    info = ad_sandbox
    base = info.base_dn
    tag = uuid.uuid4().hex[:6]
    text = info.config_path.read_text()
    site = f"OU=Science {tag},OU=Site {tag},OU=Staff,{base}"  # staff two OUs below staff_ou
    apps = f"OU=Systems {tag},OU=Apps {tag},{base}"  # system groups outside groups_ou
    deep = f"CN=Deep {tag} Users,{apps}"
    variant = info.dir / f"deep-{tag}.toml"
    variant.write_text(
        text + f'\n[systems.deep]\nname = "Deep {tag}"\ngroup = "{deep}"\napprovers = [{json.dumps(hb.HEADTEACHER)}]\n'
    )
    cfg = config_mod.load(str(variant))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    try:
        for ou in (f"OU=Site {tag},OU=Staff,{base}", site, f"OU=Apps {tag},{base}", apps):
            d.add(ou, ["top", "organizationalUnit"], {"ou": ou.split(",")[0][3:]})
        person = f"CN=Nested {tag},{site}"  # no mail, no employeeID: made by hand
        d.add(person, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": f"n{tag}"})
        levels = [f"CN=Level{i} {tag},{apps}" for i in (1, 2, 3)]
        d.add(levels[2], ["top", "group"], {"sAMAccountName": f"l3{tag}", "member": [person]})
        d.add(levels[1], ["top", "group"], {"sAMAccountName": f"l2{tag}", "member": [levels[2]]})
        d.add(levels[0], ["top", "group"], {"sAMAccountName": f"l1{tag}", "member": [levels[1]]})
        d.add(deep, ["top", "group"], {"sAMAccountName": f"deep{tag}", "member": [levels[0]]})

        assert any(a.username == f"n{tag}" for a in d.flavour.iter_accounts(d)), "staff OUs are searched whole"
        found = review(cfg, d, st, "deep")
        assert found.checked["deep"] == 1
        (row,) = [p for p in found.problems if p.finding.check == "no-approval"]
        assert row.username == f"n{tag}" and same_dn(row.via, levels[0]), "nesting named by its first group"
        apply(adopt_plan(cfg, d, st, hb.HEADTEACHER, "deep"), st)
        assert [r["username"] for r in approvals.live(st, system="deep")] == [f"n{tag}"]
        code, out, err = run_main("--format", "json", "staff", "show", f"n{tag}", config=variant)
        assert code == 0, err
    finally:
        st.close()
        d.close()


def test_unresolved_member_uid_pseudo_dns_round_trip() -> None:
    from aupctl.directory import unresolved_username

    for name in ("bob", "o'neil", "a,b", "#x", "x+y"):
        assert unresolved_username(unresolved_dn(name)) == name
    assert unresolved_username("uid=bob,ou=Staff,dc=x") is None
    assert unresolved_username("memberUid=a,dc=x") is None
