"""`aupctl estate list / audit` (issue 16): computers from a real Samba AD DC (made with samba-tool) and
a real slapd (device entries), the OS support table, the 14-day rule's parsers on captured output, and
the Linux probe over SSH against the sshd fixture."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aupctl.config import OsRelease
from aupctl.errors import ConfigError
from aupctl.estate import patches, support
from aupctl.estate.audit import findings_for, row
from aupctl.estate.computers import Computer
from aupctl.sandbox.samba import _filetime

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ssh_fixtures  # noqa: E402
from sandbox_helpers import cannot_run  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "estate"
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def _ended(os_name: str, version: str = "") -> bool:
    """Has this OS's support ended today, by the shipped table? (Keeps the tests true as the dates pass.)"""
    rel = support.match(support.table(), os_name, version)
    assert rel is not None, (os_name, version)
    return rel.end_for(os_name) < dt.date.today()


def _cli(config: Path, *args: str):
    from aupctl.commands import cli

    return CliRunner().invoke(cli, list(args), env={"AUPCTL_CONFIG": str(config)})


def _envelope(out: str) -> dict:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = Path(__file__).resolve().parent.parent / "docs" / "schema"
    resources = []
    for path in schemas.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    validator = Draft202012Validator(
        json.loads((schemas / "envelope.json").read_text()), registry=Registry().with_resources(resources)
    )
    doc = json.loads(out)
    errors = list(validator.iter_errors(doc))
    assert not errors, errors
    return doc


# -- pure parts --
@pytest.mark.parametrize(
    "year,month,day",
    [(2024, 1, 9), (2025, 10, 14), (2026, 11, 10), (2026, 12, 8), (2027, 6, 8), (2026, 9, 8)],
)
def test_patch_tuesday_is_the_second_tuesday(year: int, month: int, day: int) -> None:
    assert patches.patch_tuesday(year, month) == dt.date(year, month, day)


def test_due_release_waits_14_days_after_patch_tuesday() -> None:
    assert patches.due_release(dt.date(2026, 11, 24)) == dt.date(2026, 10, 13)  # 10 Nov + 14 = 24 Nov: still October's
    assert patches.due_release(dt.date(2026, 11, 25)) == dt.date(2026, 11, 10)
    assert patches.due_release(dt.date(2026, 1, 3)) == dt.date(2025, 12, 9)  # across the year


def test_os_support_table_matches_real_operating_system_strings() -> None:
    rels = support.table()
    cases = {
        ("Windows 10 Pro", "10.0 (19045)"): "Windows 10 22H2",
        ("Windows 11 Education", "10.0 (22631)"): "Windows 11 23H2",
        ("Windows 11 Enterprise", "10.0 (26100)"): "Windows 11 24H2",
        ("Windows Server 2012 R2 Standard", "6.3 (9600)"): "Windows Server 2012 R2",
        ("Windows Server 2025 Datacenter", "10.0 (26100)"): "Windows Server 2025",  # same build as 24H2
        ("Windows Server 2019 Standard", ""): "Windows Server 2019",
        ("Windows 11 Education 24H2", ""): "Windows 11 24H2",
        ("macOS", "14.3.1"): "macOS 14 Sonoma",
        ("Mac OS X", "10.15.7"): None,
        ("Debian GNU/Linux", "12 (bookworm)"): None,
        ("Windows 11 Pro", "10.0 (99999)"): None,
    }
    for (os_name, version), want in cases.items():
        got = support.match(rels, os_name, version)
        assert (got.name if got else None) == want, (os_name, version)
    w11 = support.match(rels, "Windows 11 Education", "10.0 (22631)")
    assert w11 and w11.end_for("Windows 11 Education") == dt.date(2026, 11, 10)
    assert w11.end_for("Windows 11 Pro") == dt.date(2025, 11, 11)  # Home/Pro: a year less


