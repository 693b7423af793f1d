"""The macOS probe's parser on reconstructed output (tests/data/probes/README.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aupctl.config import Laptops
from aupctl.laptops import checks
from aupctl.laptops.probes import ProbeError, parse
from aupctl.laptops.probes.macos import filevault, software_updates

DATA = Path(__file__).resolve().parent.parent / "data" / "probes"


def load(name: str):
    return parse("macos", (DATA / name).read_text(encoding="utf-8"))


def test_sonoma() -> None:
    f = load("macos-14-sonoma.txt")
    assert (f.hostname, f.serial) == ("HB-MB-0042", "C02HB0042XYZ")
    assert (f.os_name, f.os_version, f.os_build) == ("macOS", "14.3.1", "23D60")
    assert (f.pending_updates, f.pending_security) == (3, 1)
    assert f.pending_titles[0] == "macOS Sonoma 14.4-23E214"
    assert f.last_update == "2024-03-06"  # Apple's newest install; Microsoft Word's does not count
    assert (f.av_product, f.av_enabled, f.av_signature_version, f.av_signature_date) == (
        "XProtect",
        True,
        "2187",
        "2024-03-06",
    )
    assert f.encrypted is True
    apps = {s.name: s for s in f.software}
    assert apps["Safari"].system and apps["Calculator"].system and not apps["Minecraft"].system
    assert apps["Helper"].version == ""  # an app without a version is still listed


def test_monterey() -> None:
    f = load("macos-12-monterey.txt")
    assert f.hostname == "Mrs Smith's MacBook Pro" and f.serial == "FVFHB0107ABC"
    assert (f.pending_updates, f.pending_security) == (0, 0)
    assert f.encrypted is False
    cfg = Laptops(approved_software=["Zoom*"], max_signature_age_days=7)
    found = {x.check for x in checks.from_facts("MB-0107", f, cfg, dt.date(2024, 3, 14))}
    assert found == {"not-encrypted", "signatures-old"}


def test_softwareupdate_forms() -> None:
    old = [
        "Software Update Tool",
        "Software Update found the following new or updated software:",
        "   * iPhoto-2.0",
        "\tiPhoto, 2.0, 34100K [recommended]",
        "   - iCal-1.0.2",
        "\tiCal, 1.0.2, 6520K",
        "   * SecurityUpd2019-004-10.14.6",
        "\tSecurity Update 2019-004, 10.14.6, 1650000K [recommended] [restart]",
    ]
    assert software_updates(old) == (3, 1, ["iPhoto-2.0", "iCal-1.0.2", "SecurityUpd2019-004-10.14.6"])
    assert software_updates(["Software Update Tool", "", "Finding available software"]) == (None, None, [])


def test_filevault_states() -> None:
    assert filevault(["FileVault is On."]) == (True, "FileVault is On")
    assert filevault(["FileVault is Off."])[0] is False
    assert filevault(["FileVault is On.", "Deferred enablement appears to be active for user 'jbloggs'."])[0] is False
    assert filevault(["Encryption in progress: Percent completed = 45.2"])[0] is False
    assert filevault([]) == (None, "fdesetup printed nothing; cannot tell")


@pytest.mark.parametrize(
    "text, why",
    [
        ("Last login: Tue Mar 12\nWelcome!", "not from the aupctl probe"),
        ("@@aupctl-probe macos 1\n@@section sw_vers\nProductName: macOS\n", "end marker"),
        ('@@aupctl-probe macos 1\n@@section system_profiler\n{"SPApp\n@@end\n', "system_profiler's JSON is broken"),
    ],
)
def test_unreadable(text: str, why: str) -> None:
    with pytest.raises(ProbeError, match=why):
        parse("macos", text)
