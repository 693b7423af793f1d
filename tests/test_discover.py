"""`aupctl config discover` -> `config check` -> `doctor`, on real directories; doctor's warn state, a
missing OU, the rights table, and a config without role OUs through every read-only command."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import payload
from click.testing import CliRunner

from aupctl import sandbox as sb
from aupctl.commands import cli
from aupctl.credentials import ENV_BIND


def run(*args: str, config: Path | None = None, password: str | None = None, home: Path | None = None):
    env: dict[str, str | None] = {"AUPCTL_CONFIG": str(config) if config else None}
    if password is not None:
        env[ENV_BIND] = password
    if home is not None:
        # The default state store, audit key and checkpoints go here, not into the real home.
        env["XDG_DATA_HOME"] = str(home / "data")
        env["XDG_CONFIG_HOME"] = str(home / "config")
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def discover(info: sb.SandboxInfo, out: Path, *extra: str, password: str | None = None):
    return run(
        "config",
        "discover",
        "--url",
        info.urls[0],
        "--bind-dn",
        info.bind_dn,
        "--ca-file",
        str(info.ca_file),
        "--out",
        str(out),
        *extra,
        password=password or info.bind_password,
    )


def doctor_rows(config: Path, password: str, home: Path) -> tuple[int, list[dict]]:
    result = run("--format", "json", "doctor", config=config, password=password, home=home)
    return result.exit_code, payload(result.stdout)


def check_discovered_sandbox(info: sb.SandboxInfo, tmp_path: Path) -> dict:
    out = tmp_path / f"discovered-{info.flavour}.toml"
    result = discover(info, out)
    assert result.exit_code == 0, result.output
    assert "guessed:" in result.output and "you decide" in result.output
    data = tomllib.loads(out.read_text())
    check = run("config", "check", config=out)
    assert check.exit_code == 0, check.output
    code, rows = doctor_rows(out, info.bind_password, tmp_path)
    assert code == 0, [r for r in rows if r["status"] != "ok"]
    assert not [r for r in rows if r["status"] in ("fail", "warn")], rows
    checks = {r["check"]: r for r in rows}
    assert checks["read access"]["status"] == "ok" and "120 accounts" in checks["read access"]["detail"]
    return data


def test_discover_check_doctor_green_on_the_sandbox(sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    data = check_discovered_sandbox(sandbox, tmp_path)
    d = data["directory"]
    assert d["flavour"] == sandbox.flavour
    assert d["base_dn"].lower() == sandbox.base_dn.lower()
    assert d["staff_ou"].lower() == "ou=staff" and d["leavers_ou"].lower() == "ou=leavers"
    assert d["groups_ou"].lower() == "ou=groups"
    assert "IT Admins" in d["privileged_groups"]
    roles = data["roles"]
    # One role per OU under ou=Staff, with the groups that hold (nearly) all of its people.
    assert {r["ou"].lower() for r in roles.values()} == {
        f"ou={ou.lower()},ou=staff" for ou in ("Teachers", "Support", "Office", "SLT", "Site", "Governors")
    }
    teachers = next(r for r in roles.values() if r["ou"].lower().startswith("ou=teachers"))
    assert set(teachers["groups"]) == {"Teaching Staff", "All Staff"}
    slt = next(r for r in roles.values() if r["ou"].lower().startswith("ou=slt"))
    assert set(slt["groups"]) == {"Leadership", "Teaching Staff", "All Staff"}
    assert data["accounts"]["email"] == "{username}@hollybank.test"
    assert "systems" not in data  # suggestions only, commented
    text = (tmp_path / f"discovered-{sandbox.flavour}.toml").read_text()
    for name in ("SIMS Users", "Target Tracker Users", "RAISE Online Users", "Schoolcomms Users"):
        assert f'# group = "{name}"' in text
    assert "# The directory enforces:" in text and ("ppolicy" in text or "AD domain policy" in text)


def test_discover_never_writes_over_a_file_and_says_so(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    out = tmp_path / "aupctl.toml"
    out.write_text("# mine\n")
    result = discover(openldap_sandbox, out)
    assert result.exit_code == 2 and "already exists" in result.output
    assert out.read_text() == "# mine\n"


def test_discover_wrong_password_exits_3(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    result = discover(openldap_sandbox, tmp_path / "x.toml", password="wrong-password")
    assert result.exit_code == 3 and "refused the bind" in result.output
    assert not (tmp_path / "x.toml").exists()


def test_discover_to_stdout_reads_the_password_from_stdin(openldap_sandbox: sb.SandboxInfo) -> None:
    info = openldap_sandbox
    result = CliRunner().invoke(
        cli,
        ["config", "discover", "--url", info.urls[0], "--bind-dn", info.bind_dn, "--ca-file", str(info.ca_file)],
        env={ENV_BIND: None},
        input=info.bind_password + "\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads(result.stdout)["directory"]["flavour"] == "openldap"
    assert info.bind_password not in result.stdout + result.stderr


def test_discover_bad_base_dn_exits_2(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    result = discover(openldap_sandbox, tmp_path / "x.toml", "--base-dn", "dc=nowhere,dc=test")
    assert result.exit_code == 2 and "dc=nowhere,dc=test" in result.output


# -- a flat OpenLDAP school: one ou=People, posixAccount people, posixGroup groups, roles by group only --
PEOPLE = [
    ("jsmith", "Jane", "Smith", ["teachers", "sims"]),
    ("bjones", "Bob", "Jones", ["teachers"]),
    ("cpatel", "Chandra", "Patel", ["teachers", "sims"]),
    ("dokoro", "Dan", "Okoro", ["support"]),
    ("ewhite", "Eve", "White", ["support"]),
    ("fgreen", "Fay", "Green", ["office", "sims", "finance"]),
]


@pytest.fixture
def flat_openldap(tmp_path: Path) -> Iterator[sb.SandboxInfo]:
    info = sb.start("openldap", tmp_path / "flat", detach=False, seed=False)
    try:
        conn = info.connect(info.admin_dn, info.admin_password)
        base = info.base_dn
        assert conn.add(f"ou=People,{base}", "organizationalUnit")
        for i, (uid, first, last, _) in enumerate(PEOPLE):
            assert conn.add(
                f"uid={uid},ou=People,{base}",
                ["inetOrgPerson", "posixAccount"],
                {
                    "cn": f"{first} {last}",
                    "givenName": first,
                    "sn": last,
                    "mail": f"{uid}@flat.example",
                    "uidNumber": str(5000 + i),
                    "gidNumber": "5000",
                    "homeDirectory": f"/home/{uid}",
                },
            ), conn.result
        groups: dict[str, list[str]] = {}
        for uid, _, _, gs in PEOPLE:
            for g in gs:
                groups.setdefault(g, []).append(uid)
        for i, (g, members) in enumerate(sorted(groups.items())):
            assert conn.add(
                f"cn={g},ou=Groups,{base}", "posixGroup", {"gidNumber": str(6000 + i), "memberUid": members}
            ), conn.result
        # A name that needs escaping everywhere: quotes, a comma, a backslash, an accent.
        assert conn.add(
            f'cn=SIMS \\"Zoë\\" \\, North\\\\,ou=Groups,{base}',
            "posixGroup",
            {"gidNumber": "6100", "memberUid": ["fgreen"]},
        ), conn.result
        conn.unbind()
        yield info
    finally:
        info.stop()


def test_discover_a_flat_posix_school_then_every_read_only_command(
    flat_openldap: sb.SandboxInfo, tmp_path: Path
) -> None:
    info = flat_openldap
    out = tmp_path / "flat.toml"
    result = discover(info, out)
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    assert data["directory"]["staff_ou"] == "ou=People"
    roles = data["roles"]
    assert {tuple(r["groups"]) for r in roles.values()} == {("teachers",), ("support",), ("office",)}
    assert all("ou" not in r for r in roles.values())  # known by their groups only
    text = out.read_text()
    assert '# group = "sims"' in text and '# group = "finance"' in text
    from aupctl.config import parse
    from aupctl.directory import same_dn

    odd = next(line for line in text.splitlines() if line.startswith("# group = ") and "North" in line)
    cfg = parse(text + '\n[systems.odd]\nname = "odd"\n' + odd[2:] + "\n", "t")
    assert same_dn(cfg.group_dn(cfg.systems["odd"].group), f'cn=SIMS \\"Zoë\\" \\, North\\\\,ou=Groups,{info.base_dn}')
    assert "posixGroup" in result.output and "posixAccount" in result.output
    # Adopt the suggestions as a technician would: uncomment the SIMS system and name it in a role.
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [systems.sims]"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("# ") or "[systems." in lines[i])
    block = [line[2:].replace('"DECIDE: who approves access"', '"Head"') for line in lines[start:end]]
    out.write_text("\n".join(lines[:start] + lines[end:] + [""] + block) + "\n")
    check = run("config", "check", config=out)
    assert check.exit_code == 0, check.output
    code, rows = doctor_rows(out, info.bind_password, tmp_path)
    assert code == 0, rows
    assert {r["check"]: r["status"] for r in rows}["read access"] == "ok"
    staff = run("--format", "json", "staff", "list", config=out, password=info.bind_password, home=tmp_path)
    assert staff.exit_code == 0, staff.output
    listed = {r["username"]: r["role"] for r in payload(staff.stdout)}
    assert set(listed) == {p[0] for p in PEOPLE}
    review = run("--format", "json", "access", "review", config=out, password=info.bind_password, home=tmp_path)
    assert review.exit_code in (0, 1), review.output
    assert "internal error" not in review.output


# -- doctor: an empty staff OU is a warning; a missing OU is a config mismatch (exit 2) --
def _variant(info: sb.SandboxInfo, name: str, old: str, new: str) -> Path:
    text = info.config_path.read_text()
    assert old in text
    p = info.config_path.parent / f"variant-{name}.toml"
    p.write_text(text.replace(old, new, 1))
    return p


def test_doctor_warns_on_an_empty_staff_ou_and_exits_0(fresh_openldap: sb.SandboxInfo, tmp_path: Path) -> None:
    info = fresh_openldap
    conn = info.connect(info.admin_dn, info.admin_password)
    assert conn.add(f"ou=New Staff,{info.base_dn}", "organizationalUnit")
    conn.unbind()
    cfg = _variant(info, "empty", 'staff_ou = "ou=Staff"', 'staff_ou = "ou=New Staff"')
    result = run("doctor", config=cfg, home=tmp_path)
    assert result.exit_code == 0, result.output
    assert "warn" in result.output and "no accounts under the staff OU" in result.output
    code, rows = doctor_rows(cfg, info.bind_password, tmp_path)
    assert code == 0
    row = next(r for r in rows if r["check"] == "read access")
    assert row["status"] == "warn" and row["ok"] is True


def test_doctor_missing_ou_exits_2_naming_the_key(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    cfg = _variant(openldap_sandbox, "nope", 'leavers_ou = "ou=Leavers"', 'leavers_ou = "ou=Gone"')
    result = run("doctor", config=cfg, home=tmp_path)
    assert result.exit_code == 2, result.output
    assert "directory.leavers_ou" in result.output and "ou=Gone" in result.output


def test_doctor_missing_role_ou_exits_2(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    cfg = _variant(openldap_sandbox, "role-nope", 'ou = "ou=Site,ou=Staff"', 'ou = "ou=Caretakers,ou=Staff"')
    result = run("doctor", config=cfg, home=tmp_path)
    assert result.exit_code == 2, result.output
    assert "roles.site.ou" in result.output


def _without_role_ous(info: sb.SandboxInfo) -> Path:
    text = info.config_path.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("ou = ")]
    assert len(lines) < len(text.splitlines())
    p = info.config_path.parent / "variant-no-role-ous.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_a_config_without_role_ous_works_for_every_read_only_command(sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    cfg = _without_role_ous(sandbox)
    check = run("config", "check", config=cfg)
    assert check.exit_code == 0, check.output
    code, rows = doctor_rows(cfg, sandbox.bind_password, tmp_path)
    assert code == 0, [r for r in rows if r["status"] == "fail"]
    assert "role ous" not in {r["check"] for r in rows}
    staff = run("--format", "json", "staff", "list", config=cfg)
    assert staff.exit_code == 0, staff.output
    by_user = {r["username"]: r["role"] for r in payload(staff.stdout)}
    # Roles now come from the groups: a teacher is in Teaching Staff; a governor in Governors.
    assert by_user["wgreen"] == "ta"
    assert any(role == "governor" for role in by_user.values())
    review = run("--format", "json", "access", "review", config=cfg)
    assert review.exit_code == 1, review.output  # the planted findings, not a crash
    assert any(f["subject"] == "wgreen" for f in payload(review.stdout))


# -- the bind account's rights, per job --
def test_doctor_rights_table_on_ad_tells_an_administrator_from_a_teacher(
    ad_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    info = ad_sandbox
    code, rows = doctor_rows(info.config_path, info.bind_password, tmp_path)
    assert code == 0
    rights = [r for r in rows if r["check"] == "rights"]
    assert {r["job"] for r in rights} >= {
        "staff import",
        "access grant/revoke/review --fix",
        "leaver withdraw",
        "password reset",
    }
    member = [r for r in rights if r["right"] == "write member"]
    assert member and all(r["status"] == "ok" for r in member), member
    create = [r for r in rights if r["right"] == "create accounts"]
    assert create and all(r["status"] == "ok" for r in create), create
    # A teacher binding: reads fine, but may not create accounts or write system groups' members.
    from aupctl.sandbox import school as hb

    teacher = next(p.username for p in hb.school().people if p.ou.lower().startswith("ou=teachers") and not p.disabled)
    text = info.config_path.read_text()
    cfg = info.config_path.parent / "variant-teacher.toml"
    cfg.write_text(
        text.replace(f'bind_dn = "{info.bind_dn}"', f'bind_dn = "{info.bind_name(teacher)}"').replace(
            'bind_password_file = "bind.pw"\n', ""
        )
    )
    code, rows = doctor_rows(cfg, hb.password_for(teacher, "ad"), tmp_path)
    assert code == 0, [r for r in rows if r["status"] == "fail"]
    rights = [r for r in rows if r["check"] == "rights"]
    assert [r for r in rights if r["right"] == "write member" and r["status"] == "warn"]
    assert [r for r in rights if r["right"] == "create accounts" and r["status"] == "warn"]
    assert next(r for r in rows if r["check"] == "bind rights")["status"] == "warn"


def test_doctor_rights_on_openldap_say_how_to_learn_them(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    result = run("doctor", config=openldap_sandbox.config_path, home=tmp_path)
    assert result.exit_code == 0
    assert "slapacl" in result.output and "member/write" in result.output
    code, rows = doctor_rows(openldap_sandbox.config_path, openldap_sandbox.bind_password, tmp_path)
    assert all(r["status"] == "info" for r in rows if r["check"] == "rights")


def test_staff_import_puts_a_role_without_ou_in_staff_ou(fresh_openldap: sb.SandboxInfo, tmp_path: Path) -> None:
    info = fresh_openldap
    cfg = _without_role_ous(info)
    csv_file = tmp_path / "one.csv"
    csv_file.write_text(
        "first_name,last_name,preferred_name,role,staff_code,email,department,start_date,systems,approved_by\n"
        "Ngozi,Adebayo-Quinn,,teacher,HB0999,,Year 2,2027-09-01,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "pw.csv"
    result = run("staff", "import", str(csv_file), "--credentials-out", str(out), "--yes", config=cfg, home=tmp_path)
    assert result.exit_code == 0, result.output
    conn = info.connect()
    conn.search(info.base_dn, "(uid=nadebayoquinn)", attributes=["uid"])
    assert [e.entry_dn for e in conn.entries] == [f"uid=nadebayoquinn,ou=Staff,{info.base_dn}"]
    conn.search(f"cn=Teaching Staff,ou=Groups,{info.base_dn}", "(objectClass=*)", attributes=["member"])
    assert f"uid=nadebayoquinn,ou=Staff,{info.base_dn}" in conn.entries[0].member.values
    conn.unbind()
    show = run("--format", "json", "staff", "show", "nadebayoquinn", config=cfg, home=tmp_path)
    assert payload(show.stdout)["role"] == "teacher"


def test_a_garbage_ca_file_is_named_not_reported_as_unreachable(
    openldap_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    garbage = openldap_sandbox.config_path.parent / "garbage-ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    cfg = _variant(openldap_sandbox, "garbage-ca", 'ca_file = "ca.pem"', 'ca_file = "garbage-ca.pem"')
    result = run("staff", "list", config=cfg)
    assert result.exit_code == 2, result.output
    assert "directory.ca_file" in result.output and "not a PEM certificate" in result.output
    assert "cannot reach" not in result.output


# -- staff nested an OU per site, then per department; groupOfUniqueNames --
NESTED = {
    "ou=Teachers,ou=North,ou=Staff": ["ateach", "bteach", "cteach"],
    "ou=Teachers,ou=South,ou=Staff": ["dteach", "eteach"],
    "ou=Office,ou=North,ou=Staff": ["foffice"],
    "ou=Office,ou=South,ou=Staff": ["goffice"],
}


@pytest.fixture
def nested_openldap(tmp_path: Path) -> Iterator[sb.SandboxInfo]:
    info = sb.start("openldap", tmp_path / "nested", detach=False, seed=False)
    try:
        conn = info.connect(info.admin_dn, info.admin_password)
        base = info.base_dn
        for ou in ("ou=North,ou=Staff", "ou=South,ou=Staff", *NESTED):
            assert conn.add(f"{ou},{base}", "organizationalUnit") or conn.result["description"] == "entryAlreadyExists"
        dn: dict[str, str] = {}
        for ou, uids in NESTED.items():
            for uid in uids:
                dn[uid] = f"uid={uid},{ou},{base}"
                assert conn.add(dn[uid], "inetOrgPerson", {"cn": uid, "sn": uid, "mail": f"{uid}@nested.example"})
        teachers = [d for u, d in dn.items() if "teach" in u]
        office = [d for u, d in dn.items() if "office" in u]
        for cn, members in (
            ("Teaching Staff", teachers),
            ("Office Staff", office),
            ("All Staff", list(dn.values())),
            ("Finance", office[:1]),
        ):
            assert conn.add(f"cn={cn},ou=Groups,{base}", "groupOfUniqueNames", {"uniqueMember": members}), conn.result
        conn.unbind()
        yield info
    finally:
        info.stop()


def test_discover_staff_nested_per_site_gets_roles_from_groups(nested_openldap: sb.SandboxInfo, tmp_path: Path) -> None:
    info = nested_openldap
    out = tmp_path / "nested.toml"
    result = discover(info, out)
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    assert data["directory"]["staff_ou"] == "ou=Staff"
    assert {k: v["groups"] for k, v in data["roles"].items()} == {
        "office_staff": ["Office Staff"],
        "teaching_staff": ["Teaching Staff"],
    }
    assert "All Staff" in result.output and "groupOfUniqueNames" in result.output
    assert '# group = "Finance"' in out.read_text()
    assert run("config", "check", config=out).exit_code == 0
    code, rows = doctor_rows(out, info.bind_password, tmp_path)
    assert code == 0 and not [r for r in rows if r["status"] in ("warn", "fail")], rows
    staff = run("--format", "json", "staff", "list", config=out, password=info.bind_password, home=tmp_path)
    roles = {r["username"]: r["role"] for r in payload(staff.stdout)}
    assert roles["ateach"] == "teaching_staff" and roles["goffice"] == "office_staff"


def test_doctor_state_store_line_is_log_verify_with_the_key(tmp_path: Path) -> None:
    """doctor's state checks run the whole keyed `log verify` and show the audit key's fingerprint; a dropped
    trigger (the sqlite3 shell's first step to rewrite history) is a FAIL, exit 2."""
    import sqlite3

    from aupctl import auditlog
    from aupctl.config import load
    from aupctl.state import State

    cfg_path = tmp_path / "school.toml"
    cfg_path.write_text(
        '[school]\nname = "T"\naup_version = "1"\n[directory]\nflavour = "openldap"\nurl = "ldaps://127.0.0.1:1"\n'
        'bind_dn = "cn=a,dc=t,dc=test"\nbase_dn = "dc=t,dc=test"\nstaff_ou = "ou=Staff"\nleavers_ou = "ou=L"\n'
        'groups_ou = "ou=G"\ntimeout = 1\n[state]\npath = "state.db"\naudit_key_file = "audit.key"\n'
        'checkpoints = "checkpoints.jsonl"\n'
    )
    st = auditlog.attach(State(str(tmp_path / "state.db")), load(str(cfg_path)))
    st.audit("test", "someone", {"n": 1})
    st.close()
    code, rows = doctor_rows(cfg_path, "any-password", tmp_path)
    checks = {r["check"]: r for r in rows}
    assert checks["state store"]["status"] == "ok" and "intact: 1 entries" in checks["state store"]["detail"]
    assert checks["audit key"]["status"] == "ok" and "fingerprint" in checks["audit key"]["detail"]
    assert code == 3  # nothing listens on port 1: the directory is unreachable, the store is fine
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript("DROP TRIGGER IF EXISTS audit_no_update;")
    db.close()
    code, rows = doctor_rows(cfg_path, "any-password", tmp_path)
    state = next(r for r in rows if r["check"] == "state store")
    assert state["status"] == "fail" and "BROKEN" in state["detail"] and "trigger" in state["detail"]
    assert code == 3  # reach/bind outranks; without a directory problem it would be 2
    assert doctor_exit_without_reach(rows) == 2


def doctor_exit_without_reach(rows: list[dict]) -> int:
    from aupctl import doctor

    return doctor.exit_code(
        [
            doctor.Check(r["check"], r["ok"], r["detail"], r["status"])
            for r in rows
            if r["check"] not in ("reach", "bind")
        ]
    )


def test_discover_over_ldap_uses_starttls_and_writes_it(openldap_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    info = openldap_sandbox
    plain = next(u for u in info.urls if u.startswith("ldap://"))
    out = tmp_path / "starttls.toml"
    result = run(
        "config", "discover", "--url", plain, "--bind-dn", info.bind_dn, "--ca-file", str(info.ca_file),
        "--out", str(out), password=info.bind_password,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    assert data["directory"]["url"] == plain and data["directory"]["start_tls"] is True
    code, rows = doctor_rows(out, info.bind_password, tmp_path)
    assert code == 0 and next(r for r in rows if r["check"] == "tls")["detail"].startswith("TLS verified")
