"""`aupctl staff import` on both flavours, against the sandbox school: the realistic 60-row intake
(accented names, clashes, existing people, waiting grants), re-run idempotence, bad files changing
nothing, hostile names, the credentials file, and passwords that pass the password check."""

from __future__ import annotations

import csv
import json
import ssl
import stat
from pathlib import Path

import ldap3
from cli_helpers import payload
from click.testing import CliRunner

from aupctl.directory import same_dn
from aupctl.records import approvals

DATA = Path(__file__).parent / "data" / "intake"


def run(*args: str, config=None) -> tuple[int, str, str]:
    """The CLI under CliRunner (AupctlError -> message on stderr and its exit code)."""
    from aupctl.commands import cli

    env = {"AUPCTL_CONFIG": str(config)} if config else {}
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def snapshot(cfg, d) -> tuple[dict[str, tuple], dict[str, set[str]]]:
    """Every person (their names, mail, code, flags) and every group's members, to prove what did not change."""
    fl = d.flavour
    people = {
        a.dn.lower(): (a.given_name, a.surname, a.display_name, a.email, a.staff_code, a.disabled, a.description)
        for a in fl.iter_accounts(d, base=cfg.directory.base_dn, with_groups=False)
    }
    groups = {g: {m.lower() for m in ms} for g, ms in fl.all_groups(d).items()}
    return people, groups


def credentials(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["username"]: r for r in csv.DictReader(fh)}


def password_works(info, cfg, acct, password: str) -> bool:
    """A bind with the password: OpenLDAP lets it in; AD says 'must change first' (data 773), which it
    only says to the right password."""
    url = cfg.directory.url[0]
    server = ldap3.Server(url, tls=ldap3.Tls(ca_certs_file=cfg.directory.ca_file, validate=ssl.CERT_REQUIRED))
    user = acct.dn if cfg.directory.flavour == "openldap" else f"{acct.username}@{_realm(cfg)}"
    conn = ldap3.Connection(server, user, password, raise_exceptions=False)
    conn.open()
    ok = conn.bind()
    message = (conn.result or {}).get("message", "")
    conn.unbind()
    return ok or "data 773" in message


def _realm(cfg) -> str:
    return ".".join(p.split("=", 1)[1] for p in cfg.directory.base_dn.split(","))


def test_help() -> None:
    code, out, _ = run("staff", "import", "--help")
    assert code == 0
    for text in ("--credentials-out", "--dry-run", "--yes", "first_name, last_name, role", "approved_by"):
        assert text in out


def test_bad_file_changes_nothing(env, tmp_path) -> None:
    info, cfg, d, st = env
    before = snapshot(cfg, d)
    audits = len(list(st.audit_entries()))
    creds = tmp_path / "creds.csv"
    code, out, err = run(
        "staff", "import", str(DATA / "bad.csv"), "--yes", "--credentials-out", str(creds), config=info.config_path
    )
    assert code == 2
    assert "14 bad row(s); nothing was changed" in err
    assert "line 3: role: unknown role 'dinner lady'" in err
    assert "line 12: username:" in err and "needs the username column" in err
    assert "Traceback" not in err
    assert snapshot(cfg, d) == before
    assert len(list(st.audit_entries())) == audits
    assert not creds.exists()


def test_refuses_to_create_without_credentials_out(env) -> None:
    info, cfg, d, st = env
    before = snapshot(cfg, d)
    code, out, err = run("staff", "import", str(DATA / "excel-cp1252.csv"), "--yes", config=info.config_path)
    assert code == 2
    assert "passwords are only ever written to a file: nothing was changed" in err
    assert "--credentials-out" in err
    assert snapshot(cfg, d) == before
    assert not st.query("SELECT * FROM provisioned WHERE staff_code LIKE 'E70%'")


def test_dry_run_shows_the_plan_and_changes_nothing(env) -> None:
    info, cfg, d, st = env
    before = snapshot(cfg, d)
    code, out, err = run(
        "--format", "json", "staff", "import", str(DATA / "realistic.csv"), "--dry-run", config=info.config_path
    )
    assert code == 0, err
    doc = payload(out)
    assert doc["applied"] is False and doc["credentials_file"] is None
    assert doc["summary"]["create"] == 58 and doc["summary"]["update"] == 1 and doc["summary"]["unchanged"] == 1
    rows = {r["line"]: r for r in doc["people"]}
    assert rows[2]["username"] == "zwhitfield" and rows[2]["waiting"] == ["sims", "target_tracker"]
    assert rows[14]["action"] == "update" and rows[14]["username"] == "jfernandez"  # already there: José
    assert list(rows[14]["updates"].values()) == ["Modern Languages"]
    assert rows[15]["action"] == "unchanged" and rows[15]["username"] == "jsmith"  # James Smith, HB0010
    assert set(rows[2]) >= {
        "action",
        "username",
        "name",
        "role",
        "dn",
        "groups",
        "waiting",
        "granted",
        "changes",
        "note",
    }
    assert "dry run: nothing was changed" in err
    assert "needs --credentials-out" in err
    assert snapshot(cfg, d) == before