def test_os_support_overrides_and_additions_from_config() -> None:
    rels = support.table(
        {
            "Windows 10 22H2": OsRelease(end="2026-10-13"),
            "macOS 27": OsRelease(family="macos", version="27", end="2029-09-15", latest="27.1"),
        }
    )
    w10 = support.match(rels, "Windows 10 Pro", "10.0 (19045)")
    assert w10 and w10.end == dt.date(2026, 10, 13) and w10.build == 19045  # ESU: only the date changed
    assert support.match(rels, "macOS", "27.0.1").name == "macOS 27"
    with pytest.raises(ConfigError, match="estate.os_support.'Windows 12'.*build"):
        support.table({"Windows 12": OsRelease(family="windows", end="2030-01-01")})
    with pytest.raises(ConfigError, match="not a date"):
        support.table({"Windows 10 22H2": OsRelease(end="next year")})


def test_windows_hotfix_parsers_on_captured_output() -> None:
    today = dt.date(2026, 11, 30)
    gh = patches.hotfixes_from_text((DATA / "windows-10-22h2-get-hotfix.txt").read_text())
    assert [h.id for h in gh] == ["KB5046823", "KB5046613", "KB5011048", "KB5015684"]
    assert gh[0].installed_on == dt.date(2026, 11, 13) and not gh[0].security and gh[1].security
    st = patches.windows_state(gh, today)
    assert st.overdue and "KB5046613" in st.detail and "2026-11-10" in st.detail  # a newer plain Update does not count
    qfe = patches.hotfixes_from_text((DATA / "windows-11-24h2-wmic-qfe-list-brief.txt").read_text())
    assert len(qfe) == 3 and not patches.windows_state(qfe, today).overdue
    assert patches.windows_state(qfe, dt.date(2027, 1, 5)).overdue  # December's release due by 22 Dec
    assert patches.windows_state([], today).how == ""  # nothing read: updates-unknown
    # the laptop probe's own JSON (tests/data/probes)
    probe = (Path(__file__).parent / "data" / "probes" / "windows-11-pro-23h2.json").read_text()
    fixes = patches.hotfixes_from_probe(patches.probe_json(probe))
    assert {h.id for h in fixes if h.security} == {"KB5035853"}
    assert patches.windows_state(fixes, today).overdue


def test_linux_and_macos_parsers_on_captured_output() -> None:
    today = dt.date(2026, 11, 30)
    apt = patches.apt_security((DATA / "debian-12-apt-get-s-upgrade.txt").read_text())
    listed = patches.apt_upgradable_security((DATA / "debian-12-apt-list-upgradable.txt").read_text())
    assert len(apt) == 83 and {p for p, _, _ in apt} == {p for p, _, _ in listed}
    assert "bash" not in {p for p, _, _ in apt}  # Debian:12.15/oldstable only: not a security update
    assert not patches.apt_state(apt, {}, today).overdue  # first seen today
    old = patches.apt_state(apt, {apt[0][0]: "2026-11-01T08:00:00+00:00"}, today)
    assert old.overdue and apt[0][0] in old.detail and "2026-11-01" in old.detail
    dnf = patches.dnf_security((DATA / "rocky-9-dnf-updateinfo-info-security.txt").read_text())
    assert dnf == [("RLSA-2026:7521", dt.date(2026, 10, 21)), ("RLSA-2026:8804", dt.date(2026, 11, 25))]
    st = patches.dnf_state(dnf, today)
    assert st.overdue and "RLSA-2026:7521" in st.detail and "8804" not in st.detail
    rels = support.table()
    v14 = patches.sw_vers((DATA / "macos-14-sw_vers.txt").read_text())["ProductVersion"]
    v26 = patches.sw_vers((DATA / "macos-26-sw_vers.txt").read_text())["ProductVersion"]
    assert v14 == "14.3.1" and patches.macos_state(v14, rels).overdue
    assert not patches.macos_state(v26, rels).overdue
    assert patches.macos_state("9.2", rels).how == ""


def _computer(**kw) -> Computer:
    base = {
        "name": "HB-LT-1",
        "dn": "CN=HB-LT-1,OU=X,DC=t",
        "ou": "OU=X,DC=t",
        "os": "Windows 11 Education",
        "os_version": "10.0 (26100)",
        "last_seen": NOW - dt.timedelta(days=3),
        "enabled": True,
    }
    return Computer(**{**base, **kw})


