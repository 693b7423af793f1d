"""Parse the macOS probe (macos.sh): sw_vers, softwareupdate -l, fdesetup, XProtect, system_profiler -json."""

from __future__ import annotations

import json
import re
from typing import Any

from .facts import Facts, ProbeError, Software, iso_date, parse_when
from .linux import first, sections

HEADER = "@@aupctl-probe macos"


def sw_vers(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def software_updates(lines: list[str]) -> tuple[int | None, int | None, list[str]]:
    """softwareupdate -l: '* Label: NAME' (macOS 10.15+) or '   * NAME' (older). (count, security, titles)."""
    text = "\n".join(lines)
    if "No new software available" in text:
        return 0, 0, []
    labels = []
    for line in lines:
        m = re.match(r"\s*[*-]\s+(?:Label:\s*)?(.+?)\s*$", line)  # '-' = not recommended (old form)
        if m:
            labels.append(m.group(1))
    if not labels and "Software Update found" not in text:
        return None, None, []  # offline, or an error: the probe cannot tell
    security = sum(1 for label in labels if re.search(r"security|rapid security response|xprotect|mrt", label, re.I))
    return len(labels), security, labels


def filevault(lines: list[str]) -> tuple[bool | None, str | None]:
    text = " ".join(line.strip() for line in lines)
    if not text:
        return None, "fdesetup printed nothing; cannot tell"
    if "FileVault is On" in text:
        if "Deferred enablement" in text:
            return False, "FileVault is waiting to be turned on at the next login (deferred)"
        return True, "FileVault is On"
    if "Encryption in progress" in text:
        return False, "FileVault " + text
    if "FileVault is Off" in text or "Decryption in progress" in text:
        return False, text
    return None, f"fdesetup said: {text[:120]}"


def parse(output: str) -> Facts:
    s = sections(output, HEADER)
    notes: list[str] = []
    vers = sw_vers(s.get("sw_vers", []))
    if not vers:
        notes.append("sw_vers printed nothing")
    pending, security, titles = software_updates(s.get("softwareupdate", []))
    if pending is None:
        notes.append("softwareupdate -l could not check for updates (offline?)")
    encrypted, detail = filevault(s.get("fdesetup", []))

    profile: dict[str, Any] = {}
    raw = "\n".join(s.get("system_profiler", []))
    if raw.strip():
        try:
            profile = json.loads(raw)
        except ValueError as exc:
            raise ProbeError(f"system_profiler's JSON is broken: {exc}") from None
    else:
        notes.append("system_profiler printed nothing")
    hardware = (profile.get("SPHardwareDataType") or [{}])[0]
    software = []
    for app in profile.get("SPApplicationsDataType") or []:
        if not app.get("_name"):
            continue
        system = app.get("obtained_from") == "apple" or str(app.get("path", "")).startswith("/System/")
        software.append(Software(app["_name"], str(app.get("version") or ""), system))
    installs = [
        d
        for d in (
            iso_date(parse_when(h.get("install_date")))
            for h in profile.get("SPInstallHistoryDataType") or []
            if h.get("package_source") == "package_source_apple"
        )
        if d
    ]
    xp_version = first(s, "xprotect-version")
    xp_date = first(s, "xprotect-date")
    return Facts(
        os="macos",
        hostname=first(s, "hostname"),
        serial=hardware.get("serial_number"),
        os_name=vers.get("ProductName"),
        os_version=vers.get("ProductVersion"),
        os_build=vers.get("BuildVersion"),
        last_update=max(installs) if installs else None,
        pending_updates=pending,
        pending_security=security,
        pending_titles=titles,
        # XProtect is built in and cannot be turned off; what matters is how old its definitions are.
        av_product="XProtect" if xp_version else None,
        av_enabled=True if xp_version else None,
        av_realtime=True if xp_version else None,
        av_signature_date=iso_date(parse_when(xp_date)) if xp_date else None,
        av_signature_version=xp_version,
        encrypted=encrypted,
        encryption_detail=detail,
        software=sorted(set(software), key=lambda x: (x.name.lower(), x.version)),
        notes=notes,
    )
