"""Parse the Linux probe (linux.sh): os-release, dpkg/rpm, apt/dnf simulated upgrade, ClamAV, LUKS."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from typing import Any

from .facts import Facts, ProbeError, Software, parse_when

HEADER = "@@aupctl-probe linux"
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def sections(output: str, header: str) -> dict[str, list[str]]:
    """Split "@@section NAME" blocks; refuse output that is not from our probe."""
    text = output.replace("\r\n", "\n").lstrip("\ufeff")
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    if start is None:
        first = next((line for line in lines if line.strip()), "")
        raise ProbeError(f"the output is not from the aupctl probe (first line: {first[:80]!r})")
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    ended = False
    for line in lines[start + 1 :]:
        if line.startswith("@@section "):
            current = out.setdefault(line[len("@@section ") :].strip(), [])
        elif line.strip() == "@@end":
            ended = True
            break
        elif current is not None:
            current.append(line)
    if not ended:
        raise ProbeError("the probe's output stops before its end marker (cut off, or the probe was killed)")
    return {k: [line for line in v if line.strip()] for k, v in out.items()}


def os_release(lines: list[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip().isidentifier():
            try:
                parts = shlex.split(value)
            except ValueError:
                parts = [value.strip("\"'")]
            values[key.strip()] = parts[0] if parts else ""
    return values


def clamav_version(lines: list[str]) -> tuple[str | None, str | None, str | None]:
    """'ClamAV 1.0.7/27100/Fri Nov 20 08:26:00 2026' -> (product, signature version, signature date)."""
    for line in lines:
        m = re.match(r"ClamAV ([^/\s]+)(?:/(\d+)/(.+))?", line.strip())
        if m:
            when = None
            if m.group(3):
                try:
                    when = dt.datetime.strptime(m.group(3).strip(), "%a %b %d %H:%M:%S %Y").date().isoformat()
                except ValueError:
                    when = None
            return f"ClamAV {m.group(1)}", m.group(2), when
    return None, None, None


def cvd_header_date(lines: list[str]) -> str | None:
    """The header of daily.cvd/cld: 'ClamAV-VDB:20 Nov 2026 08-26 -0500:27100:...'."""
    for line in lines:
        m = re.search(r"ClamAV-VDB:(\d{1,2}) (\w{3}) (\d{4})", line)
        if m and m.group(2) in MONTHS:
            return dt.date(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1))).isoformat()
    return None


def freshclam_log_date(lines: list[str]) -> str | None:
    """'Sat Nov 21 08:00:01 2026 -> daily.cld database is up-to-date (version: 27100, ...)'."""
    for line in reversed(lines):
        m = re.match(r"\w{3} (\w{3}) +(\d{1,2}) [\d:]{8} (\d{4})", line.strip())
        if m and m.group(1) in MONTHS:
            return dt.date(int(m.group(3)), MONTHS[m.group(1)], int(m.group(2))).isoformat()
    return None


def luks_of_root(lsblk_lines: list[str], root_source: list[str]) -> tuple[bool | None, str]:
    """Is the block device holding / (or any device under it) a LUKS/crypt device?"""
    if not lsblk_lines:
        return None, "lsblk printed nothing; cannot tell"
    try:
        tree = json.loads("\n".join(lsblk_lines))
    except ValueError:
        return None, "lsblk's JSON could not be read; cannot tell"

    def walk(nodes: list[dict[str, Any]], chain: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        for node in nodes or []:
            points = node.get("mountpoints") or [node.get("mountpoint")]
            if "/" in points:
                return [*chain, node]
            found = walk(node.get("children") or [], [*chain, node])
            if found:
                return found
        return None

    chain = walk(tree.get("blockdevices") or [], [])
    if chain is None:
        src = root_source[0].split()[0] if root_source else "?"
        return None, f"/ is on {src}, which lsblk does not list (a container or network root?); cannot tell"
    for node in chain:
        if node.get("fstype") == "crypto_LUKS" or node.get("type") == "crypt":
            return True, f"/ is on {chain[-1].get('name')}, inside LUKS device {node.get('name')}"
    return False, f"/ is on {chain[-1].get('name')} ({chain[-1].get('fstype') or 'no fstype'}), not inside LUKS"


def first(s: dict[str, list[str]], key: str) -> str | None:
    lines = s.get(key) or []
    return lines[0].strip() if lines else None


# Over 80 lines on purpose: one pass over the probe's sections in the order the script prints them, one
# Facts field at a time; split up, the section-by-section mapping would be scattered across helpers.
def parse(output: str) -> Facts:
    s = sections(output, HEADER)
    notes: list[str] = []
    rel = os_release(s.get("os-release", []))
    if not rel:
        notes.append("no /etc/os-release")

    software: list[Software] = []
    manual = {line.strip().split(":")[0] for line in s.get("manual", [])}
    for line in s.get("packages-dpkg", []):
        parts = line.split("\t")
        if len(parts) < 3:
            raise ProbeError(f"unexpected dpkg-query line {line[:80]!r}")
        if parts[0].strip().startswith("i"):
            name = parts[1].split(":")[0]
            software.append(Software(name, parts[2], system=bool(manual) and name not in manual))
    for line in s.get("packages-rpm", []):
        name, _, version = line.partition("\t")
        software.append(Software(name, version))

    pending = security = None
    titles: list[str] = []
    if "pending-apt" in s:
        inst = [line for line in s["pending-apt"] if line.startswith("Inst ")]
        pending = len(inst)
        security = sum(1 for line in inst if "-security" in line.lower())
        titles = [line.split()[1] for line in inst]
    elif "pending-dnf" in s:
        lines = s["pending-dnf"]
        code = next((line.split()[1] for line in lines if line.startswith("@@exit")), "")
        rows = [line for line in lines if not line.startswith("@@exit") and len(line.split()) == 3]
        if code in ("0", "100"):
            pending = len(rows) if code == "100" else 0
            titles = [r.split()[0] for r in rows]
            security = sum(1 for line in s.get("pending-dnf-security", []) if len(line.split()) >= 3)
        else:
            notes.append(f"dnf check-update failed (exit {code or '?'})")

    last_update = None
    last = s.get("last-update", [])
    if last:
        last_update = last[0].split()[0] if re.match(r"\d{4}-\d\d-\d\d", last[0]) else None
        if last_update is None:  # rpm -qa --last: 'name-ver   Tue 14 Nov 2026 10:01:02 AM GMT'
            m = re.search(r"(\d{1,2}) (\w{3}) (\d{4})", last[0])
            if m and m.group(2) in MONTHS:
                last_update = dt.date(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1))).isoformat()
    if last_update is None and s.get("status-mtime"):
        when = parse_when(s["status-mtime"][0])
        last_update = when.date().isoformat() if when else None

    product, sig_version, sig_date = clamav_version(s.get("clamav-version", []))
    sig_date = sig_date or cvd_header_date(s.get("clamav-db", [])) or freshclam_log_date(s.get("freshclam-log", []))
    running = {line.strip() for line in s.get("clamav-running", [])}
    av_enabled: bool | None = None
    av_realtime: bool | None = None
    if product or sig_date:
        product = product or "ClamAV"
        av_enabled = "clamd" in running or "clamonacc" in running or None
        av_realtime = "clamonacc" in running
        if av_enabled is None:
            av_enabled = False
            notes.append("ClamAV is installed but clamd is not running (on-demand scans only)")

    encrypted, detail = luks_of_root(s.get("lsblk", []), s.get("root-source", []))
    return Facts(
        os="linux",
        hostname=first(s, "hostname"),
        serial=first(s, "serial"),
        os_name=rel.get("NAME") or rel.get("PRETTY_NAME"),
        os_version=rel.get("VERSION") or rel.get("VERSION_ID"),
        os_build=first(s, "kernel"),
        last_update=last_update,
        pending_updates=pending,
        pending_security=security,
        pending_titles=titles,
        av_product=product,
        av_enabled=av_enabled,
        av_realtime=av_realtime,
        av_signature_date=sig_date,
        av_signature_version=sig_version,
        encrypted=encrypted,
        encryption_detail=detail,
        software=software,
        notes=notes,
    )