def test_laps_findings_read_expiry_dates() -> None:
    rels = support.table()
    laps = ["msLAPS-PasswordExpirationTime"]

    def checks(c: Computer) -> list[str]:
        return [f.check for f in findings_for(c, row(c, rels, None, NOW, 90), None, laps, 90, NOW, 0)]

    assert checks(_computer()) == ["laps-missing"]
    assert checks(_computer(laps_expiry=NOW + dt.timedelta(days=20), laps_attribute=laps[0])) == []
    assert checks(_computer(laps_expiry=NOW - dt.timedelta(days=40), laps_attribute=laps[0])) == ["laps-not-rotated"]
    assert checks(_computer(os="macOS", os_version="26.1")) == []  # LAPS is for Windows
    assert checks(_computer(domain_controller=True)) == []  # a DC has no local accounts for LAPS
    assert checks(_computer(enabled=False, os_version="10.0 (19045)")) == []  # disabled: nothing to say
    never = _computer(last_seen=None, password_set=NOW - dt.timedelta(days=200), laps_expiry=NOW)
    f = findings_for(never, row(never, rels, None, NOW, 90), None, laps, 90, NOW, 0)
    assert [x.check for x in f] == ["stale-computer"] and "never logged on" in f[0].detail


# -- OpenLDAP: device entries --
def test_openldap_device_entries(openldap_sandbox) -> None:
    info = openldap_sandbox
    conn = info.connect(info.admin_dn, info.admin_password)
    base = info.base_dn
    conn.add(f"ou=Devices,{base}", ["organizationalUnit"], {"ou": "Devices"})
    for cn, desc, serial in [
        ("HB-LT-101", "Windows 10 Pro 10.0 (19045)", "PF3XK2L1"),
        ("HB-LT-102", "Windows 11 Education 10.0 (26100)", "PF3XK2L2"),
        ("Zoë's iMac", "macOS 12.7.6", None),
        ("HB-SRV-1", "Windows Server 2012 R2 Standard", None),
    ]:
        attrs = {"cn": cn, "description": desc, **({"serialNumber": serial} if serial else {})}
        assert conn.add(f"cn={cn.replace(chr(39), chr(39))},ou=Devices,{base}", ["device"], attrs), conn.result
    conn.unbind()
    res = _cli(info.config_path, "--format", "json", "estate", "list")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in _envelope(res.output)["data"]}
    assert set(rows) == {"HB-LT-101", "HB-LT-102", "Zoë's iMac", "HB-SRV-1"}  # not the ppolicy's device entry
    assert rows["HB-LT-101"]["support"] == "ended" and rows["HB-LT-102"]["release"] == "Windows 11 24H2"
    assert rows["HB-LT-101"]["enabled"] is None  # OpenLDAP does not say
    res = _cli(info.config_path, "--format", "json", "estate", "list", "--os", "windows 1*")
    assert sorted(r["name"] for r in json.loads(res.output)["data"]) == ["HB-LT-101", "HB-LT-102"]
    res = _cli(info.config_path, "--format", "json", "estate", "audit", "--no-probe")
    assert res.exit_code == 1, res.output
    found = {(f["subject"], f["check"]) for f in _envelope(res.output)["findings"]}
    oses = {
        "HB-LT-101": "Windows 10 Pro 10.0 (19045)",
        "HB-LT-102": "Windows 11 Education 10.0 (26100)",
        "Zoë's iMac": "macOS 12.7.6",
        "HB-SRV-1": "Windows Server 2012 R2 Standard",
    }
    assert found == {(name, "os-unsupported") for name, text in oses.items() if _ended(text)}
    assert ("HB-LT-101", "os-unsupported") in found and ("HB-SRV-1", "os-unsupported") in found
    res = _cli(info.config_path, "estate", "list", "--os")
    assert res.exit_code == 2


