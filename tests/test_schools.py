"""Issue 17: a trust of many schools in one config ([schools.KEY] over trust-wide defaults, --school,
a store per school, --all-schools on the read-only jobs, technicians per school; docs/trust.md).

The trust: three schools in one real slapd (an OU per school: Oakfield, Ashgrove, Elmwood, each with its
own Staff/Leavers/Groups OUs, people and a SIMS group) and Hollybank, the seeded sandbox school, in a
second slapd of its own. The trust-wide defaults are the sandbox's config."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import run_main

from aupctl import sandbox as sb
from aupctl.config import parse
from aupctl.errors import ConfigError
from aupctl.state import State, os_account

BASE = "dc=hollybank,dc=test"
OU_SCHOOLS = {  # key -> (OU, people: username, given, surname)
    "oakfield": ("Oakfield", [("ooakley", "Olive", "Oakley"), ("oorme", "Owen", "Orme")]),
    "ashgrove": ("Ashgrove", [("aashby", "Alma", "Ashby"), ("aaldous", "Arun", "Aldous")]),
    "elmwood": ("Elmwood", [("eellis", "Edie", "Ellis"), ("eelgar", "Ezra", "Elgar")]),
}


def _seed_school_ou(conn, ou: str, people: list[tuple[str, str, str]]) -> None:
    """An OU per school, laid out like the sandbox's root (so the trust-wide roles and systems fit), with
    two teachers and a SIMS group holding the first (a member with no approval: a finding)."""
    base = f"ou={ou},{BASE}"

    def add(dn: str, classes: list[str], attrs: dict) -> None:
        assert conn.add(dn, classes, attrs), (dn, conn.result)

    add(base, ["organizationalUnit"], {"ou": ou})
    for child in ("Staff", "Leavers", "Groups"):
        add(f"ou={child},{base}", ["organizationalUnit"], {"ou": child})
    add(f"ou=Teachers,ou=Staff,{base}", ["organizationalUnit"], {"ou": "Teachers"})
    dns = []
    for username, given, surname in people:
        dn = f"uid={username},ou=Teachers,ou=Staff,{base}"
        add(dn, ["inetOrgPerson"], {"uid": username, "cn": f"{given} {surname}", "sn": surname, "givenName": given})
        dns.append(dn)
    add(f"cn=SIMS Users,ou=Groups,{base}", ["groupOfNames"], {"cn": "SIMS Users", "member": dns[:1]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trust_toml(shared: sb.SandboxInfo, own: sb.SandboxInfo, *, extra: str = "") -> str:
    """The sandbox's config as the trust-wide defaults, and the four schools over it."""
    me = os_account()
    text = shared.config_path.read_text()
    text += f"""
[schools.oakfield]
name = "Oakfield Primary"
technicians = ["{me}"]
[schools.oakfield.directory]
base_dn = "ou=Oakfield,{BASE}"
bind_dn = "{shared.admin_dn}"
bind_password_file = "trust-admin.pw"

[schools.ashgrove]
name = "Ashgrove Academy"
technicians = ["someone-else", "group:Ashgrove ICT"]
[schools.ashgrove.directory]
base_dn = "ou=Ashgrove,{BASE}"
bind_dn = "{shared.admin_dn}"
bind_password_file = "trust-admin.pw"

[schools.elmwood]
name = "Elmwood Juniors"
aup_version = "2025-09"
[schools.elmwood.directory]
base_dn = "ou=Elmwood,{BASE}"
bind_dn = "{shared.admin_dn}"
bind_password_file = "trust-admin.pw"
[schools.elmwood.systems.sims]
approvers = ["Ms E Ward (Head of School)"]

[schools.hollybank]
[schools.hollybank.directory]
url = "{own.urls[0]}"
ca_file = "{own.ca_file}"
bind_password_file = "{own.dir / "bind.pw"}"
"""
    return text + extra


