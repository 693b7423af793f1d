"""Licence report: seats used from each laptop's latest check-in, expiry, unlicensed software (policy 6.7)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cli_helpers import payload
from laptop_env import run_cli

from aupctl.config import load
from aupctl.laptops import inventory
from aupctl.laptops.licences import report
from aupctl.laptops.probes.facts import Facts, Software
from aupctl.state import State

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIE1ww1WyMDlwZhHrKSHlrmY9+dmnYCSjL8pW7GY0iG5G"
FP = "SHA256:" + "B" * 43


def write_config(root: Path, today: dt.date, extra: str = "") -> Path:
    soon = (today + dt.timedelta(days=30)).isoformat()
    later = (today + dt.timedelta(days=400)).isoformat()
    gone = (today - dt.timedelta(days=1)).isoformat()
    cfg = root / "aupctl.toml"
    cfg.write_text(
        f"""
[school]
name = "Test"
aup_version = "1"
[directory]
flavour = "openldap"
url = "ldap://127.0.0.1:9"
bind_dn = "cn=x"
base_dn = "dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[laptops]
needs_licence = ["Adobe Photoshop*", "Microsoft Office*", "SMART Notebook*"]
[[licences]]
product = "Microsoft Office 2021"
match = ["Microsoft Office*2021*"]
seats = 2
expires = "{later}"
[[licences]]
product = "SMART Notebook"
match = "SMART Notebook*"
seats = 5
expires = "{soon}"
[[licences]]
product = "Old CAD"
match = ["OldCAD*"]
seats = 10
expires = "{gone}"
[state]
path = "state.db"
{extra}"""
    )
    return cfg


def laptop(state: State, cfg, tag: str, *programs: str, probed: bool = True) -> None:
    inventory.add(
        state,
        cfg,
        tag=tag,
        host=f"{tag}.school.test",
        port=22,
        os_name="windows",
        key_type="ssh-ed25519",
        key_b64=KEY,
        fp=FP,
    )
    if probed:
        facts = Facts(os="windows", software=[Software(p, "1.0") for p in programs])
        inventory.record(state, cfg, inventory.get(state, tag), "checkin", facts, [])


def test_report(tmp_path: Path) -> None:
    today = dt.date.today()
    path = write_config(tmp_path, today)
    cfg = load(str(path))
    state = State(tmp_path / "state.db")
    laptop(
        state, cfg, "L1", "Microsoft Office Professional Plus 2021 - en-gb", "SMART Notebook", "Adobe Photoshop 2024"
    )
    laptop(state, cfg, "L2", "Microsoft Office LTSC Standard 2021", "Microsoft Office LTSC Standard 2021 Proofing")
    laptop(state, cfg, "L3", "microsoft office home and business 2021")  # globs ignore case
    laptop(state, cfg, "L4", "OldCAD 9")
    laptop(state, cfg, "L5", probed=False)
    # an older check-in does not count: only each laptop's latest
    inventory.record(
        state, cfg, inventory.get(state, "L4"), "checkin", Facts(os="windows", software=[Software("OldCAD 9")]), []
    )
    inventory.record(state, cfg, inventory.get(state, "L4"), "audit", Facts(os="windows", software=[]), [])

    rep = report(cfg, state, today)
    rows = {r["product"]: r for r in rep.rows}
    assert (rows["Microsoft Office 2021"]["used"], rows["Microsoft Office 2021"]["free"]) == (3, -1)  # L2 counts once
    assert rows["Microsoft Office 2021"]["laptops"] == ["L1", "L2", "L3"]
    assert rows["Microsoft Office 2021"]["status"] == "over-allocated"
    assert (rows["SMART Notebook"]["used"], rows["SMART Notebook"]["status"], rows["SMART Notebook"]["days_left"]) == (
        1,
        "expiring",
        30,
    )
    assert (rows["Old CAD"]["used"], rows["Old CAD"]["status"]) == (0, "expired")
    checks = sorted((f.check, f.subject, f.clause) for f in rep.findings)
    assert checks == [
        ("licence-expiring", "licence SMART Notebook", "6.7"),
        ("licence-over-allocated", "licence Microsoft Office 2021", "6.7"),
        ("software-unlicensed", "Adobe Photoshop 2024", "6.7"),
    ]
    assert rep.laptops_without_facts == ["L5"] and rep.laptops_counted == 4
    assert rep.unlicensed == [{"software": "Adobe Photoshop 2024", "laptops": ["L1"]}]
    # an expired licence still installed somewhere is a finding
    laptop(state, cfg, "L6", "OldCAD 10")
    assert any(f.check == "licence-expired" for f in report(cfg, state, today).findings)


def test_cli(tmp_path: Path) -> None:
    today = dt.date.today()
    path = write_config(tmp_path, today)
    assert "seats used against seats owned" in run_cli(path, "licence", "report", "--help").output.lower()
    res = run_cli(path, "licence", "report")
    assert res.exit_code == 1 and "SMART Notebook" in res.output and "licence-expiring" in res.output
    res = run_cli(path, "--format", "json", "licence", "report")
    data = payload(res.output)
    assert set(data) == {"licences", "unlicensed", "findings", "laptops_counted", "laptops_without_facts"}
    assert [r["product"] for r in data["licences"]] == ["Microsoft Office 2021", "SMART Notebook", "Old CAD"]
    # no licences configured, nothing installed: clean, exit 0
    clean = tmp_path / "clean"
    clean.mkdir()
    text = path.read_text().split("[[licences]]")[0] + '[state]\npath = "state.db"\n'
    (clean / "aupctl.toml").write_text(text)
    res = run_cli(clean / "aupctl.toml", "licence", "report")
    assert res.exit_code == 0 and "licences in order" in res.output
    # bad config: names the key, exit 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "aupctl.toml").write_text(path.read_text().replace("seats = 2", 'seats = "two"'))
    res = run_cli(bad / "aupctl.toml", "licence", "report")
    assert res.exit_code == 2 and "licences[0].seats" in res.output