# -- Samba AD: computer objects from samba-tool --
AD_COMPUTERS = {
    # name: (operatingSystem, operatingSystemVersion, days since last logon)
    "HB-W10-01": ("Windows 10 Pro", "10.0 (19045)", 2),
    "HB-W11-23": ("Windows 11 Education", "10.0 (22631)", 5),
    "HB-W11-24": ("Windows 11 Education", "10.0 (26100)", 1),
    "HB-SRV-2012": ("Windows Server 2012 R2 Standard", "6.3 (9600)", 0),
    "HB-W11-OLD": ("Windows 11 Education", "10.0 (26100)", 200),
    "HB-PRESTAGED": ("", "", None),  # pre-staged by samba-tool, never joined: disabled, no password set
}


@pytest.fixture(scope="module")
def ad_estate(ad_sandbox):
    info = ad_sandbox
    tool = shutil.which("samba-tool") or "/usr/bin/samba-tool"
    for name in AD_COMPUTERS:
        subprocess.run(
            [
                tool,
                "computer",
                "create",
                name,
                "-H",
                str(info.dir / "private" / "sam.ldb"),
                "-s",
                str(info.dir / "etc" / "smb.conf"),
            ],
            check=True,
            capture_output=True,
        )
    conn = info.connect(info.admin_dn, info.admin_password)
    from ldap3 import MODIFY_REPLACE

    for name, (os_name, version, days) in AD_COMPUTERS.items():
        dn = f"CN={name},CN=Computers,{info.base_dn}"
        if days is None:
            continue
        # as a joined computer: its machine password set, enabled (WORKSTATION_TRUST_ACCOUNT)
        pw = f'"Mach-{name}-{os.urandom(8).hex()}"'.encode("utf-16-le")
        assert conn.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [pw])]}), (dn, conn.result)
        assert conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, ["4096"])]}), (dn, conn.result)
        changes = {
            "operatingSystem": [(MODIFY_REPLACE, [os_name])],
            "operatingSystemVersion": [(MODIFY_REPLACE, [version])],
            "lastLogonTimestamp": [(MODIFY_REPLACE, [_filetime(dt.datetime.now(dt.UTC) - dt.timedelta(days=days))])],
        }
        assert conn.modify(dn, changes), (dn, conn.result)
    conn.unbind()
    return info


def test_ad_computers_audit(ad_estate) -> None:
    info = ad_estate
    res = _cli(info.config_path, "--format", "json", "estate", "list")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in _envelope(res.output)["data"]}
    assert set(AD_COMPUTERS) <= set(rows)
    assert rows["HB-W11-24"]["enabled"] is True and rows["HB-W11-24"]["password_age_days"] == 0
    assert rows["HB-W11-24"]["ou"].startswith("CN=Computers,")
    assert rows["HB-W11-OLD"]["stale"] and not rows["HB-W11-24"]["stale"]
    assert rows["HB-PRESTAGED"]["enabled"] is False and rows["HB-PRESTAGED"]["support"] == "unknown"
    res = _cli(info.config_path, "--format", "json", "estate", "list", "--stale")
    assert [r["name"] for r in json.loads(res.output)["data"]] == ["HB-W11-OLD"]

    res = _cli(info.config_path, "--format", "json", "estate", "audit", "--no-probe")
    assert res.exit_code == 1, res.output
    doc = _envelope(res.output)
    found = {(f["subject"], f["check"]) for f in doc["findings"]}
    want = {
        ("HB-W10-01", "os-unsupported"),
        ("HB-SRV-2012", "os-unsupported"),
        ("HB-W11-OLD", "stale-computer"),
        (info.base_dn, "laps-not-in-use"),  # Samba 4.17's schema has no LAPS attributes
    }
    for name in ("HB-W11-23", "HB-W11-24"):  # Education 23H2 ended 10 Nov 2026; 24H2 ends 12 Oct 2027
        if _ended(*AD_COMPUTERS[name][:2]):
            want.add((name, "os-unsupported"))
    assert want <= found
    assert {c for s, c in found if s == "HB-W11-24"} == (
        {"os-unsupported"} if _ended(*AD_COMPUTERS["HB-W11-24"][:2]) else set()
    )
    assert not {c for s, c in found if s == "HB-PRESTAGED"}
    stale = next(f for f in doc["findings"] if f["check"] == "stale-computer")
    assert "at least 186 days" in stale["detail"] and stale["clause"] == "1.4"
    assert all("DfE" in f["detail"] for f in doc["findings"])
    assert doc["data"]["laps_attributes"] == []
    # fewer days makes more computers stale; a new limit from the command line
    res = _cli(info.config_path, "--format", "json", "estate", "audit", "--no-probe", "--stale-days", "3")
    stale = {f["subject"] for f in json.loads(res.output)["findings"] if f["check"] == "stale-computer"}
    assert {"HB-W11-23", "HB-W11-OLD"} <= stale and "HB-W11-24" not in stale
    res = _cli(info.config_path, "estate", "audit", "--stale-days", "0")
    assert res.exit_code == 2