@pytest.fixture(scope="module")
def trust(openldap_sandbox: sb.SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    own = sb.start("openldap", tmp_path_factory.mktemp("own-directory"), detach=False)
    try:
        conn = openldap_sandbox.connect(openldap_sandbox.admin_dn, openldap_sandbox.admin_password)
        for ou, people in OU_SCHOOLS.values():
            _seed_school_ou(conn, ou, people)
        conn.unbind()
        # the trust's OUs are written by the directory's admin (the sandbox's service account may write
        # only Hollybank's own OUs)
        pw = openldap_sandbox.dir / "trust-admin.pw"
        pw.write_text(openldap_sandbox.admin_password + "\n")
        pw.chmod(0o600)
        path = openldap_sandbox.dir / "trust.toml"
        path.write_text(trust_toml(openldap_sandbox, own))
        yield path
    finally:
        own.stop()


@pytest.fixture(autouse=True)
def _no_school_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUPCTL_SCHOOL", raising=False)
    monkeypatch.delenv("AUPCTL_BIND_PASSWORD", raising=False)


# -- config: resolution and messages (no server) --
MINIMAL = """
[school]
name = "Trust"
aup_version = "2024-09"
[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:6360"
bind_dn = "cn=admin,dc=t,dc=test"
base_dn = "dc=t,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[state]
path = "/srv/aupctl/state.db"
[systems.sims]
name = "SIMS"
group = "SIMS Users"
approvers = ["Head"]
"""


def test_each_school_is_an_ordinary_config_over_the_defaults() -> None:
    text = MINIMAL + (
        '[schools.a]\nname = "A School"\ntechnicians = ["alice"]\n[schools.a.directory]\nbase_dn = "ou=A,dc=t,dc=test"\n'
        '[schools.a.systems.sims]\napprovers = ["Head of A"]\n'
        '[schools.b]\nstate_path = "/srv/b.db"\naup_version = "2025-09"\n'
    )
    a = parse(text, "trust.toml", school="a")
    assert (a.school.name, a.school_key, a.technicians) == ("A School", "a", ["alice"])
    assert a.directory.base_dn == "ou=A,dc=t,dc=test" and a.directory.url == ["ldaps://127.0.0.1:6360"]
    assert a.dn("ou=Staff") == "ou=Staff,ou=A,dc=t,dc=test"
    assert a.systems["sims"].approvers == ["Head of A"] and a.systems["sims"].group == "SIMS Users"
    assert a.state.path == "/srv/aupctl/state-a.db"  # the trust-wide path with -KEY before its suffix
    b = parse(text, "trust.toml", school="b")
    assert (b.school.name, b.school.aup_version, b.state.path) == ("b", "2025-09", "/srv/b.db")
    assert b.directory.base_dn == "dc=t,dc=test" and b.technicians == [] and b.school_keys == ["a", "b"]
    one = parse(MINIMAL, "one.toml")  # no [schools]: one school, exactly as before
    assert one.school_key is None and one.state.path == "/srv/aupctl/state.db"


@pytest.mark.parametrize(
    ("extra", "school", "needle"),
    [
        ('[schools.a.directory]\nbase_dn = "not a dn"\n', "a", "schools.a.directory.base_dn is not a DN"),
        ("[schools.a.directory]\ntimeout = 0\n", "a", "schools.a.directory.timeout must be more than 0"),
        ('[schools.a.directory]\nbase_nd = "x"\n', "a", "unknown key 'schools.a.directory.base_nd'"),
        ('[schools.a]\nnmae = "x"\n', "a", "unknown key 'schools.a.nmae'"),
        ("[schools.a]\ntechnicians = 3\n", "a", "schools.a.technicians must be a list of strings"),
        ('[schools.a.roles.teacher]\nsystems = ["nope"]\n', "a", "schools.a.roles.teacher.systems names 'nope'"),
        ('[schools.StMarys]\nname = "x"\n', None, "a school key is lower-case"),
        (
            '[schools.a]\nstate_path = "x.db"\n[schools.b]\nstate_path = "x.db"\n',
            "a",
            "schools.b.state_path is the same file as schools.a.state_path",
        ),
    ],
)
def test_bad_school_keys_are_named_by_their_path(extra: str, school: str | None, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(MINIMAL + extra, "trust.toml", school=school)
    assert needle in str(exc.value) and "trust.toml" in str(exc.value)


def test_a_trust_wide_mistake_says_for_which_school() -> None:
    text = (
        MINIMAL.replace('base_dn = "dc=t,dc=test"\n', "")
        + '[schools.a.directory]\nbase_dn = "ou=A,dc=t"\n[schools.b]\n'
    )
    parse(text, "t.toml", school="a")
    with pytest.raises(ConfigError, match=r"missing required key 'directory.base_dn' \(trust-wide, for school b\)"):
        parse(text, "t.toml", school="b")


# -- --school: required with several, unknown key, AUPCTL_SCHOOL --
def test_school_is_required_when_there_are_several(trust: Path) -> None:
    code, _, err = run_main("access", "list", config=trust)
    assert code == 2, err
    assert "4 schools (oakfield, ashgrove, elmwood, hollybank)" in err and "--school KEY" in err
    code, _, err = run_main("--school", "stmarys", "access", "list", config=trust)
    assert code == 2 and "unknown school 'stmarys' (known: oakfield, ashgrove, elmwood, hollybank)" in err
    code, out, err = run_main("access", "systems", "--school", "elmwood", "--format", "json", config=trust)
    assert code == 0, err
    sims = next(r for r in json.loads(out)["data"] if r["system"] == "sims")
    assert sims["approvers"] == ["Ms E Ward (Head of School)"] and sims["members"] == 1


def test_aupctl_school_from_the_environment(trust: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUPCTL_SCHOOL", "hollybank")
    code, out, err = run_main("--format", "json", "staff", "list", config=trust)
    assert code == 0, err
    names = {r["username"] for r in json.loads(out)["data"]}
    assert "ooakley" not in names and len(names) > 20  # the seeded school in its own directory
    monkeypatch.setenv("AUPCTL_SCHOOL", "oakfield")
    code, out, err = run_main("--format", "json", "staff", "list", config=trust)
    assert code == 0, err
    assert {r["username"] for r in json.loads(out)["data"]} == {"ooakley", "oorme"}
    code, out, err = run_main("--school", "elmwood", "--format", "json", "staff", "list", config=trust)
    assert {r["username"] for r in json.loads(out)["data"]} == {"eellis", "eelgar"}  # --school wins


def test_config_check_checks_every_school(trust: Path) -> None:
    code, _, err = run_main("config", "check", config=trust)
    assert code == 0, err
    for key in ("oakfield", "ashgrove", "elmwood", "hollybank"):
        assert f"school {key}: OK" in err
    bad = trust.parent / "trust-typo.toml"
    bad.write_text(trust.read_text() + '\n[schools.elmwood.laptops]\nparallel = "many"\n')
    code, _, err = run_main("config", "check", config=bad)
    assert code == 2 and "schools.elmwood.laptops.parallel must be a whole number" in err
    code, _, err = run_main("--school", "oakfield", "config", "check", config=bad)
    assert code == 0 and "school oakfield: OK" in err and "elmwood" not in err


# -- records: a store per school, the school in every audit entry --
def test_a_grant_in_one_school_is_not_seen_in_another(trust: Path) -> None:
    code, _, err = run_main("--school", "oakfield", "aup", "sign", "oorme", "--yes", config=trust)
    assert code == 0, err
    args = ("access", "grant", "oorme", "sims", "--approved-by", "Mrs A Patel (Headteacher)", "--yes")
    code, _, err = run_main("--school", "oakfield", *args, config=trust)
    assert code == 0, err
    code, _, err = run_main("--school", "elmwood", *args, config=trust)
    assert code == 2 and "not an approver for SIMS" in err and "Ms E Ward" in err  # Elmwood's own approvers
    elm = ("access", "grant", "oorme", "sims", "--approved-by", "Ms E Ward (Head of School)", "--yes")
    code, _, err = run_main("--school", "elmwood", *elm, config=trust)
    assert code == 2 and "oorme" in err  # not a person of Elmwood's OU
    listed = {}
    for key in ("oakfield", "elmwood"):
        code, out, err = run_main("--school", key, "--format", "json", "access", "list", config=trust)
        assert code == 0, err
        listed[key] = {(r["username"], r["system"]) for r in json.loads(out)["data"]}
    assert ("oorme", "sims") in listed["oakfield"] and listed["elmwood"] == set()
    oak = trust.parent / "state-oakfield.db"
    assert oak.exists() and (trust.parent / "state-elmwood.db").exists()
    st = State(oak)
    try:
        grant = [e for e in st.audit_entries() if e.target == "oorme"]
        assert grant and all(e.details["school"] == "oakfield" for e in grant)
        assert grant[0].actor.startswith(os_account())  # who ran it
        assert st.verify_audit()[1] is None
    finally:
        st.close()
    code, out, _ = run_main("--school", "oakfield", "log", "verify", config=trust)
    assert code == 0


# -- technicians per school --
def test_other_technicians_are_refused_and_read_only_jobs_are_open(trust: Path) -> None:
    grant = ("access", "grant", "aaldous", "sims", "--approved-by", "Mrs A Patel (Headteacher)", "--yes")
    code, _, err = run_main("--school", "ashgrove", *grant, config=trust)
    assert code == 2 and "not one of its technicians" in err, err  # before the plan is built (AUP unsigned)
    args = ("staff", "set-role", "aaldous", "ta")
    code, _, err = run_main("--school", "ashgrove", *args, "--yes", config=trust)
    assert code == 2, err
    assert f"{os_account()} is not one of its technicians" in err
    assert "who may: someone-else, group:Ashgrove ICT ([schools.ashgrove] technicians)" in err
    assert not (trust.parent / "state-ashgrove.db").exists() or _audit_targets(trust, "ashgrove") == set()
    code, _, err = run_main("--school", "ashgrove", *args, "--dry-run", config=trust)
    assert code == 0 and "dry run" in err, err  # a dry run changes nothing: anyone may
    code, _, err = run_main("--school", "ashgrove", "aup", "sign", "aashby", "--yes", config=trust)
    assert code == 2 and "not one of its technicians" in err  # a bulk run, refused before its lease
    code, _, err = run_main("--school", "ashgrove", "access", "review", config=trust)
    assert code == 1, err  # read-only: open to the trust's central team
    code, _, err = run_main("--school", "ashgrove", "access", "review", "--fix", "--yes", config=trust)
    assert code == 2 and "not one of its technicians" in err  # --fix changes: refused
    assert _audit_targets(trust, "ashgrove") == set()  # nothing was recorded
    code, _, err = run_main("--school", "oakfield", *args[:2], "ooakley", "ta", "--yes", config=trust)
    assert code == 0, err  # a technician of Oakfield
    assert "ooakley" in _audit_targets(trust, "oakfield")


def _audit_targets(trust: Path, school: str) -> set[str]:
    st = State(trust.parent / f"state-{school}.db")
    try:
        return {e.target for e in st.audit_entries()}
    finally:
        st.close()


def test_a_directory_group_admits_its_members(trust: Path, openldap_sandbox: sb.SandboxInfo) -> None:
    from aupctl.config import load
    from aupctl.directory import open_directory
    from aupctl.errors import RefusedError
    from aupctl.schools import check_technician

    cfg = load(str(trust), "ashgrove")
    conn = openldap_sandbox.connect(openldap_sandbox.admin_dn, openldap_sandbox.admin_password)
    dn = f"cn=Ashgrove ICT,ou=Groups,ou=Ashgrove,{BASE}"
    assert conn.add(
        dn, ["groupOfNames"], {"cn": "Ashgrove ICT", "member": [f"uid=aashby,ou=Teachers,ou=Staff,ou=Ashgrove,{BASE}"]}
    )
    conn.unbind()
    d = open_directory(cfg)
    try:
        check_technician(cfg, lambda: d, names=["aashby"])  # a member of the group: allowed
        with pytest.raises(RefusedError, match="aaldous is not one of its technicians"):
            check_technician(cfg, lambda: d, names=["aaldous"])
        check_technician(cfg, None, names=["someone-else"])  # named: no directory asked
    finally:
        d.close()


# -- --all-schools --
def test_all_schools_access_review_one_result_and_an_unreachable_school(trust: Path) -> None:
    port = _free_port()  # nothing listens there: that school's directory cannot be reached
    bad = trust.parent / "trust-bad.toml"
    bad.write_text(
        trust.read_text()
        + f'\n[schools.farley]\nname = "Farley Infants"\n[schools.farley.directory]\nurl = "ldaps://127.0.0.1:{port}"\n'
        "timeout = 1\n"
    )
    code, out, err = run_main("--format", "json", "access", "review", "--all-schools", config=bad)
    doc = json.loads(out)
    assert code == 3 == doc["exit_code"], err  # the worst of the schools': one unreachable
    schools = {s["school"]: s for s in doc["data"]["schools"]}
    assert list(schools) == ["oakfield", "ashgrove", "elmwood", "hollybank", "farley"]
    assert schools["farley"]["exit_code"] == 3 and "127.0.0.1" in schools["farley"]["error"]
    assert all(schools[k]["exit_code"] == 1 and schools[k]["error"] is None for k in OU_SCHOOLS)
    by_school: dict[str, set] = {}
    for f in doc["findings"]:
        by_school.setdefault(f["school"], set()).add((f["subject"], f["check"]))
    assert ("aashby", "no-approval") in by_school["ashgrove"] and ("eellis", "no-approval") in by_school["elmwood"]
    trust_people = {u for _, people in OU_SCHOOLS.values() for u, _, _ in people}
    assert not trust_people & {s for s, _ in by_school["hollybank"]}  # each school reads its own directory
    assert {s for s, _ in by_school["oakfield"]} <= {"ooakley", "oorme"}
    assert len(by_school["hollybank"]) > 3  # the seeded school's planted findings
    assert "school farley" in err
    # the table: a school column, the unreachable school a row of its own
    code, out, err = run_main("access", "review", "--all-schools", "--wide", config=bad)
    assert code == 3
    head = out.splitlines()[0].split()
    assert head[0] == "school"
    assert any(line.startswith("farley") and "school-unreachable" in line for line in out.splitlines())
    assert any(line.startswith("elmwood") and "eellis" in line for line in out.splitlines())
    code, _, err = run_main("--school", "oakfield", "access", "review", "--all-schools", config=bad)
    assert code == 2 and "not both" in err


def test_all_schools_password_and_laptop_audit(trust: Path) -> None:
    code, out, err = run_main("--format", "json", "password", "audit", "--all-schools", "--no-hash-check", config=trust)
    assert code == 1, err
    doc = json.loads(out)
    assert [s["school"] for s in doc["data"]["schools"]] == ["oakfield", "ashgrove", "elmwood", "hollybank"]
    subjects: dict[str, set[str]] = {}
    for f in doc["findings"]:
        subjects.setdefault(f["school"], set()).add(f["subject"])
    assert len(subjects["hollybank"]) > 3  # the seeded school's planted password problems
    assert not subjects["hollybank"] & {"ooakley", "aashby", "eellis"}
    for key, (_, people) in OU_SCHOOLS.items():  # each OU school's audit reads only its own OU
        assert subjects.get(key, set()) <= {u for u, _, _ in people} | {"password policy"}, subjects.get(key)
    code, out, err = run_main("--format", "json", "laptop", "audit", "--all-schools", "--no-probe", config=trust)
    assert code == 0, err  # no laptops enrolled in any school
    assert len(json.loads(out)["data"]["schools"]) == 4


def test_one_school_config_is_unchanged(openldap_sandbox: sb.SandboxInfo) -> None:
    code, _, err = run_main("--school", "oakfield", "access", "list", config=openldap_sandbox.config_path)
    assert code == 2 and "no [schools.*] tables" in err
    code, out, err = run_main(
        "--format", "json", "access", "review", "--all-schools", config=openldap_sandbox.config_path
    )
    assert code == 1, err
    assert [s["school"] for s in json.loads(out)["data"]["schools"]] == ["Hollybank Primary School"]
    code, out, err = run_main(
        "--format", "json", "report", "--all-schools", "--no-directory", config=openldap_sandbox.config_path
    )
    assert code == 0, err  # a config of one school: its one part, no roll-up
    doc = json.loads(out)["data"]
    assert [s["name"] for s in doc["schools"]] == ["Hollybank Primary School"] and doc["rollup"] is None
    assert os.path.exists(openldap_sandbox.dir / "state.db")


# -- the same trust on Active Directory (one test: AD DCs run one at a time) --
AD_BASE = "DC=hollybank,DC=test"


@pytest.fixture(scope="module")
def ad_trust(ad_sandbox: sb.SandboxInfo, openldap_sandbox: sb.SandboxInfo) -> tuple[Path, dict[str, list[str]]]:
    """Three schools as OUs of one Samba AD domain, and Hollybank in a directory of its own (OpenLDAP: a
    school's flavour is its own too): the config's path and each OU school's usernames."""
    ad_base = AD_BASE
    conn = ad_sandbox.connect(ad_sandbox.admin_dn, ad_sandbox.admin_password)
    people: dict[str, list[str]] = {}
    for key, (ou, names) in OU_SCHOOLS.items():
        base = f"OU={ou},{ad_base}"
        for dn in (base, f"OU=Staff,{base}", f"OU=Teachers,OU=Staff,{base}", f"OU=Groups,{base}", f"OU=Leavers,{base}"):
            assert conn.add(dn, ["top", "organizationalUnit"]), (dn, conn.result)
        dns = []
        for username, given, surname in names:
            dn = f"CN={given} {surname},OU=Teachers,OU=Staff,{base}"
            attrs = {
                "sAMAccountName": f"{username}",
                "givenName": given,
                "sn": surname,
                "displayName": f"{given} {surname}",
            }
            assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs), (dn, conn.result)
            dns.append(dn)
        group = f"CN=SIMS Users,OU=Groups,{base}"
        assert conn.add(group, ["top", "group"], {"sAMAccountName": f"SIMS Users {ou}", "member": dns[:1]}), conn.result
        people[key] = [u for u, _, _ in names]
    conn.unbind()
    own = openldap_sandbox
    text = ad_sandbox.config_path.read_text()
    for key, (ou, _) in OU_SCHOOLS.items():
        text += f'\n[schools.{key}.directory]\nbase_dn = "OU={ou},{ad_base}"\n'
    text += f"""
[schools.hollybank.directory]
flavour = "openldap"
url = "{own.urls[0]}"
ca_file = "{own.ca_file}"
bind_dn = "{own.bind_dn}"
bind_password_file = "{own.dir / "bind.pw"}"
base_dn = "{BASE}"
privileged_groups = ["IT Admins"]
placeholder_member = "cn=nobody,ou=Groups"
"""
    path = ad_sandbox.dir / "trust.toml"
    path.write_text(text)
    return path, people


def test_a_trust_on_active_directory(ad_sandbox: sb.SandboxInfo, ad_trust: tuple[Path, dict[str, list[str]]]) -> None:
    """Three schools as OUs of one Samba AD domain, and Hollybank in a directory of its own (OpenLDAP: a
    school's flavour is its own too): --all-schools access review, --school required, a store per school."""
    path, people = ad_trust
    code, _, err = run_main("access", "list", config=path)
    assert code == 2 and "4 schools" in err
    code, out, err = run_main("--format", "json", "access", "review", "--all-schools", config=path)
    assert code == 1, err
    doc = json.loads(out)
    assert [s["exit_code"] for s in doc["data"]["schools"]] == [1, 1, 1, 1]
    found: dict[str, set[str]] = {}
    for f in doc["findings"]:
        found.setdefault(f["school"], set()).add(f["subject"])
    for key, names in people.items():
        assert names[0] in found[key], (key, found.get(key))  # in the school's SIMS group, no approval
        assert not (found[key] - set(names)), found[key]  # nobody of another school
    assert len(found["hollybank"]) > 3
    code, out, err = run_main(
        "--school", "elmwood", "--format", "json", "staff", "list", "--include-disabled", config=path
    )
    assert code == 0, err
    assert {r["username"] for r in json.loads(out)["data"]} == set(people["elmwood"])
    assert (ad_sandbox.dir / "state-elmwood.db").exists() and not (ad_sandbox.dir / "state.db").exists()
    # the estate and domain audits across the AD trust: a school column, each school's snapshot in its store
    from aupctl.records import snapshots

    for args, kind in ((("estate", "audit", "--no-probe"), "estate-audit"), (("domain", "audit"), "domain-audit")):
        code, out, err = run_main("--format", "json", *args, "--all-schools", config=path)
        doc = json.loads(out)
        assert code == 1, (args, err)
        assert [s["school"] for s in doc["data"]["schools"]] == [*OU_SCHOOLS, "hollybank"], args
        assert all(s["error"] is None for s in doc["data"]["schools"]), args
        for key in (*OU_SCHOOLS, "hollybank"):
            st = State(str(ad_sandbox.dir / f"state-{key}.db"))
            try:
                mine = snapshots.latest(st, kind)
            finally:
                st.close()
            assert mine is not None and mine["total"] == sum(1 for f in doc["findings"] if f["school"] == key)
    # the AD domain's own policy (lockout off in the sandbox) is each AD school's finding, not Hollybank's
    found = {(f["school"], f["check"]) for f in doc["findings"]}
    assert all((key, "policy-no-lockout") in found for key in OU_SCHOOLS), found
    assert ("hollybank", "policy-no-lockout") not in found


def test_all_schools_estate_and_domain_audit_snapshots_and_the_report(
    trust: Path, openldap_sandbox: sb.SandboxInfo
) -> None:
    """estate audit and domain audit --all-schools: one result with a school column, an unreachable school a
    row; each reachable school's own store keeps each run's snapshot; report --all-schools rolls them up."""
    from aupctl.records import snapshots

    conn = openldap_sandbox.connect(openldap_sandbox.admin_dn, openldap_sandbox.admin_password)
    assert conn.add(
        f"cn=AG-PC-01,ou=Ashgrove,{BASE}", ["device"], {"cn": "AG-PC-01", "description": "Windows 10 Pro 10.0 (19045)"}
    )
    conn.unbind()
    port = _free_port()
    bad = trust.parent / "trust-bad-estate.toml"
    bad.write_text(
        trust.read_text()
        + f'\n[schools.farley]\nname = "Farley Infants"\n[schools.farley.directory]\nurl = "ldaps://127.0.0.1:{port}"\n'
        "timeout = 1\n"
    )
    keys = ["oakfield", "ashgrove", "elmwood", "hollybank", "farley"]
    for args, kind in ((("estate", "audit", "--no-probe"), "estate-audit"), (("domain", "audit"), "domain-audit")):
        code, out, err = run_main("--format", "json", *args, "--all-schools", config=bad)
        doc = json.loads(out)
        assert code == 3 == doc["exit_code"], (args, err)  # the worst: farley cannot be reached
        schools = {s["school"]: s for s in doc["data"]["schools"]}
        assert list(schools) == keys, args
        assert schools["farley"]["exit_code"] == 3 and "127.0.0.1" in schools["farley"]["error"]
        assert all(schools[k]["error"] is None for k in keys[:-1]), args
        assert all(f["school"] in keys[:-1] for f in doc["findings"]), args
        assert {f["school"] for f in doc["findings"]} == {k for k in keys[:-1] if schools[k]["exit_code"] == 1}
        if kind == "estate-audit":  # Ashgrove's Windows 10 PC, in Ashgrove's result only
            pcs = {(f["school"], f["check"]) for f in doc["findings"] if f["subject"] == "AG-PC-01"}
            assert pcs == {("ashgrove", "os-unsupported")}, doc["findings"]
        else:  # every school's password policy is read from its own directory
            assert {f["school"] for f in doc["findings"]} == set(keys[:-1])
        code, out, err = run_main(*args, "--all-schools", config=bad)
        lines = out.splitlines()
        assert code == 3 and lines[0].split()[0] == "school", args
        assert any(line.startswith("farley") and "school-unreachable" in line for line in lines), args
        for key in keys[:-1]:  # each school's snapshot in its own store, none in another's
            st = State(str(trust.parent / f"state-{key}.db"))
            try:
                mine = snapshots.latest(st, kind)
            finally:
                st.close()
            assert mine is not None, (key, kind)
            found = [f for f in doc["findings"] if f["school"] == key]
            assert mine["total"] == len(found), (key, kind, mine)

    # a single run (--school KEY) keeps its snapshot in that school's store too, and only there
    def count(key: str) -> int:
        st = State(str(trust.parent / f"state-{key}.db"))
        try:
            return len(snapshots.between(st, "2000-01-01", "9999-12-31", "domain-audit"))
        finally:
            st.close()

    was = {k: count(k) for k in ("ashgrove", "oakfield")}
    code, out, err = run_main("--school", "ashgrove", "domain", "audit", config=trust)
    assert code == 1, err
    assert {k: count(k) for k in was} == {"ashgrove": was["ashgrove"] + 1, "oakfield": was["oakfield"]}
    assert not (trust.parent / "state-farley.db").exists() or not snapshots.latest(
        State(str(trust.parent / "state-farley.db")), "estate-audit"
    )

    code, out, err = run_main("--format", "json", "report", "--all-schools", "--no-directory", config=trust)
    assert code == 0, err
    data = json.loads(out)["data"]
    assert [s["key"] for s in data["schools"]] == keys[:-1]
    assert [r["key"] for r in data["rollup"]] == keys[:-1]
    assert [s["name"] for s in data["schools"]] == [
        "Oakfield Primary",
        "Ashgrove Academy",
        "Elmwood Juniors",
        "hollybank",
    ]  # no name given: its key
    for s in data["schools"]:  # each school's part from its own store: its own audits' snapshots
        extra = s["sections"]["extra"]
        assert extra["estate-audit"]["latest"] is not None and extra["domain-audit"]["latest"] is not None, s["key"]
    estate = {s["key"]: s["sections"]["extra"]["estate-audit"]["latest"] for s in data["schools"]}
    assert estate["ashgrove"]["subjects"] == 1 and estate["ashgrove"]["by_check"] == {"os-unsupported": 1}
    assert estate["oakfield"]["subjects"] == 0 and estate["oakfield"]["total"] == 0
    page = trust.parent / "trust-report.html"
    code, out, err = run_main("report", "--all-schools", "--no-directory", "--out", str(page), config=trust)
    assert code == 0, err
    html = page.read_text()
    assert all(name in html for name in ("Oakfield Primary", "Ashgrove Academy", "Elmwood Juniors")), err
    code, out, err = run_main("--school", "elmwood", "--format", "json", "report", "--no-directory", config=trust)
    assert code == 0 and [s["key"] for s in json.loads(out)["data"]["schools"]] == ["elmwood"]
    assert json.loads(out)["data"]["rollup"] is None
    code, _, err = run_main("--school", "oakfield", "report", "--all-schools", "--no-directory", config=trust)
    assert code == 2 and "not both" in err


# -- a person who works at two schools: one account (Oakfield's), access per school --
def _export(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    from aupctl.staff.sync.profiles import PROFILES

    headers = PROFILES["sims"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(headers.values()))
        w.writeheader()
        for r in rows:
            w.writerow({headers[k]: v for k, v in r.items()})
    return path


def _sync(trust: Path, school: str, export: Path) -> tuple[int, list[dict], str]:
    code, out, err = run_main(
        "--school", school, "--format", "json", "staff", "sync", str(export), "--yes", config=trust
    )
    assert code in (0, 1), err
    return code, json.loads(out)["data"]["people"], err


def test_a_person_of_two_schools_is_one_account_with_access_per_school(
    trust: Path, openldap_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    """Oakfield holds Tess Twin's account (MIS id X); Elmwood's export lists her too: Elmwood's sync makes no
    second account, puts her in Elmwood's role groups and records her role there; Elmwood's grant and review
    take her; her end date at Elmwood takes only Elmwood's groups and approvals; Oakfield still has her."""
    import datetime as dt

    from aupctl.config import load
    from aupctl.staff.sync.engine import id_attribute

    idattr = id_attribute(load(str(trust), "elmwood"))
    oak, elm = f"ou=Oakfield,{BASE}", f"ou=Elmwood,{BASE}"
    tess = f"uid=ttwin,ou=Teachers,ou=Staff,{oak}"
    conn = openldap_sandbox.connect(openldap_sandbox.admin_dn, openldap_sandbox.admin_password)
    attrs = {"uid": "ttwin", "cn": "Tess Twin", "sn": "Twin", "givenName": "Tess", idattr: "X*(1)"}  # escaped
    assert conn.add(tess, ["inetOrgPerson"], attrs), conn.result
    from ldap3 import MODIFY_ADD

    assert conn.modify(f"cn=SIMS Users,ou=Groups,{oak}", {"member": [(MODIFY_ADD, [tess])]}), conn.result
    eelgar = f"uid=eelgar,ou=Teachers,ou=Staff,{elm}"
    for group in ("Teaching Staff", "All Staff"):  # Elmwood's role groups for teachers
        assert conn.add(f"cn={group},ou=Groups,{elm}", ["groupOfNames"], {"cn": group, "member": [eelgar]})

    def groups_of(dn: str) -> set[str]:
        conn.search(BASE, f"(member={dn})", attributes=["cn"])
        return {e.entry_dn.lower() for e in conn.entries}

    def enabled() -> bool:
        conn.search(tess, "(objectClass=*)", "BASE", attributes=["pwdAccountLockedTime"])
        return len(conn.entries) == 1 and not conn.entries[0]["pwdAccountLockedTime"].values

    row = {"person_id": "X*(1)", "legal_first": "Tess", "legal_last": "Twin", "role": "teacher"}
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm1.csv", [row]))
    mine = [p for p in people if p["person_id"] == "X*(1)"]
    assert [(p["kind"], p["username"]) for p in mine] == [("shared", "ttwin")], people
    assert "works at oakfield too: joins this school's role groups" in mine[0]["detail"]
    assert not [p for p in people if p["kind"] == "joiner"]
    conn.search(BASE, "(givenName=Tess)", attributes=["uid"])
    assert [e.entry_dn for e in conn.entries] == [tess]  # no second account
    assert {f"cn=teaching staff,ou=groups,{elm.lower()}", f"cn=all staff,ou=groups,{elm.lower()}"} <= groups_of(tess)
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm2.csv", [row]))
    assert not [p for p in people if p["person_id"] == "X*(1)"], people  # a re-run: nothing to do for her

    # Elmwood's own grant and review take her
    code, _, err = run_main("--school", "elmwood", "aup", "sign", "ttwin", "--yes", config=trust)
    assert code == 0, err
    grant = ("access", "grant", "ttwin", "sims", "--approved-by", "Ms E Ward (Head of School)", "--yes")
    code, _, err = run_main("--school", "elmwood", *grant, config=trust)
    assert code == 0, err
    assert f"cn=sims users,ou=groups,{elm.lower()}" in groups_of(tess)
    revoke = ("access", "revoke", "ttwin", "sims", "--reason", "test", "--yes")
    code, _, err = run_main("--school", "elmwood", *revoke, config=trust)
    assert code == 0 and f"cn=sims users,ou=groups,{elm.lower()}" not in groups_of(tess), err
    code, _, err = run_main("--school", "elmwood", *grant, config=trust)
    assert code == 0 and f"cn=sims users,ou=groups,{elm.lower()}" in groups_of(tess), err
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "review", config=trust)
    assert code == 1, err  # Elmwood's own planted finding (eellis) is still there
    findings = json.loads(out)["findings"]
    assert not [f for f in findings if "ttwin" in (f["subject"] + f["detail"]).lower()], findings
    assert any(f["subject"] == "eellis" for f in findings)
    # Oakfield is not touched by Elmwood's store: she has no approval of SIMS there
    code, out, err = run_main("--school", "oakfield", "--format", "json", "access", "review", config=trust)
    assert ("ttwin", "no-approval") in {(f["subject"], f["check"]) for f in json.loads(out)["findings"]}

    # She leaves Elmwood: Elmwood's groups and approval go; the account stays enabled, in Oakfield's groups
    left = dict(row, end_date=dt.date.today().isoformat())
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm3.csv", [left]))
    mine = [p for p in people if p["person_id"] == "X*(1)"]
    assert [p["kind"] for p in mine] == ["left"], people
    assert not [p for p in people if p["kind"] == "leaver"]
    assert groups_of(tess) == {f"cn=sims users,ou=groups,{oak.lower()}"}
    assert enabled()
    conn.search(BASE, "(uid=ttwin)")
    assert [e.entry_dn for e in conn.entries] == [tess]  # not moved to a leavers OU
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "list", config=trust)
    assert not [r for r in json.loads(out)["data"] if r["username"] == "ttwin"]
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm4.csv", [left]))
    assert not [p for p in people if p["person_id"] == "X*(1)"], people  # gone from Elmwood: nothing to do

    # Oakfield's own sync still has her as Oakfield's: matched by id, nothing to change, not "not in the MIS"
    code, people, err = _sync(trust, "oakfield", _export(tmp_path / "oak.csv", [row]))
    assert not [p for p in people if p["username"] == "ttwin" or p["person_id"] == "X*(1)"], people
    assert enabled() and groups_of(tess) == {f"cn=sims users,ou=groups,{oak.lower()}"}
    # Oakfield has withdrawn her (disabled): Elmwood taking her on again makes no second account, it waits
    from ldap3 import MODIFY_REPLACE

    assert conn.modify(tess, {"pwdAccountLockedTime": [(MODIFY_REPLACE, ["000001010000Z"])]}), conn.result
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm5.csv", [row]))
    mine = [p for p in people if p["person_id"] == "X*(1)"]
    assert code == 1 and [p["kind"] for p in mine] == ["error"] and "disabled" in mine[0]["detail"], people
    assert not [p for p in people if p["kind"] == "joiner"]
    conn.unbind()


def test_a_person_of_two_schools_on_active_directory(
    ad_sandbox: sb.SandboxInfo, ad_trust: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    """The same on AD: Oakfield's account (employeeID), Elmwood's sync gives it Elmwood's role groups (no
    second account), Elmwood's grant and review take it, leaving Elmwood takes only Elmwood's groups."""
    import datetime as dt

    from ldap3 import BASE as SCOPE_BASE

    path, _ = ad_trust
    oak, elm = f"OU=Oakfield,{AD_BASE}", f"OU=Elmwood,{AD_BASE}"
    dn = f"CN=Tess Twin,OU=Teachers,OU=Staff,{oak}"
    conn = ad_sandbox.connect(ad_sandbox.admin_dn, ad_sandbox.admin_password)
    attrs = {"sAMAccountName": "ttwin", "givenName": "Tess", "sn": "Twin", "employeeID": "X*(2)"}
    assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], {**attrs, "userAccountControl": "544"})
    for group in ("Teaching Staff", "All Staff"):
        gdn = f"CN={group},OU=Groups,{elm}"
        assert conn.add(gdn, ["top", "group"], {"sAMAccountName": f"{group} Elmwood"}), conn.result

    def state() -> tuple[set[str], int]:
        conn.search(dn, "(objectClass=user)", SCOPE_BASE, attributes=["memberOf", "userAccountControl"])
        (e,) = conn.entries
        return {g.lower() for g in e["memberOf"].values}, int(e["userAccountControl"].value)

    row = {"person_id": "X*(2)", "legal_first": "Tess", "legal_last": "Twin", "role": "teacher"}
    code, people, err = _sync(path, "elmwood", _export(tmp_path / "elm1.csv", [row]))
    mine = [p for p in people if p["person_id"] == "X*(2)"]
    assert [(p["kind"], p["username"]) for p in mine] == [("shared", "ttwin")], people
    assert "works at oakfield too" in mine[0]["detail"] and not [p for p in people if p["kind"] == "joiner"]
    groups, uac = state()
    assert {f"cn=teaching staff,ou=groups,{elm.lower()}", f"cn=all staff,ou=groups,{elm.lower()}"} <= groups
    conn.search(AD_BASE, "(givenName=Tess)", attributes=["cn"])
    assert [e.entry_dn for e in conn.entries] == [dn]
    code, people, err = _sync(path, "elmwood", _export(tmp_path / "elm2.csv", [row]))
    assert not [p for p in people if p["person_id"] == "X*(2)"], people
    code, _, err = run_main("--school", "elmwood", "aup", "sign", "ttwin", "--yes", config=path)
    assert code == 0, err
    grant = ("access", "grant", "ttwin", "sims", "--approved-by", "Mrs A Patel (Headteacher)", "--yes")
    code, _, err = run_main("--school", "elmwood", *grant, config=path)
    assert code == 0, err
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "review", config=path)
    assert not [f for f in json.loads(out)["findings"] if "ttwin" in f["subject"] + f["detail"]], out
    left = dict(row, end_date=dt.date.today().isoformat())
    code, people, err = _sync(path, "elmwood", _export(tmp_path / "elm3.csv", [left]))
    assert [p["kind"] for p in people if p["person_id"] == "X*(2)"] == ["left"], people
    groups, after = state()
    assert not [g for g in groups if g.endswith(elm.lower())] and after == uac and not after & 2  # still enabled
    conn.unbind()


