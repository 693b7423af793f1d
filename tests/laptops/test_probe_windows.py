"""The Windows probe's parser on reconstructed PowerShell output (tests/data/probes/README.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aupctl.config import Laptops
from aupctl.laptops import checks
from aupctl.laptops.probes import ProbeError, parse, script

DATA = Path(__file__).resolve().parent.parent / "data" / "probes"


def load(name: str):
    return parse("windows", (DATA / name).read_text(encoding="utf-8"))


def test_windows_11_all_facts() -> None:
    f = load("windows-11-pro-23h2.json")
    assert (f.os, f.hostname, f.serial) == ("windows", "HB-LT-0042", "5CG3281XYZ")
    assert (f.os_name, f.os_version, f.os_build) == ("Microsoft Windows 11 Pro", "10.0.22631", "22631")
    assert f.last_update == "2024-03-12"  # the newest hotfix; one with no date is ignored
    assert (f.pending_updates, f.pending_security) == (2, 1)
    assert f.pending_titles[0].endswith("(KB5035853)")
    assert (f.av_product, f.av_enabled, f.av_realtime) == ("Microsoft Defender Antivirus", True, True)
    assert (f.av_signature_date, f.av_signature_version) == ("2024-03-13", "1.407.334.0")
    assert f.encrypted is True and "FullyEncrypted" in f.encryption_detail  # C:, not the data volume D:
    names = {s.name for s in f.software}
    assert "Steam" in names and "Google Chrome" in names
    assert {s.name for s in f.software if s.system} == {
        "Microsoft Update Health Tools",
        "Intel(R) Management Engine Components",
    }
    assert f.notes == []


def test_windows_10_ps51_collapsed_arrays_passive_defender_and_offline_update_search() -> None:
    f = load("windows-10-edu-22h2-ps51.json")
    assert f.hostname == "HB-LT-0107" and f.os_build == "19045"
    assert f.last_update == "2024-01-10"  # a single hotfix, collapsed to an object
    assert f.pending_updates is None and f.pending_security is None
    assert any("0x8024402C" in n for n in f.notes)
    # Defender is passive; Sophos (Security Center productState 266240) is the working antivirus
    assert (f.av_product, f.av_enabled, f.av_realtime) == ("Sophos Anti-Virus", True, True)
    assert f.av_signature_date == "2024-03-12"
    assert f.encrypted is False and "FullyDecrypted" in f.encryption_detail


def test_windows_findings_cite_clauses() -> None:
    cfg = Laptops(approved_software=["Microsoft*", "Google Chrome", "Mozilla Firefox*", "SMART*", "Zoom*", "VLC*"])
    today = dt.date(2024, 3, 14)
    found = {x.check: x for x in checks.from_facts("HB-LT-0042", load("windows-11-pro-23h2.json"), cfg, today)}
    assert set(found) == {"pending-updates", "software-not-approved"}
    assert found["pending-updates"].clause == "6.7" and found["pending-updates"].severity == "high"
    assert found["software-not-approved"].clause == "1.4, 6.7"
    assert (
        "Steam" in found["software-not-approved"].detail
        and "without permission" in found["software-not-approved"].detail
    )
    found = {x.check: x for x in checks.from_facts("HB-LT-0107", load("windows-10-edu-22h2-ps51.json"), cfg, today)}
    assert found["not-encrypted"].clause == "6.8"
    assert found["updates-unknown"].clause == "6.7"
    assert "uTorrent" in found["software-not-approved"].detail and "SIMS" in found["software-not-approved"].detail
    assert "signatures-old" not in found  # Sophos's are two days old
    # a month later the same signatures are old
    later = {x.check for x in checks.from_facts("x", load("windows-10-edu-22h2-ps51.json"), cfg, dt.date(2024, 4, 14))}
    assert "signatures-old" in later


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "not from the aupctl Windows probe"),
        ("'powershell.exe' is not recognized as an internal or external command", "not from the aupctl Windows probe"),
        ('{"probe":"aupctl-windows","version":1,"os":{', "JSON is broken"),
        ('{"probe":"aupctl-windows","version":1,"errors":{"os":"Access denied"}}', "no facts: os: Access denied"),
        (
            '{"probe":"aupctl-windows","os":{"caption":"W"},"hotfixes":[{"installed_on":"yesterday"}],"pending":{"count":"x"}}',
            "cannot read",
        ),
    ],
)
def test_windows_unreadable_output_is_a_probe_error(text: str, why: str) -> None:
    with pytest.raises(ProbeError, match=why):
        parse("windows", text)


def test_script_is_packaged_and_prints_one_json_document() -> None:
    text = script("windows")
    for needle in (
        "Get-CimInstance Win32_OperatingSystem",
        "Win32_BIOS",
        "Get-HotFix",
        "Get-MpComputerStatus",
        "Get-BitLockerVolume",
        "WOW6432Node",
        "Microsoft.Update.Session",
        "ConvertTo-Json",
    ):
        assert needle in text
