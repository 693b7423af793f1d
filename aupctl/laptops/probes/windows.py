"""Parse the Windows probe (windows.ps1): one line of JSON from PowerShell 5.1 or 7."""

from __future__ import annotations

import json
from typing import Any

from .facts import Facts, ProbeError, Software, iso_date, parse_when

MARKER = '"probe":"aupctl-windows"'


def _load(output: str) -> dict[str, Any]:
    for line in output.replace("\r\n", "\n").lstrip("\ufeff").split("\n"):
        line = line.strip().lstrip("\ufeff")
        if line.startswith("{") and MARKER in line.replace(" ", ""):
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ProbeError(f"the Windows probe's JSON is broken: {exc}") from None
            if not isinstance(data, dict):
                break
            return data
    first = next((x.strip() for x in output.splitlines() if x.strip()), "")
    raise ProbeError(f"the output is not from the aupctl Windows probe (first line: {first[:80]!r})")


def _list(value: Any) -> list[Any]:
    """ConvertTo-Json writes a one-element array as the element itself (PowerShell 5.1): undo that."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _date(value: Any) -> str | None:
    return iso_date(parse_when(value)) if value else None


# Over 80 lines on purpose: one pass over the probe's JSON in the order the script writes it, one Facts
# field at a time; split up, the field-by-field mapping would be scattered across helpers.
def parse(output: str) -> Facts:
    data = _load(output)
    notes = [f"{part}: {why}" for part, why in (data.get("errors") or {}).items()]
    os_ = data.get("os") or {}

    hotfix_dates = [d for d in (_date(h.get("installed_on")) for h in _list(data.get("hotfixes"))) if d]
    last_update = max(hotfix_dates) if hotfix_dates else None

    pending = data.get("pending")
    pend_count = pend_sec = None
    titles: list[str] = []
    if isinstance(pending, dict):
        pend_count = int(pending.get("count") or 0)
        pend_sec = int(pending.get("security") or 0)
        titles = [str(t) for t in _list(pending.get("titles"))]

    product = enabled = realtime = sig_date = sig_version = None
    mp = data.get("defender")
    if isinstance(mp, dict) and mp.get("product_version"):
        passive = "passive" in str(mp.get("running_mode") or "").lower()
        product = "Microsoft Defender Antivirus" + (" (passive)" if passive else "")
        enabled = bool(mp.get("antivirus_enabled")) and not passive
        realtime = bool(mp.get("realtime")) and not passive
        sig_date = _date(mp.get("signature_updated"))
        sig_version = mp.get("signature_version")
    # Another product registered with Security Center (e.g. Sophos) takes over when Defender is passive.
    for av in _list(data.get("av_products")):
        name = str(av.get("name") or "")
        if not name or name.lower().startswith(("windows defender", "microsoft defender")):
            continue
        state = int(av.get("state") or 0)
        # productState: byte 2 = scanner state (0x10 on), byte 3 = signatures (0x00 up to date, 0x10 out of date)
        on = ((state >> 8) & 0xFF) in (0x10, 0x11)
        if enabled is not True or product is None:
            product, enabled, realtime = name, on, on
            sig_date = _date(av.get("updated")) if av.get("updated") else None
            if (state & 0xFF) == 0x10:
                notes.append(f"{name} reports out-of-date signatures")

    encrypted = detail = None
    drive = str(data.get("system_drive") or "C:").upper()
    vols = _list(data.get("bitlocker"))
    sysvol = next((v for v in vols if str(v.get("type")) == "OperatingSystem"), None) or next(
        (v for v in vols if str(v.get("mount", "")).upper() == drive), None
    )
    if sysvol is not None:
        status, protection = str(sysvol.get("status")), str(sysvol.get("protection"))
        encrypted = status == "FullyEncrypted" and protection in ("On", "1")
        detail = f"BitLocker on {sysvol.get('mount')}: {status}, protection {protection}"
        if sysvol.get("percent") not in (None, 100):
            detail += f", {sysvol.get('percent')}% encrypted"
    elif "bitlocker" in (data.get("errors") or {}):
        detail = "Get-BitLockerVolume failed; cannot tell"
    else:
        encrypted, detail = False, f"no BitLocker volume for {drive}"

    software = []
    for item in _list(data.get("software")):
        if not isinstance(item, dict) or not item.get("name"):
            continue
        software.append(Software(str(item["name"]).strip(), str(item.get("version") or ""), bool(item.get("system"))))

    if not os_ and not software and not vols:
        raise ProbeError("the Windows probe returned no facts: " + ("; ".join(notes) or "empty"))
    return Facts(
        os="windows",
        hostname=os_.get("hostname"),
        serial=(str(data["serial"]).strip() or None) if data.get("serial") else None,
        os_name=os_.get("caption"),
        os_version=os_.get("version"),
        os_build=str(os_["build"]) if os_.get("build") else None,
        last_update=last_update,
        pending_updates=pend_count,
        pending_security=pend_sec,
        pending_titles=titles,
        av_product=product,
        av_enabled=enabled,
        av_realtime=realtime,
        av_signature_date=sig_date,
        av_signature_version=sig_version,
        encrypted=encrypted,
        encryption_detail=detail,
        software=sorted(set(software), key=lambda s: (s.name.lower(), s.version)),
        notes=notes,
    )