# -- a person of two schools: a role change at the second school, its review, its leavers --
def _oakfield_person_at_elmwood(
    trust: Path, sandbox: sb.SandboxInfo, tmp_path: Path, uid: str, mis_id: str
) -> tuple[object, str, dict[str, str]]:
    """An Oakfield teacher (in Oakfield's SIMS Users) whom Elmwood's export lists as a teacher too: synced at
    Elmwood (its role groups, its role record), then signed and granted SIMS there. (conn, dn, MIS row)"""
    from ldap3 import MODIFY_ADD

    from aupctl.config import load
    from aupctl.staff.sync.engine import id_attribute

    idattr = id_attribute(load(str(trust), "elmwood"))
    oak, elm = f"ou=Oakfield,{BASE}", f"ou=Elmwood,{BASE}"
    dn = f"uid={uid},ou=Teachers,ou=Staff,{oak}"
    conn = sandbox.connect(sandbox.admin_dn, sandbox.admin_password)
    attrs = {"uid": uid, "cn": f"{uid} Shared", "sn": "Shared", "givenName": uid, idattr: mis_id}
    assert conn.add(dn, ["inetOrgPerson"], attrs), conn.result
    assert conn.modify(f"cn=SIMS Users,ou=Groups,{oak}", {"member": [(MODIFY_ADD, [dn])]}), conn.result
    eelgar = f"uid=eelgar,ou=Teachers,ou=Staff,{elm}"
    for group in ("Teaching Staff", "All Staff", "Support Staff"):  # Elmwood's role groups (teacher, ta)
        gdn = f"cn={group},ou=Groups,{elm}"
        if not conn.search(gdn, "(objectClass=*)", "BASE"):
            assert conn.add(gdn, ["groupOfNames"], {"cn": group, "member": [eelgar]}), conn.result
    row = {"person_id": mis_id, "legal_first": uid, "legal_last": "Shared", "role": "teacher"}
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm-teacher.csv", [row]))
    assert [(p["kind"], p["username"]) for p in people if p["person_id"] == mis_id] == [("shared", uid)], people
    code, _, err = run_main("--school", "elmwood", "aup", "sign", uid, "--yes", config=trust)
    assert code == 0, err
    grant = ("access", "grant", uid, "sims", "--approved-by", "Ms E Ward (Head of School)", "--yes")
    code, _, err = run_main("--school", "elmwood", *grant, config=trust)
    assert code == 0, err
    return conn, dn, row