def test_realistic_intake_then_rerun_does_nothing(env, tmp_path) -> None:
    from aupctl.passwords.denylist import check_candidate

    info, cfg, d, st = env
    fl = d.flavour
    before_people, before_groups = snapshot(cfg, d)
    creds_path = tmp_path / "september.csv"
    code, out, err = run(
        "staff",
        "import",
        str(DATA / "realistic.csv"),
        "--yes",
        "--credentials-out",
        str(creds_path),
        config=info.config_path,
    )
    assert code == 0, err
    assert "created" in out and "58" in out
    # the credentials file: 0600, one line per new account, and its passwords nowhere else
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    creds = credentials(creds_path)
    assert len(creds) == 58
    journal = " ".join(str(tuple(r)) for r in st.query("SELECT * FROM journal"))
    audit = " ".join(json.dumps(e.details) for e in st.audit_entries())
    for row in creds.values():
        pw = row["password"]
        assert pw not in out and pw not in err and pw not in journal and pw not in audit
    # usernames: folded, clashes with the directory (jsmith, jsmith2 are there) and within the file
    by_code = {}
    for line in csv.DictReader((DATA / "realistic.csv").open(encoding="utf-8")):
        by_code[line["staff_code"]] = line
    made = {row["staff_code"]: row["username"] for row in creds.values()}
    assert made["T6001"] == "zwhitfield"
    assert made["T6002"] == "lwisniewski"
    assert made["T6003"] == "jsmith3" and made["T6004"] == "jsmith4"
    assert made["T6008"] == "istrasse" and made["T6009"] == "iyildiz" and made["T6007"] == "aodegard"
    assert made["T6011"] == "divanov"
    pryces = sorted(u for u in made.values() if u.startswith("apryce"))
    assert pryces == ["apryce", "apryce2"]
    # every new account: once, enabled, flagged to change, in the role's OU and groups, with its attributes
    for code_, username in made.items():
        found = list(d.search(cfg.directory.base_dn, f"(&{fl.person_filter}(employeeNumber={code_}))", ["1.1"]))
        assert len(found) == 1, code_
        acct = fl.find_user(d, username)
        line = by_code[code_]
        role = cfg.roles[line["role"]]
        assert acct.given_name == line["first_name"] and acct.surname == line["last_name"]
        assert not acct.disabled and acct.must_change, username
        assert acct.ou.lower() == cfg.dn(role.ou).lower()
        for g in role.groups:
            assert any(same_dn(have, cfg.group_dn(g)) for have in acct.groups), (username, g)
        assert acct.email == (line["email"] or f"{username}@hollybank.test")
        if cfg.directory.flavour == "ad":
            assert str(acct.raw.get("userPrincipalName", [""])[0]).lower().startswith(username + "@")
        assert not check_candidate(cfg, creds[username]["password"], person=acct), username
    zoe = fl.find_user(d, "zwhitfield")
    assert password_works(info, cfg, zoe, creds["zwhitfield"]["password"])
    assert not password_works(info, cfg, zoe, "Wrong-Horse-Battery-11")
    # existing people: updated where the file differs, never duplicated
    jose = list(d.search(cfg.directory.base_dn, "(employeeNumber=HB0009)", [fl.department_attr]))
    assert len(jose) == 1 and "Modern Languages" in [str(v) for v in jose[0][1][fl.department_attr]]
    assert len(list(d.search(cfg.directory.base_dn, "(employeeNumber=HB0010)", ["1.1"]))) == 1
    # the role is recorded, the provisioned record is complete
    rec = st.query("SELECT role, source FROM roles WHERE username = 'zwhitfield'")
    assert (rec[0]["role"], rec[0]["source"]) == ("teacher", "created")
    assert not st.query("SELECT * FROM provisioned WHERE status != 'done'")
    # waiting grants: listed by `access list`, granted by `aup sign`
    waiting = {r["system"] for r in approvals.live(st, username="zwhitfield", status=("waiting",))}
    assert waiting == {"sims", "target_tracker"}
    code, out, err = run("access", "list", config=info.config_path)
    assert code == 0 and "zwhitfield" in out and "waiting" in out
    code, out, err = run("aup", "sign", "zwhitfield", "--yes", config=info.config_path)
    assert code == 0, err
    zoe = fl.find_user(d, "zwhitfield")
    assert any(same_dn(g, cfg.group_dn("SIMS Users")) for g in zoe.groups)
    # nobody else was touched: the people who were there are as they were (José's department aside)
    after_people, after_groups = snapshot(cfg, d)
    for dn, before in before_people.items():
        assert after_people[dn] == before, dn
    # re-running the same file: nothing to do, no new file needed
    code, out, err = run("staff", "import", str(DATA / "realistic.csv"), "--yes", config=info.config_path)
    assert code == 0, err
    assert "nothing to do" in err
    # a re-run with a file: still nothing; the file is not even made
    again = tmp_path / "again.csv"
    code, out, err = run(
        "staff",
        "import",
        str(DATA / "realistic.csv"),
        "--yes",
        "--credentials-out",
        str(again),
        config=info.config_path,
    )
    assert code == 0 and not again.exists()