# -- the Linux probe over SSH: the sshd fixture is this Debian machine --
@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if os.geteuid() != 0:
        cannot_run("the sshd laptop needs root (useradd, sshd)")
    ssh_fixtures.make_user()
    server = ssh_fixtures.Sshd(tmp_path_factory.mktemp("estate-sshd")).start()
    try:
        yield server
    finally:
        server.cleanup()


def test_linux_probe_reads_pending_security_updates(openldap_sandbox, sshd, tmp_path) -> None:
    info = openldap_sandbox
    text = info.config_path.read_text()
    text = text.replace('ssh_user = "aupctl"', f'ssh_user = "{sshd.user}"\nssh_key = "{sshd.client_key}"')
    text = text.replace('known_hosts = "known_hosts"', f'known_hosts = "{tmp_path / "known_hosts"}"')
    text = text.replace('path = "state.db"', f'path = "{tmp_path / "state.db"}"')
    text = text.replace('checkpoints = "checkpoints.jsonl"', f'checkpoints = "{tmp_path / "cp.jsonl"}"')
    config = info.dir / "estate-ssh.toml"
    config.write_text(text)
    res = _cli(
        config,
        "laptop",
        "enrol",
        "127.0.0.1",
        "--port",
        str(sshd.port),
        "--asset-tag",
        "HB-LT-102",
        "--os",
        "linux",
        "--yes",
    )
    assert res.exit_code == 0, res.output
    # The laptop's history: each security update this machine had pending when the captured apt output was
    # made was also pending at a check-in 20 days ago. apt does not say when an update came out: aupctl
    # counts from the first probe that saw it pending.
    from aupctl.records import devices
    from aupctl.state import State

    planted = [p for p, _, _ in patches.apt_security((DATA / "debian-12-apt-get-s-upgrade.txt").read_text())]
    st = State(str(tmp_path / "state.db"))
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).isoformat()
    facts = json.dumps({"os": "linux", "pending_titles": planted[1:]})  # the first one: as if new today
    devices.add_checkin(st, "HB-LT-102", at, "audit", ok=True, facts=facts, findings="[]")
    st.close()
    res = _cli(config, "--format", "json", "estate", "audit")  # the real probe, over SSH
    doc = _envelope(res.output)
    probed = doc["data"]["probed"]
    assert [p["laptop"] for p in probed] == ["HB-LT-102"] and probed[0]["read_from"] == "apt", probed
    checks = {(f["subject"], f["check"]) for f in doc["findings"]}
    assert ("HB-LT-102", "updates-unknown") not in checks
    overdue = [f for f in doc["findings"] if f["check"] == "updates-overdue"]
    if probed[0]["detail"].startswith("no pending security updates"):  # this machine was upgraded since
        assert not overdue
    elif overdue:  # the subject is the device entry's name (joined by the asset tag)
        assert [f["subject"] for f in overdue] == ["HB-LT-102"] and res.exit_code == 1
        assert any(p in overdue[0]["detail"] for p in planted[1:]) and "pending since" in overdue[0]["detail"]
        assert f"{planted[0]} " not in overdue[0]["detail"]  # first seen today: not overdue
    else:  # pending, but none that the history has seen for 14 days
        assert "first seen within 14 days" in probed[0]["detail"]
        assert not any(f" {p}" in probed[0]["detail"] for p in planted[1:6])
    # --no-probe: no SSH at all
    res = _cli(config, "--format", "json", "estate", "audit", "--no-probe")
    assert json.loads(res.output)["data"]["probed"] == []