def _groups_of(conn, dn: str) -> set[str]:
    conn.search(BASE, f"(member={dn})", attributes=["cn"])
    return {e.entry_dn.lower() for e in conn.entries}


def test_a_role_change_at_the_second_school_ends_the_approvals_the_new_role_may_not_hold(
    trust: Path, openldap_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    """Elmwood's export moves Rhys from teacher to TA (who may not hold SIMS): as a normal mover, Elmwood's
    SIMS approval ends and he leaves Elmwood's SIMS Users; Oakfield's SIMS Users keeps him."""
    conn, dn, row = _oakfield_person_at_elmwood(trust, openldap_sandbox, tmp_path, "rrole", "R-1")
    oak, elm = f"ou=Oakfield,{BASE}".lower(), f"ou=Elmwood,{BASE}".lower()
    assert f"cn=sims users,ou=groups,{elm}" in _groups_of(conn, dn)
    ta = dict(row, role="ta")
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm-ta.csv", [ta]))
    mine = [p for p in people if p["person_id"] == "R-1"]
    assert [(p["kind"], p["username"]) for p in mine] == [("shared", "rrole")], people
    assert "role teacher -> ta" in mine[0]["detail"] and "access ended: sims" in mine[0]["detail"], mine
    groups = _groups_of(conn, dn)
    assert f"cn=sims users,ou=groups,{elm}" not in groups
    assert f"cn=teaching staff,ou=groups,{elm}" not in groups
    assert {f"cn=support staff,ou=groups,{elm}", f"cn=all staff,ou=groups,{elm}"} <= groups
    assert f"cn=sims users,ou=groups,{oak}" in groups  # Oakfield's access is Oakfield's
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "list", config=trust)
    assert not [r for r in json.loads(out)["data"] if r["username"] == "rrole"], out
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "review", config=trust)
    assert not [f for f in json.loads(out)["findings"] if "rrole" in f["subject"] + f["detail"]], out
    code, people, err = _sync(trust, "elmwood", _export(tmp_path / "elm-ta2.csv", [ta]))
    assert not [p for p in people if p["person_id"] == "R-1"], people  # a re-run: nothing to do
    conn.unbind()