def test_existing_credentials_file_is_never_overwritten(env, tmp_path) -> None:
    info, cfg, d, st = env
    creds = tmp_path / "old.csv"
    creds.write_text("keep me\n", encoding="utf-8")
    before = snapshot(cfg, d)
    code, out, err = run(
        "staff", "import", str(DATA / "bom.csv"), "--yes", "--credentials-out", str(creds), config=info.config_path
    )
    assert code == 2
    assert "already exists and is never overwritten" in err
    assert creds.read_text(encoding="utf-8") == "keep me\n"
    assert snapshot(cfg, d) == before


def test_hostile_names_are_escaped_and_touch_nothing_else(env, tmp_path) -> None:
    info, cfg, d, st = env
    fl = d.flavour
    before_people, before_groups = snapshot(cfg, d)
    creds_path = tmp_path / "hostile-creds.csv"
    code, out, err = run(
        "staff",
        "import",
        str(DATA / "hostile.csv"),
        "--yes",
        "--credentials-out",
        str(creds_path),
        config=info.config_path,
    )
    assert code == 0, err
    creds = credentials(creds_path)
    assert set(creds) == {"aab", "sbright", "pclose", "bslash", "htag", "sedges", "joneill", "rplussemicolon", "nuid"}
    expected = {
        "aab": ("Anna", "a,b"),
        "sbright": ("Star", "*Bright*"),
        "pclose": ("(Paren", "Close)"),
        "bslash": ("Back\\slash", "Slash\\"),
        "htag": ("#Hash", "Tag"),
        "sedges": ("Spacey", "Edges"),
        "joneill": ('Jack "JJ"', "O'Neill"),
        "rplussemicolon": ("Ré=né", "Plus+Semi;colon<>"),
        "nuid": ("Null", "(&(uid=*))"),
    }
    new_dns = set()
    for username, (given, surname) in expected.items():
        acct = fl.find_user(d, username)
        assert acct is not None, username
        assert (acct.given_name, acct.surname) == (given, surname)
        assert not acct.disabled
        assert d.read(acct.dn, ["1.1"]) is not None  # the DN as stored reads back (escaped correctly)
        new_dns.add(acct.dn.lower())
    after_people, after_groups = snapshot(cfg, d)
    assert set(after_people) - set(before_people) == new_dns
    for dn, before in before_people.items():
        assert after_people[dn] == before, dn
    for group, members in before_groups.items():
        added = after_groups[group] - members
        assert members <= after_groups[group]
        assert {m for m in added} <= new_dns, group


def test_existing_people_systems_granted_when_signed_else_waiting(env, tmp_path) -> None:
    info, cfg, d, st = env
    fl = d.flavour
    f = tmp_path / "existing.csv"
    f.write_text(
        "first_name,last_name,role,staff_code,systems,approved_by\n"
        "Gemma,Smith-Jones,teacher,HB0008,raise,Mrs A Patel\n"  # signs the AUP first: granted now
        "Oliver,Shaw,teacher,HB0013,raise,Mrs A Patel\n",  # has not signed: waits
        encoding="utf-8",
    )
    code, out, err = run("aup", "sign", "gsmithjones", "--yes", config=info.config_path)
    assert code == 0, err
    code, out, err = run("--format", "json", "staff", "import", str(f), "--yes", config=info.config_path)
    assert code == 0, err
    rows = {r["username"]: r for r in payload(out)["people"]}
    assert rows["gsmithjones"]["granted"] == ["raise"] and rows["gsmithjones"]["waiting"] == []
    assert rows["oshaw"]["waiting"] == ["raise"] and rows["oshaw"]["granted"] == []
    raise_group = cfg.group_dn("RAISE Online Users")
    assert any(same_dn(g, raise_group) for g in fl.find_user(d, "gsmithjones").groups)
    assert not any(same_dn(g, raise_group) for g in fl.find_user(d, "oshaw").groups)
    assert [r["approver"] for r in approvals.live(st, username="gsmithjones", system="raise")] == [
        "Mrs A Patel (Headteacher)"
    ]
    assert [r["status"] for r in approvals.live(st, username="oshaw", system="raise")] == ["waiting"]
    code, out, err = run("staff", "import", str(f), "--yes", config=info.config_path)
    assert code == 0 and "nothing to do" in err