# Windows LAPS's expiry attribute, as Update-LapsADSchema adds it (attributeID and syntax from Microsoft's
# schema), added offline through Samba's own bindings (schema updates are off over LDAP by default)
LAPS_SCHEMA = """dn: CN=ms-LAPS-PasswordExpirationTime,CN=Schema,CN=Configuration,{base}
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-LAPS-PasswordExpirationTime
lDAPDisplayName: msLAPS-PasswordExpirationTime
adminDisplayName: ms-LAPS-PasswordExpirationTime
attributeID: 1.2.840.113556.1.6.44.1.1
attributeSyntax: 2.5.5.16
oMSyntax: 65
isSingleValued: TRUE
systemOnly: FALSE
searchFlags: 0

dn: CN=Computer,CN=Schema,CN=Configuration,{base}
changetype: modify
add: mayContain
mayContain: msLAPS-PasswordExpirationTime
-
"""
SAMDB_MODIFY = """
import sys
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
lp = LoadParm(); lp.load(sys.argv[1]); lp.set("dsdb:schema update allowed", "true")
SamDB(url=sys.argv[2], session_info=system_session(), lp=lp).modify_ldif(sys.stdin.read())
"""


def test_ad_laps_after_a_schema_extension(ad_estate) -> None:
    """After test_ad_computers_audit (LAPS not in use): the schema extended with Windows LAPS's expiry."""
    info = ad_estate
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
    subprocess.run(
        [python, "-c", SAMDB_MODIFY, str(info.dir / "etc" / "smb.conf"), str(info.dir / "private" / "sam.ldb")],
        input=LAPS_SCHEMA.format(base=info.base_dn),
        check=True,
        capture_output=True,
        text=True,
    )
    from ldap3 import MODIFY_REPLACE

    conn = info.connect(info.admin_dn, info.admin_password)
    conn.check_names = False  # the rootDSE's empty DN
    assert conn.modify("", {"schemaUpdateNow": [(MODIFY_REPLACE, ["1"])]}), conn.result
    now = dt.datetime.now(dt.UTC)
    for name, when in (("HB-W11-24", now + dt.timedelta(days=25)), ("HB-W11-23", now - dt.timedelta(days=60))):
        dn = f"CN={name},CN=Computers,{info.base_dn}"
        assert conn.modify(dn, {"msLAPS-PasswordExpirationTime": [(MODIFY_REPLACE, [_filetime(when)])]}), conn.result
    conn.unbind()
    res = _cli(info.config_path, "--format", "json", "estate", "audit", "--no-probe")
    doc = _envelope(res.output)
    assert doc["data"]["laps_attributes"] == ["msLAPS-PasswordExpirationTime"]
    laps = {(f["subject"], f["check"]) for f in doc["findings"] if f["check"].startswith("laps-")}
    assert ("HB-W11-23", "laps-not-rotated") in laps
    assert ("HB-W10-01", "laps-missing") in laps and ("HB-SRV-2012", "laps-missing") in laps
    assert not {s for s, _ in laps if s in ("HB-W11-24", "HB-PRESTAGED", info.base_dn)}  # rotated; disabled; in use
    rows = {r["name"]: r for r in doc["data"]["computers"]}
    assert rows["HB-W11-24"]["laps_expires"] == (now + dt.timedelta(days=25)).date().isoformat()


def test_help_names_the_options(tmp_path: Path) -> None:
    res = _cli(tmp_path / "none.toml", "estate", "--help")
    assert res.exit_code == 0 and "list" in res.output and "audit" in res.output
    res = _cli(tmp_path / "none.toml", "estate", "audit", "--help")
    assert res.exit_code == 0 and "--stale-days" in res.output and "--no-probe" in res.output
    res = _cli(tmp_path / "none.toml", "estate", "list", "--help")
    assert res.exit_code == 0 and "--os" in res.output and "--stale" in res.output
    res = _cli(tmp_path / "none.toml", "estate", "list", "--bogus")
    assert res.exit_code == 2