def test_the_second_schools_review_finds_the_shared_account_outside_its_group(
    trust: Path, openldap_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    """Sam's Elmwood SIMS approval outlives his Elmwood SIMS Users membership (taken away by hand): Elmwood's
    review finds the account (in Oakfield's OU) and says he is not a member, not "no such account"."""
    from ldap3 import MODIFY_DELETE

    conn, dn, _ = _oakfield_person_at_elmwood(trust, openldap_sandbox, tmp_path, "sdrift", "D-1")
    elm_sims = f"cn=SIMS Users,ou=Groups,ou=Elmwood,{BASE}"
    assert conn.modify(elm_sims, {"member": [(MODIFY_DELETE, [dn])]}), conn.result
    code, out, err = run_main("--school", "elmwood", "--format", "json", "access", "review", config=trust)
    assert code == 1, err
    mine = [f for f in json.loads(out)["findings"] if f["subject"] == "sdrift"]
    assert [f["check"] for f in mine] == ["not-a-member"], mine
    assert "no such account" not in mine[0]["detail"] and "re-grant or revoke" in mine[0]["detail"], mine
    conn.unbind()


def test_the_second_school_may_not_withdraw_or_restore_the_other_schools_account(
    trust: Path, openldap_sandbox: sb.SandboxInfo, tmp_path: Path
) -> None:
    """`--school elmwood leaver withdraw|restore` for Oakfield's account: refused (exit 2) naming Oakfield and
    what to do instead; nothing changed. Someone no school holds is still "no such account"."""
    conn, dn, _ = _oakfield_person_at_elmwood(trust, openldap_sandbox, tmp_path, "lwho", "L-1")
    before = _groups_of(conn, dn)
    code, _, err = run_main(
        "--school", "elmwood", "leaver", "withdraw", "lwho", "--reason", "left", "--yes", config=trust
    )
    assert code == 2, err
    assert "school oakfield's account" in err and dn in err, err
    assert "MIS export" in err and "aupctl --school elmwood access revoke" in err, err
    assert "aupctl --school oakfield leaver" in err, err
    code, _, err = run_main(
        "--school",
        "elmwood",
        "leaver",
        "restore",
        "lwho",
        "--credentials-out",
        str(tmp_path / "pw.csv"),
        "--yes",
        config=trust,
    )
    assert code == 2 and "school oakfield's account" in err and "aupctl --school oakfield leaver" in err, err
    assert not (tmp_path / "pw.csv").exists()
    conn.search(dn, "(objectClass=*)", "BASE", attributes=["pwdAccountLockedTime"])
    assert not conn.entries[0]["pwdAccountLockedTime"].values and _groups_of(conn, dn) == before  # untouched
    code, out, err = run_main("--school", "elmwood", "--format", "json", "leaver", "list", config=trust)
    assert not [r for r in json.loads(out)["data"] if r["username"] == "lwho"], out
    code, _, err = run_main(
        "--school", "elmwood", "leaver", "withdraw", "nobody-here", "--reason", "left", "--yes", config=trust
    )
    assert code == 2 and "no such account in ou=Elmwood" in err, err
    conn.unbind()
