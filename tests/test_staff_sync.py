"""`aupctl staff sync` on the sandbox school: the whole staff exported as each profile (SIMS, Arbor, Bromcom, Wonde) would, then a
joiner, a marriage, a future leaver; a re-run doing nothing; a truncated export and changed columns refused."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from cli_helpers import payload
from test_intake import run

from aupctl import config as config_mod
from aupctl.directory import Directory, same_dn
from aupctl.eligibility import is_leaver
from aupctl.records import approvals
from aupctl.records.roles import recorded_roles
from aupctl.roles import RoleResolver
from aupctl.staff.sync.profiles import PROFILES
from aupctl.state import open_state

SIMS = PROFILES["sims"]


def _staff(info):
    cfg = config_mod.load(str(info.config_path))
    d = Directory(cfg, info.bind_password).connect()
    st = open_state(cfg.state.path)
    resolve = RoleResolver(cfg, recorded_roles(st))
    fl = d.flavour
    out, other = [], []
    for a in fl.iter_accounts(d, base=cfg.directory.base_dn, with_groups=True):
        if is_leaver(cfg, a):
            continue
        role = resolve(a).role
        (out if role and a.given_name and a.surname else other).append((a, role))
    d.close()
    st.close()
    return cfg, out, [a.username for a, _ in other]


def _write(path: Path, rows: list[dict[str, str]], headers: dict[str, str] = SIMS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(headers.values()))
        w.writeheader()
        for r in rows:
            w.writerow({headers[k]: v for k, v in r.items()})
    return path


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_sync_openldap(profile: str, fresh_openldap, tmp_path: Path) -> None:
    info = fresh_openldap
    headers = PROFILES[profile]
    cfg, staff, others = _staff(info)
    ignore = ", ".join(f'"{u}"' for u in others)
    with info.config_path.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[mis]\nprofile = "{profile}"\nignore = [{ignore}]\n')
    rows = [
        {
            "person_id": f"P{i:05d}",
            "legal_first": a.given_name,
            "legal_last": a.surname,
            "staff_code": a.staff_code,
            "email": a.email,
            "role": role,
        }
        for i, (a, role) in enumerate(staff)
    ]
    first = _write(tmp_path / "day1.csv", rows, headers)
    # A --dry-run shows the plan (JSON envelope) and changes nothing: the real run after it still has work.
    code, out, err = run("--format", "json", "staff", "sync", str(first), "--dry-run", config=info.config_path)
    assert code in (0, 1), err
    env = json.loads(out)
    assert env["command"] == "staff sync" and env["ok"] and env["exit_code"] == code, env
    assert env["data"]["applied"] is False and env["data"]["people"] is not None
    code, out, err = run("staff", "sync", str(first), "--yes", config=info.config_path)
    assert code in (0, 1), err
    assert "change(s) applied" in err, err
    # The same export again: nothing to do.
    code2, out2, err2 = run("staff", "sync", str(first), "--yes", config=info.config_path)
    assert "nothing to do" in err2 + out2, (out2, err2)

    # Day 2: a joiner starting in 3 days, one in 60 days, a marriage, a leaver next month.
    today = dt.date.today()
    day2 = [dict(r) for r in rows]
    day2.append(
        {
            "person_id": "P90001",
            "legal_first": "Nadia",
            "legal_last": "Quarshie",
            "role": staff[0][1],
            "start_date": (today + dt.timedelta(days=3)).isoformat(),
        }
    )
    day2.append(
        {
            "person_id": "P90002",
            "legal_first": "Owen",
            "legal_last": "Pryce",
            "role": staff[0][1],
            "start_date": (today + dt.timedelta(days=60)).isoformat(),
        }
    )
    day2[1]["legal_last"] = "Marriedname"
    day2[1]["email"] = ""
    day2[2]["end_date"] = (today + dt.timedelta(days=30)).isoformat()
    second = _write(tmp_path / "day2.csv", day2, headers)
    creds = tmp_path / "creds.csv"
    code, out, err = run(
        "staff", "sync", str(second), "--yes", "--credentials-out", str(creds), config=info.config_path
    )
    assert code in (0, 1), err
    assert "joining on" in out and "Pryce" in out
    assert "Nadia" in creds.read_text(encoding="utf-8") or "nquarshie" in creds.read_text(encoding="utf-8").lower()
    assert "Marriedname" in out and "withdrawal scheduled" in out
    code, out, err = run("staff", "sync", str(second), "--yes", config=info.config_path)
    assert "nothing to do" in out + err

    # A truncated export (half the staff leaving) and changed columns are refused, nothing changed.
    cut = [dict(r, end_date=today.isoformat()) for r in day2[: len(day2) // 2]] + day2[len(day2) // 2 :]
    code, out, err = run(
        "staff", "sync", str(_write(tmp_path / "cut.csv", cut, headers)), "--yes", config=info.config_path
    )
    assert code == 2 and "max_leavers" in err
    code, out, err = run(
        "staff",
        "sync",
        str(_write(tmp_path / "half.csv", day2[: len(day2) // 2], headers)),
        "--yes",
        config=info.config_path,
    )
    assert code == 2 and "matched before but missing from the export" in err, err
    odd = tmp_path / "odd.csv"
    odd.write_text(
        first.read_text(encoding="utf-8").replace(headers["department"], headers["department"] + " (old)"),
        encoding="utf-8",
    )
    code, out, err = run("staff", "sync", str(odd), "--yes", config=info.config_path)
    assert code == 2 and "differ from last time" in err


def _cfg(tmp_path: Path):
    """The documented example config: its [mis.roles] map the sample exports' roles."""
    example = Path(__file__).parent.parent / "config.example.toml"
    return config_mod.parse(example.read_text(encoding="utf-8"), str(tmp_path / "aupctl.toml"))


