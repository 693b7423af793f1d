"""The Linux probe's parser: pieces the real-SSH test cannot reach on this machine (ClamAV, LUKS, dnf)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aupctl.laptops.probes import ProbeError, parse, script
from aupctl.laptops.probes.linux import clamav_version, cvd_header_date, freshclam_log_date, luks_of_root


def probe(*sections: tuple[str, str]) -> str:
    body = "".join(f"@@section {name}\n{text}\n" for name, text in sections)
    return f"@@aupctl-probe linux 1\n{body}@@end\n"


def test_clamav_dates() -> None:
    assert clamav_version(["ClamAV 1.0.7/27100/Fri Nov 20 08:26:00 2026"]) == ("ClamAV 1.0.7", "27100", "2026-11-20")
    assert clamav_version(["ClamAV 0.103.11"]) == ("ClamAV 0.103.11", None, None)
    assert (
        cvd_header_date(
            ["/var/lib/clamav/daily.cld", "ClamAV-VDB:19 Nov 2026 08-26 -0500:27099:2071042:90:X:X:raynman:1"]
        )
        == "2026-11-19"
    )
    line = "Sat Nov 21 08:00:01 2026 -> daily.cld database is up-to-date (version: 27100, sigs: 2071042, f-level: 90)"
    assert freshclam_log_date([line]) == "2026-11-21"


def test_luks_tree() -> None:
    tree = {
        "blockdevices": [
            {
                "name": "nvme0n1",
                "type": "disk",
                "fstype": None,
                "mountpoint": None,
                "children": [
                    {"name": "nvme0n1p1", "type": "part", "fstype": "vfat", "mountpoint": "/boot/efi"},
                    {
                        "name": "nvme0n1p3",
                        "type": "part",
                        "fstype": "crypto_LUKS",
                        "mountpoint": None,
                        "children": [
                            {
                                "name": "nvme0n1p3_crypt",
                                "type": "crypt",
                                "fstype": "LVM2_member",
                                "mountpoint": None,
                                "children": [{"name": "vg-root", "type": "lvm", "fstype": "ext4", "mountpoint": "/"}],
                            }
                        ],
                    },
                ],
            }
        ]
    }
    enc, why = luks_of_root(json.dumps(tree).splitlines(), ["/dev/mapper/vg-root ext4"])
    assert enc is True and "nvme0n1p3" in why
    plain = {
        "blockdevices": [
            {
                "name": "sda",
                "type": "disk",
                "children": [{"name": "sda1", "type": "part", "fstype": "ext4", "mountpoints": ["/"]}],
            }
        ]
    }
    assert luks_of_root([json.dumps(plain)], [])[0] is False
    assert luks_of_root([json.dumps({"blockdevices": []})], ["overlay overlay"]) == (
        None,
        "/ is on overlay, which lsblk does not list (a container or network root?); cannot tell",
    )


def test_dnf_machine() -> None:
    out = probe(
        ("os-release", 'NAME="Fedora Linux"\nVERSION="39 (Workstation Edition)"\nID=fedora'),
        ("packages-rpm", "bash\t5.2.21-1.fc39\nfirefox\t123.0-1.fc39"),
        ("last-update", "firefox-123.0-1.fc39.x86_64              Tue 12 Mar 2024 10:01:02 AM GMT"),
        (
            "pending-dnf",
            "\nkernel.x86_64    6.7.9-200.fc39    updates\nopenssl.x86_64   1:3.1.1-4.fc39    updates\n@@exit 100",
        ),
        ("pending-dnf-security", "FEDORA-2024-1a2b3c4d5e important/Sec.  openssl-1:3.1.1-4.fc39.x86_64"),
        ("clamav-version", "ClamAV 1.0.5/27210/Wed Mar 13 08:25:44 2024"),
        ("clamav-running", "clamd\nclamonacc"),
    )
    f = parse("linux", out)
    assert (f.os_name, f.os_version) == ("Fedora Linux", "39 (Workstation Edition)")
    assert (f.pending_updates, f.pending_security, f.pending_titles) == (2, 1, ["kernel.x86_64", "openssl.x86_64"])
    assert f.last_update == "2024-03-12"
    assert (f.av_product, f.av_enabled, f.av_realtime, f.av_signature_date) == (
        "ClamAV 1.0.5",
        True,
        True,
        "2024-03-13",
    )
    assert [s.name for s in f.software] == ["bash", "firefox"]


def test_apt_security_and_manual_packages() -> None:
    out = probe(
        ("packages-dpkg", "ii \tbash\t5.2.15-2+b8\nrc \told-thing\t1.0\nii \tfirefox-esr:amd64\t115.9.0esr-1~deb12u1"),
        ("manual", "firefox-esr"),
        (
            "pending-apt",
            "Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/stable [amd64])\n"
            "Inst libssl3 [3.0.11-1] (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])",
        ),
        ("clamav-version", "ClamAV 1.0.5/27210/Wed Mar 13 08:25:44 2024"),
    )
    f = parse("linux", out)
    assert [(s.name, s.system) for s in f.software] == [("bash", True), ("firefox-esr", False)]  # rc = removed
    assert (f.pending_updates, f.pending_security) == (2, 1)
    assert (f.av_enabled, f.av_realtime) == (False, False)
    assert any("clamd is not running" in n for n in f.notes)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "not from the aupctl probe"),
        ("@@aupctl-probe linux 1\n@@section hostname\nlaptop\n", "end marker"),
        (probe(("packages-dpkg", "garbage without tabs")), "unexpected dpkg-query line"),
        ("\x00\xff\x1b[31m junk", "not from the aupctl probe"),
    ],
)
def test_unreadable(text: str, why: str) -> None:
    with pytest.raises(ProbeError, match=why):
        parse("linux", text)


def test_script_runs_here_and_parses() -> None:
    """The packaged script under /bin/sh on this machine (the SSH tests run it through sshd too)."""
    res = subprocess.run(["/bin/sh", "-s"], input=script("linux"), capture_output=True, text=True, timeout=120)
    f = parse("linux", res.stdout)
    assert f.hostname and f.os_name and f.pending_updates is not None
    assert f.software and Path("/var/lib/dpkg/status").exists() == any(s.name == "dpkg" for s in f.software)