DATA = Path(__file__).parent / "data" / "mis"


def test_every_profile_reads_its_sample(tmp_path: Path) -> None:
    from aupctl.staff.sync import read_export

    cfg = _cfg(tmp_path)
    seen = {}
    for profile in PROFILES:
        exp = read_export(cfg, str(DATA / f"{profile}.csv"), profile)
        seen[profile] = [(r.person_id, r.role, r.last_name) for r in exp.rows]
        assert exp.rows and all(r.role for r in exp.rows)
    assert seen["sims"][0] == ("10234", "teacher", "O'Connor")
    assert seen["sims"][2][1] == "office"
    assert seen["wonde"][1] == ("2302", "office", "Hart")
    sims_end = read_export(cfg, str(DATA / "sims.csv"), "sims").rows[2].end_date
    assert sims_end == dt.date(2027, 8, 31)  # DD/MM/YYYY read as the UK writes it
    # An unmapped role and a bad date are named by line and header, nothing read.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        (DATA / "sims.csv")
        .read_text(encoding="utf-8")
        .replace("Office Manager", "Caretaker")
        .replace("01/09/2019", "31/02/2019"),
        encoding="utf-8",
    )
    from aupctl.errors import InputError, RefusedError

    with pytest.raises(InputError) as exc:
        read_export(cfg, str(bad), "sims")
    assert "line 4: Role: 'Caretaker'" in str(exc.value) and "line 2: Employment Start Date" in str(exc.value)
    # Empty and stale exports are refused.
    empty = tmp_path / "empty.csv"
    empty.write_text((DATA / "sims.csv").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(RefusedError, match="no staff"):
        read_export(cfg, str(empty), "sims")
    import os

    old = tmp_path / "old.csv"
    old.write_text((DATA / "sims.csv").read_text(encoding="utf-8"), encoding="utf-8")
    os.utime(old, (1, 1))
    with pytest.raises(RefusedError, match="old by the file's modification time"):
        read_export(cfg, str(old), "sims")


def test_export_date_column_decides_the_age(tmp_path: Path) -> None:
    """Where the export carries its own date ([mis.columns] export_date), that date decides whether it is
    stale, not the file's time (a copy made today of a three-day-old report is still three days old)."""
    import os

    from aupctl.errors import InputError, RefusedError
    from aupctl.staff.sync import read_export

    example = (Path(__file__).parent.parent / "config.example.toml").read_text(encoding="utf-8")
    assert '# person_id = "Person ID"' in example
    cfg = config_mod.parse(
        example.replace('# person_id = "Person ID"', 'export_date = "Date of Extract"'), str(tmp_path / "a.toml")
    )
    sample = (DATA / "sims.csv").read_text(encoding="utf-8").splitlines()

    def export(name: str, stamps: list[str]) -> Path:
        lines = [sample[0] + ",Date of Extract"] + [
            f"{row},{stamps[i % len(stamps)]}" for i, row in enumerate(sample[1:])
        ]
        p = tmp_path / name
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return p

    now = dt.datetime.now()
    stale = export("stale.csv", [(now - dt.timedelta(days=3)).strftime("%d/%m/%Y %H:%M")])  # the file is new
    with pytest.raises(RefusedError) as exc:
        read_export(cfg, str(stale), "sims")
    assert "72 hour(s) old by its Date of Extract column" in str(exc.value), exc.value
    # Rows that disagree: the oldest counts.
    mixed = export("mixed.csv", [now.isoformat(timespec="minutes"), (now - dt.timedelta(hours=30)).isoformat()])
    with pytest.raises(RefusedError, match="30 hour.s. old by its Date of Extract column"):
        read_export(cfg, str(mixed), "sims")
    # Made this morning, copied here long ago (an old file time): the column wins, it is accepted.
    fresh = export("fresh.csv", [(now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")])
    os.utime(fresh, (1, 1))
    got = read_export(cfg, str(fresh), "sims")
    assert got.rows and "Date of Extract column" in got.made_by
    # A bare date is the end of that day: yesterday's export is accepted, the day before's is not.
    yesterday = export("yesterday.csv", [(now.date() - dt.timedelta(days=1)).isoformat()])
    assert read_export(cfg, str(yesterday), "sims").rows
    before = export("before.csv", [(now.date() - dt.timedelta(days=2)).strftime("%d/%m/%Y")])
    with pytest.raises(RefusedError, match="by its Date of Extract column"):
        read_export(cfg, str(before), "sims")
    # No value in the column: the file's time, and the message says so.
    empty = export("empty-date.csv", [""])
    os.utime(empty, (1, 1))
    with pytest.raises(RefusedError, match="by the file's modification time"):
        read_export(cfg, str(empty), "sims")
    bad = export("bad.csv", ["31/02/2026"])
    with pytest.raises(InputError, match="line 2: Date of Extract: '31/02/2026' is not a date"):
        read_export(cfg, str(bad), "sims")


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param("fresh_openldap", marks=pytest.mark.openldap),
        pytest.param("fresh_flat_openldap", marks=pytest.mark.openldap),
        pytest.param("ad_sandbox", marks=pytest.mark.ad),
    ],
)
def test_movers_leavers_and_waiting(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A teacher who becomes office staff (groups, systems, approvals), a past end date, a person missing
    from the file, an ambiguous name: on the standard and the flat layout."""
    info = request.getfixturevalue(layout)
    cfg, staff, others = _staff(info)
    # A teacher granted RAISE (a system office staff may not hold), AUP signed first.
    mover = next(a for a, role in staff if role == "teacher" and not a.disabled)
    assert "raise" not in cfg.roles["office"].systems
    code, out, err = run("aup", "sign", mover.username, "--yes", config=info.config_path)
    assert code == 0, err
    code, out, err = run(
        "access",
        "grant",
        mover.username,
        "raise",
        "--approved-by",
        "Mrs A Patel",
        "--reason",
        "data lead",
        "--yes",
        config=info.config_path,
    )
    assert code == 0, err
    lost = ["raise"]
    leaver = next(a for a, role in staff if role == "ta" and not a.disabled)
    missing = next(a for a, role in staff if role == "site")
    ignore = ", ".join(f'"{u}"' for u in others)
    with info.config_path.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[mis]\nignore = [{ignore}]\nmax_leavers = 0.2\n[mis.roles]\n"Office*" = "office"\n')
    today = dt.date.today()
    rows = []
    for i, (a, role) in enumerate(staff):
        if a.dn == missing.dn:
            continue
        r = {
            "person_id": f"P{i:05d}",
            "legal_first": a.given_name,
            "legal_last": a.surname,
            "staff_code": a.staff_code,
            "email": a.email,
            "role": role,
        }
        if a.dn == mover.dn:
            r["role"] = "Office Manager"
        if a.dn == leaver.dn:
            r["end_date"] = (today - dt.timedelta(days=2)).strftime("%d/%m/%Y")
        rows.append(r)
    # Two people in the export who both match only by a name two accounts share: listed, never guessed.
    twin_first, twin_last = "Ambiguous", "Namesake"
    for n in (1, 2):
        code, out, err = run(
            "staff",
            "import",
            str(_import_file(tmp_path, n, twin_first, twin_last)),
            "--yes",
            "--credentials-out",
            str(tmp_path / f"c{n}.csv"),
            config=info.config_path,
        )
        assert code == 0, err
    rows.append({"person_id": "P99999", "legal_first": twin_first, "legal_last": twin_last, "role": "teacher"})
    export = _write(tmp_path / "day.csv", rows)
    code, out, err = run("--format", "json", "staff", "sync", str(export), "--yes", config=info.config_path)
    assert code == 1, err  # things wait for a person
    people = payload(out)["data"]["people"] if "data" in payload(out) else payload(out)["people"]
    kinds = {(p["kind"], p["username"]) for p in people}
    assert ("not in MIS", missing.username) in kinds
    assert ("leaver", leaver.username) in kinds
    assert any(k == "ambiguous" for k, _ in kinds)
    # Directory and store: the mover in the office role's groups, out of the teachers', approvals ended.
    cfg2 = config_mod.load(str(info.config_path))
    d = Directory(cfg2, info.bind_password).connect()
    st = open_state(cfg2.state.path)
    acct = d.flavour.find_user(d, mover.username)
    d.flavour.fill_groups(d, [acct])

    def member(g: str) -> bool:
        return any(same_dn(cfg2.group_dn(g), h) for h in acct.groups)

    office, teaching = cfg2.roles["office"].groups, cfg2.roles["teacher"].groups
    assert all(member(g) for g in office)
    assert not any(member(g) for g in teaching if g not in office)
    assert not member(cfg2.systems["raise"].group)
    still = {a["system"] for a in approvals.live(st, username=mover.username)}
    assert not (set(lost) & still)
    # The MIS id is written to the account once matched (employeeID on AD, employeeType on OpenLDAP).
    idattr = "employeeID" if info.flavour == "ad" else "employeeType"
    assert cfg2.directory.flavour == info.flavour
    held_id = d.read(acct.dn, [idattr])
    assert held_id and str(held_id[idattr][0] if isinstance(held_id[idattr], list) else held_id[idattr]).startswith("P")
    gone = d.flavour.find_user(d, leaver.username)
    assert is_leaver(cfg2, gone) and gone.disabled
    assert (
        d.flavour.find_user(d, missing.username) is not None and not d.flavour.find_user(d, missing.username).disabled
    )
    d.close()
    st.close()
    # The same export again: nothing changes (what waits for a person still waits: exit 1).
    code, out, err = run("staff", "sync", str(export), "--yes", config=info.config_path)
    assert code == 1 and "nothing to do" in out + err, (out, err)


def _import_file(tmp_path: Path, n: int, first: str, last: str) -> Path:
    p = tmp_path / f"twin{n}.csv"
    p.write_text(f"first_name,last_name,role,staff_code\n{first},{last},teacher,TWN{n}\n", encoding="utf-8")
    return p


def _people(out: str) -> list[dict]:
    got = payload(out)
    return (got["data"] if "data" in got else got)["people"]


def _fresh_mis(info, text: str) -> None:
    """The sandbox's config with this [mis] in place of any an earlier test of the module appended."""
    cfg_text = info.config_path.read_text(encoding="utf-8").split("\n[mis]\n")[0]
    info.config_path.write_text(cfg_text.rstrip("\n") + "\n\n[mis]\n" + text, encoding="utf-8")


def _pid(username: str) -> str:
    """The person id from the username: stable across this module's tests on the shared AD sandbox, and
    short (AD's employeeID holds 16 characters at most)."""
    import zlib

    return f"U{zlib.crc32(username.encode()):010d}"


def _row(a, role: str) -> dict[str, str]:
    return {
        "person_id": _pid(a.username),
        "legal_first": a.given_name,
        "legal_last": a.surname,
        "staff_code": a.staff_code,
        "email": a.email,
        "role": role,
    }


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param("fresh_openldap", marks=pytest.mark.openldap),
        pytest.param("fresh_flat_openldap", marks=pytest.mark.openldap),
        pytest.param("ad_sandbox", marks=pytest.mark.ad),
    ],
)
def test_rename_moves_account_groups_and_records(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """[mis] rename = true: a marriage gives a new username by the intake's rules; the entry is renamed, its
    groups follow (by DN and memberUid on OpenLDAP, by the DC on AD), its records move; a new username the
    store already holds records under is refused, named, and the name change held back."""
    from aupctl import usernames
    from aupctl.directory import first_rdn, normalise_dn
    from aupctl.eligibility import is_signed
    from aupctl.records.roles import set_role

    info = request.getfixturevalue(layout)
    cfg, staff, others = _staff(info)
    teachers = [a for a, role in staff if role == "teacher" and not a.disabled and a.groups and a.email]
    bride, other = teachers[0], teachers[1]
    system = next(k for k in cfg.roles["teacher"].systems if cfg.systems[k].group)
    code, out, err = run("aup", "sign", bride.username, "--yes", config=info.config_path)
    assert code == 0, err
    code, out, err = run(
        "access", "grant", bride.username, system, "--approved-by", cfg.systems[system].approvers[0],
        "--reason", "class teacher", "--yes", config=info.config_path,
    )  # fmt: skip
    assert code == 0, err
    # An old account's records under the username the other teacher's new name would give.
    parts = usernames.NameParts(other.given_name, "Clashington")
    clash_user = usernames.cut(usernames.render(cfg.accounts.username, parts), cfg.accounts.max_length)
    st = open_state(cfg.state.path)
    set_role(st, clash_user, "teacher", "set")
    set_role(st, bride.username, "teacher", "set")  # recorded by hand: it moves with the username
    st.close()
    ignore = ", ".join(f'"{u}"' for u in others)
    _fresh_mis(info, f"rename = true\nmax_leavers = 0.5\nignore = [{ignore}]\n")
    rows = [_row(a, role) for a, role in staff]
    code, out, err = run("staff", "sync", str(_write(tmp_path / "day1.csv", rows)), "--yes", config=info.config_path)
    assert code in (0, 1), err
    d0 = Directory(cfg, info.bind_password).connect()
    before = d0.flavour.find_user(d0, bride.username)
    d0.close()
    groups_before = {normalise_dn(g) for g in before.groups}
    assert groups_before

    for r in rows:
        if r["person_id"] == _pid(bride.username):
            r["legal_last"], r["email"] = "Okonkwo", ""
        if r["person_id"] == _pid(other.username):
            r["legal_last"] = "Clashington"
    day2 = _write(tmp_path / "day2.csv", rows)
    code, out, err = run("--format", "json", "staff", "sync", str(day2), "--yes", config=info.config_path)
    assert code == 1, (out, err)  # the clash waits for a person
    people = _people(out)
    base = usernames.cut(
        usernames.render(cfg.accounts.username, usernames.NameParts(bride.given_name, "Okonkwo")),
        cfg.accounts.max_length,
    )
    renamed = [p for p in people if p["kind"] == "mover" and "username" in p["detail"]]
    assert len(renamed) == 1 and f"username {bride.username} -> {base}" in renamed[0]["detail"], people
    assert renamed[0]["detail"].startswith("name: sn -> Okonkwo"), renamed
    new_user = renamed[0]["username"]
    errors = [p for p in people if p["kind"] == "error"]
    assert len(errors) == 1 and errors[0]["username"] == other.username, people
    assert not any(p["username"] == other.username and p["kind"] == "mover" for p in people), people
    assert f"not renamed to {clash_user}" in errors[0]["detail"] and "roles 1" in errors[0]["detail"]

    cfg2 = config_mod.load(str(info.config_path))
    d = Directory(cfg2, info.bind_password).connect()
    fl = d.flavour
    assert fl.find_user(d, bride.username) is None
    acct = fl.find_user(d, new_user)
    assert acct is not None and acct.surname == "Okonkwo" and acct.display_name.endswith("Okonkwo")
    if info.flavour == "ad":
        assert first_rdn(acct.dn) == f"CN={acct.display_name}"
        upn = str(d.read(acct.dn, ["userPrincipalName"])["userPrincipalName"][0])
        assert upn.startswith(f"{new_user}@"), upn
    else:
        assert first_rdn(acct.dn) == f"uid={new_user}"
        # No group still names the old DN or the old username (slapd has no refint here).
        old_f = f"(|(member={before.dn})(uniqueMember={before.dn})(memberUid={bride.username}))"
        assert list(d.search(cfg2.directory.base_dn, old_f, ["1.1"])) == []
    assert {normalise_dn(g) for g in acct.groups} == groups_before
    # The other teacher: neither renamed nor renamed in name (held back until the clash is resolved).
    kept = fl.find_user(d, other.username)
    assert kept is not None and kept.surname == other.surname
    d.close()
    st = open_state(cfg2.state.path)
    assert {a["system"] for a in approvals.live(st, username=new_user)} == {system}
    assert approvals.live(st, username=bride.username) == []
    assert is_signed(cfg2, st, new_user) and not is_signed(cfg2, st, bride.username)
    roles = recorded_roles(st)
    assert new_user.lower() in roles and bride.username.lower() not in roles
    audit = st.query("SELECT details FROM audit WHERE action = 'rename-account' AND target = ?", (bride.username,))
    assert len(audit) == 1 and new_user in audit[0]["details"]
    st.close()
    # Again: nothing changes; the clash is still listed.
    code, out, err = run("staff", "sync", str(day2), "--yes", config=info.config_path)
    assert code == 1 and "nothing to do" in out + err and clash_user in out, (out, err)


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param("fresh_openldap", marks=pytest.mark.openldap),
        pytest.param("fresh_flat_openldap", marks=pytest.mark.openldap),
        pytest.param("ad_sandbox", marks=pytest.mark.ad),
    ],
)
def test_role_move_moves_the_ou(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A role change moves the account to the new role's OU where the roles have OUs of their own (the
    standard layout; the flat one has none: nobody moves); an account whose role is unknown (no record, no
    role group, in no role's OU) gets its groups and move too, the plan saying "role unknown before"."""
    from aupctl.directory import parent_dn

    info = request.getfixturevalue(layout)
    cfg, staff, others = _staff(info)
    mover = next(a for a, role in staff if role == "teacher" and not a.disabled and a.email)
    d = Directory(cfg, info.bind_password).connect()
    fl = d.flavour
    staff_ou = cfg.dn(cfg.directory.staff_ou)
    dn, classes, attrs = fl.new_user(
        username="rolelessr", given_name="Roleless", surname="Rowe", display_name="Roleless Rowe",
        email="", staff_code="RLR1", ou_dn=staff_ou,
    )  # fmt: skip
    d.add(dn, classes, attrs)
    d.close()
    ignore = ", ".join(f'"{u}"' for u in others)
    _fresh_mis(info, f"max_leavers = 0.5\nignore = [{ignore}]\n")
    rows = [_row(a, role) for a, role in staff]
    code, out, err = run("staff", "sync", str(_write(tmp_path / "day1.csv", rows)), "--yes", config=info.config_path)
    assert code in (0, 1), err  # (rolelessr is made locked, as new_user makes every account: never "not in MIS")
    for r in rows:
        if r["person_id"] == _pid(mover.username):
            r["role"] = "office"
    rows.append({"person_id": _pid("rolelessr"), "legal_first": "Roleless", "legal_last": "Rowe", "staff_code": "RLR1",
                 "role": "ta"})  # fmt: skip
    day2 = _write(tmp_path / "day2.csv", rows)
    st = open_state(cfg.state.path)
    moves_before = st.query("SELECT COUNT(*) AS n FROM audit WHERE action = 'move-account'")[0]["n"]
    st.close()
    code, out, err = run("--format", "json", "staff", "sync", str(day2), "--dry-run", config=info.config_path)
    people = _people(out)
    assert any(p["username"] == "rolelessr" and "role unknown before -> ta" in p["detail"] for p in people), people
    code, out, err = run("staff", "sync", str(day2), "--yes", config=info.config_path)
    assert code in (0, 1), err
    cfg2 = config_mod.load(str(info.config_path))
    d = Directory(cfg2, info.bind_password).connect()
    fl = d.flavour
    moved, roleless = fl.find_user(d, mover.username), fl.find_user(d, "rolelessr")
    with_ous = cfg2.roles["office"].ou is not None
    assert with_ous == (info.layout == "standard")
    if with_ous:
        assert same_dn(parent_dn(moved.dn), cfg2.role_ou("office")[0]), moved.dn
        assert same_dn(parent_dn(roleless.dn), cfg2.role_ou("ta")[0]), roleless.dn
    else:
        assert same_dn(moved.dn, mover.dn) and same_dn(parent_dn(roleless.dn), staff_ou)
    for acct, role in ((moved, "office"), (roleless, "ta")):
        held = {normalise(g) for g in acct.groups}
        assert all(normalise(cfg2.group_dn(g)) in held for g in cfg2.roles[role].groups), (acct.dn, acct.groups)
    if info.flavour != "ad" and with_ous:  # the moved entry's groups name its new DN, not the old one
        assert list(d.search(cfg2.directory.base_dn, f"(member={mover.dn})", ["1.1"])) == []
    d.close()
    st = open_state(cfg2.state.path)
    assert recorded_roles(st)["rolelessr"][0] == "ta"
    n = st.query("SELECT COUNT(*) AS n FROM audit WHERE action = 'move-account'")[0]["n"]
    assert n - moves_before == (2 if with_ous else 0)
    st.close()
    code, out, err = run("staff", "sync", str(day2), "--yes", config=info.config_path)
    assert "nothing to do" in out + err, (out, err)


def normalise(dn: str) -> str:
    from aupctl.directory import normalise_dn

    return normalise_dn(dn)


@pytest.mark.openldap
def test_rename_stopped_half_way_is_finished(fresh_openldap, tmp_path: Path) -> None:
    """A run killed just after renaming the entry (its groups still name the old DN and username, its records
    still under the old username, the intent left open): the next run finishes it."""
    from aupctl.directory import first_rdn
    from aupctl.records.roles import set_role
    from aupctl.staff.sync import plan_sync, read_export

    info = fresh_openldap
    cfg, staff, others = _staff(info)
    bride = next(a for a, role in staff if role == "teacher" and not a.disabled and a.groups)
    st = open_state(cfg.state.path)
    set_role(st, bride.username, "teacher", "set")
    st.close()
    ignore = ", ".join(f'"{u}"' for u in others)
    _fresh_mis(info, f"rename = true\nignore = [{ignore}]\n")
    rows = [_row(a, role) for a, role in staff]
    code, out, err = run("staff", "sync", str(_write(tmp_path / "day1.csv", rows)), "--yes", config=info.config_path)
    assert code in (0, 1), err
    for r in rows:
        if r["person_id"] == _pid(bride.username):
            r["legal_last"], r["email"] = "Halfway", ""
    day2 = _write(tmp_path / "day2.csv", rows)
    cfg2 = config_mod.load(str(info.config_path))
    d = Directory(cfg2, info.bind_password).connect()
    st = open_state(cfg2.state.path)
    before = d.flavour.find_user(d, bride.username)
    s = plan_sync(cfg2, d, st, read_export(cfg2, str(day2)), today=dt.date.today())
    ch = next(c for c in s.plan.changes if c.action == "rename-account")
    s.close()
    # The stopped run: its intent written, the entry renamed, and then nothing.
    st.journal_intent("stopped", 1, ch.action, ch.target, ch.description, ch.details, ch.check.spec(), False)
    d.rename(ch.details["from"], first_rdn(ch.details["to"]))
    new_user = ch.details["username"]
    assert list(d.search(cfg2.directory.base_dn, f"(member={before.dn})", ["1.1"]))  # stale until finished
    st.close()
    d.close()
    code, out, err = run("staff", "sync", str(day2), "--yes", config=info.config_path)
    assert code in (0, 1), (out, err)
    d = Directory(cfg2, info.bind_password).connect()
    acct = d.flavour.find_user(d, new_user)
    assert acct is not None and acct.surname == "Halfway"
    assert {normalise(g) for g in acct.groups} == {normalise(g) for g in before.groups}
    old_f = f"(|(member={before.dn})(uniqueMember={before.dn})(memberUid={bride.username}))"
    assert list(d.search(cfg2.directory.base_dn, old_f, ["1.1"])) == []
    d.close()
    st = open_state(cfg2.state.path)
    assert recorded_roles(st)[new_user.lower()][0] == "teacher" and st.open_intents() == []
    st.close()
    code, out, err = run("staff", "sync", str(day2), "--yes", config=info.config_path)
    assert "nothing to do" in out + err, (out, err)


def test_relocate_changes_every_group_schema(tmp_path: Path) -> None:
    """groups.relocate_changes: member and uniqueMember (its #'..'B UID kept) rewritten to the new DN,
    memberUid to the new username, in one modify; nothing when the group does not name the old ones."""
    import ldap3

    from aupctl.directory import OpenLDAP
    from aupctl.directory.groups import Group

    schema = OpenLDAP(_cfg(tmp_path)).groups
    old, new = "uid=jsmith,ou=Teachers,dc=x", "uid=jjones,ou=Office,dc=x"
    both = Group(
        "cn=g,dc=x",
        frozenset({"groupofnames", "posixgroup"}),
        {"member": ["UID=jsmith, ou=Teachers,dc=x", "uid=b,dc=x"], "memberUid": ["JSmith", "b"]},
    )
    got = schema.relocate_changes(both, old, new, "jsmith", "jjones")
    assert got == {
        "member": [(ldap3.MODIFY_ADD, [new]), (ldap3.MODIFY_DELETE, ["UID=jsmith, ou=Teachers,dc=x"])],
        "memberUid": [(ldap3.MODIFY_ADD, ["jjones"]), (ldap3.MODIFY_DELETE, ["JSmith"])],
    }
    unique = Group("cn=u,dc=x", frozenset({"groupofuniquenames"}), {"uniqueMember": [old + "#'0101'B"]})
    assert schema.relocate_changes(unique, old, new, "jsmith", "jjones") == {
        "uniqueMember": [(ldap3.MODIFY_ADD, [new + "#'0101'B"]), (ldap3.MODIFY_DELETE, [old + "#'0101'B"])]
    }
    # Moved only (same username): memberUid untouched; already rewritten (refint): only the old value goes.
    done = Group("cn=d,dc=x", frozenset({"groupofnames"}), {"member": [old, new]})
    assert schema.relocate_changes(done, old, new, "jsmith", "jsmith") == {"member": [(ldap3.MODIFY_DELETE, [old])]}
    other = Group("cn=o,dc=x", frozenset({"posixgroup"}), {"memberUid": ["someone"]})
    assert schema.relocate_changes(other, old, new, "jsmith", "jjones") == {}


def test_rename_keeps_the_naming_convention(tmp_path: Path) -> None:
    """The renamed entry's first RDN follows how it was named: by username (uid=, or CN=jsmith) -> the new
    username; by display name (CN=Jane Smith, as AD's are) -> the new display name, else 'Name (username)'."""
    from types import SimpleNamespace

    from aupctl.directory import Account, OpenLDAP
    from aupctl.roles import RoleInfo
    from aupctl.staff.sync import engine

    cfg = _cfg(tmp_path)
    st = open_state(str(tmp_path / "state.db"))
    directory = SimpleNamespace(flavour=OpenLDAP(cfg))
    names = engine._Usernames(cfg, directory, [])
    names.everything = True  # nothing to search: the test's usernames are all free
    r = engine.MisRow(2, "P1", "Jane", "Okonkwo", "", "", "", "teacher", "teacher", None, None, "")
    moves = {}
    for dn in ("uid=jsmith,ou=T,dc=x", "CN=jsmith,ou=T,dc=x", "CN=Jane Smith,ou=T,dc=x"):
        acct = Account(dn=dn, username="jsmith", given_name="Jane", surname="Smith")
        m, waiting, hold = engine._relocate(
            cfg, directory, st, acct, r, RoleInfo("teacher", "x"), lambda *a: None, names, True, {"sn": "Okonkwo"}
        )
        assert m is not None and not waiting and not hold
        moves[dn] = m
    assert moves["uid=jsmith,ou=T,dc=x"].choices == [("uid", "jokonkwo")]
    assert moves["CN=jsmith,ou=T,dc=x"].choices == [("CN", moves["CN=jsmith,ou=T,dc=x"].new_user)]
    named = moves["CN=Jane Smith,ou=T,dc=x"]
    assert named.choices == [("CN", "Jane Okonkwo"), ("CN", f"Jane Okonkwo ({named.new_user})")]
    assert named.carried == {"sn": "Okonkwo"} and named.mods["sn"][0][1] == ["Okonkwo"]
    st.close()
