"""The 14-day rule (DfE "Cyber security standards for schools and colleges": security updates
installed within 14 days of release; Cyber Essentials "Security update management"), read from what a
probed laptop prints:

- Windows: the installed hotfixes' InstalledOn dates (Get-HotFix / `wmic qfe`); the newest security update
  against this month's Patch Tuesday (the second Tuesday) plus 14 days;
- Linux: security updates the package manager lists as pending (apt's -security origins, dnf's security
  advisories with their Issued date), older than 14 days since release where it says when;
- macOS: `sw_vers` ProductVersion against the newest release of its major in the OS support table.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .support import Release, mac_major, version_tuple

GRACE_DAYS = 14


def patch_tuesday(year: int, month: int) -> dt.date:
    """The second Tuesday of the month: Microsoft's monthly security release."""
    first = dt.date(year, month, 1)
    first_tuesday = first + dt.timedelta(days=(1 - first.weekday()) % 7)
    return first_tuesday + dt.timedelta(days=7)


def due_release(today: dt.date) -> dt.date:
    """The Patch Tuesday whose updates must be installed by today: this month's once 14 days have
    passed since it, otherwise last month's."""
    this = patch_tuesday(today.year, today.month)
    if today > this + dt.timedelta(days=GRACE_DAYS):
        return this
    prev = today.replace(day=1) - dt.timedelta(days=1)
    return patch_tuesday(prev.year, prev.month)


@dataclass(frozen=True)
class Hotfix:
    id: str
    description: str
    installed_on: dt.date | None

    @property
    def security(self) -> bool:
        return "security" in self.description.lower()


@dataclass
class UpdateState:
    """What one laptop's probe said about the 14-day rule."""

    how: str  # "hotfixes", "apt", "dnf", "sw_vers", or "" when nothing could be read
    overdue: bool = False
    detail: str = ""
    items: list[str] = field(default_factory=list)


# -- Windows --
_DATE_FORMATS = ("%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%Y%m%d")


def _hotfix_date(text: str) -> dt.date | None:
    from ..laptops.probes.facts import parse_when

    s = (text or "").strip()
    if not s:
        return None
    when = parse_when(s)
    if when is not None:
        return when.date()
    s = s.split(" ")[0]
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def hotfixes_from_probe(data: dict) -> list[Hotfix]:
    """From the laptop probe's JSON (windows.ps1: hotfixes = [{id, description, installed_on}])."""
    rows = data.get("hotfixes") or []
    rows = rows if isinstance(rows, list) else [rows]
    return [
        Hotfix(str(r.get("id") or ""), str(r.get("description") or ""), _hotfix_date(str(r.get("installed_on") or "")))
        for r in rows
        if isinstance(r, dict)
    ]


def hotfixes_from_text(output: str) -> list[Hotfix]:
    """From `Get-HotFix` (its table: Source, Description, HotFixID, InstalledBy, InstalledOn) or
    `wmic qfe list brief` (Description, FixComments, HotFixID, InstallDate, InstalledBy, InstalledOn, ...)
    as printed in a console: rows found by their KB number, dates by their m/d/yyyy shape."""
    out = []
    for line in output.replace("\r\n", "\n").split("\n"):
        kb = re.search(r"\bKB\d{6,8}\b", line)
        if not kb:
            continue
        dates = re.findall(r"\b\d{1,2}/\d{1,2}/\d{4}\b", line)
        before = line[: kb.start()]
        desc = (
            "Security Update"
            if re.search(r"security update", before, re.I)
            else ("Hotfix" if re.search(r"hotfix", before, re.I) else "Update")
        )
        out.append(Hotfix(kb.group(0), desc, _hotfix_date(dates[-1]) if dates else None))
    return out


def windows_state(hotfixes: list[Hotfix], today: dt.date) -> UpdateState:
    dated = [h for h in hotfixes if h.installed_on]
    if not dated:
        return UpdateState("", detail="no installed hotfix with a date")
    security = [h for h in dated if h.security]
    pool = security or dated  # some builds list every cumulative update as "Update"
    newest = max(pool, key=lambda h: h.installed_on or dt.date.min)
    due = due_release(today)
    kind = "security update" if security else "update (none is labelled a security update)"
    assert newest.installed_on is not None
    if newest.installed_on >= due:
        return UpdateState("hotfixes", False, f"newest {kind} {newest.id} installed {newest.installed_on}")
    return UpdateState(
        "hotfixes",
        True,
        f"newest {kind} {newest.id} was installed {newest.installed_on}, before Patch Tuesday {due}, "
        f"whose updates were due by {due + dt.timedelta(days=GRACE_DAYS)}",
        [newest.id],
    )


# -- Linux: apt --
_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.+?)(?: \[[^\]]*\])?\)")


def apt_security(output: str) -> list[tuple[str, str, str]]:
    """(package, new version, origins) of the security updates in `apt-get -s upgrade` output: its
    "Inst" lines whose origins include a -security suite (Debian-Security:12/stable-security,
    Ubuntu:22.04/jammy-security)."""
    found = []
    for line in output.replace("\r\n", "\n").split("\n"):
        m = _INST.match(line.strip())
        if m and "-security" in m.group(4).lower():
            found.append((m.group(1), m.group(3), m.group(4)))
    return found


def apt_upgradable_security(output: str) -> list[tuple[str, str, str]]:
    """The same from `apt list --upgradable`: "pkg/jammy-security 1.2-3 amd64 [upgradable from: 1.2-2]"."""
    found = []
    for line in output.replace("\r\n", "\n").split("\n"):
        m = re.match(r"^(\S+?)/(\S+) (\S+) \S+ \[upgradable from", line.strip())
        if m and any(s.endswith("-security") for s in m.group(2).split(",")):
            found.append((m.group(1), m.group(3), m.group(2)))
    return found


def apt_state(pending: list[tuple[str, str, str]], pending_since: dict[str, str], today: dt.date) -> UpdateState:
    """apt does not say when an update was released: a pending security update counts from the first
    probe that saw it pending (the laptop's check-in history), a lower bound of its age."""
    if not pending:
        return UpdateState("apt", False, "no pending security updates (apt)")
    old = []
    for pkg, version, _ in pending:
        since = pending_since.get(pkg)
        if since and (today - dt.date.fromisoformat(since[:10])).days > GRACE_DAYS:
            old.append(f"{pkg} {version} (pending since {since[:10]})")
    if old:
        return UpdateState(
            "apt",
            True,
            f"{len(old)} security update(s) pending for more than {GRACE_DAYS} days: {', '.join(old[:5])}",
            old,
        )
    names = ", ".join(p for p, _, _ in pending[:5])
    return UpdateState(
        "apt", False, f"{len(pending)} security update(s) pending, first seen within {GRACE_DAYS} days: {names}"
    )


# -- Linux: dnf --
def dnf_security(output: str) -> list[tuple[str, dt.date | None]]:
    """(advisory, date) from `dnf updateinfo info --security` (dnf 4: blocks with "Update ID" and
    "Updated", with -v also "Issued"; Issued wins, Updated is a lower bound of the age) or from dnf 5's
    `updateinfo list --security` (an Issued column)."""
    found: dict[str, dt.date | None] = {}
    issued: set[str] = set()
    current: str | None = None
    for line in output.replace("\r\n", "\n").split("\n"):
        m5 = re.match(r"^(\S+)\s+security\s+\S+\s+\S+\s+(\d{4}-\d\d-\d\d)", line.strip())
        if m5:
            found[m5.group(1)] = dt.date.fromisoformat(m5.group(2))
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "update id":
            current = value
            found.setdefault(current, None)
        elif key in ("issued", "updated") and current:
            m = re.match(r"(\d{4}-\d\d-\d\d)", value)
            if m and (key == "issued" or current not in issued):
                found[current] = dt.date.fromisoformat(m.group(1))
                if key == "issued":
                    issued.add(current)
    return list(found.items())


def dnf_state(advisories: list[tuple[str, dt.date | None]], today: dt.date) -> UpdateState:
    if not advisories:
        return UpdateState("dnf", False, "no pending security advisories (dnf)")
    old = [f"{a} (released {d})" for a, d in advisories if d and (today - d).days > GRACE_DAYS]
    if old:
        return UpdateState(
            "dnf",
            True,
            f"{len(old)} security advisory(ies) released more than {GRACE_DAYS} days ago still pending: "
            + ", ".join(old[:5]),
            old,
        )
    return UpdateState(
        "dnf", False, f"{len(advisories)} security advisory(ies) pending, all released within {GRACE_DAYS} days"
    )


# -- macOS --
def sw_vers(output: str) -> dict[str, str]:
    """`sw_vers` -> {"ProductName": "macOS", "ProductVersion": "14.3.1", "BuildVersion": "23D60"}."""
    out = {}
    for line in output.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def macos_state(version: str, releases: list[Release]) -> UpdateState:
    major = mac_major(version)
    rel = next((r for r in releases if r.family == "macos" and r.version == major), None)
    if rel is None or not rel.latest:
        return UpdateState("", detail=f"macOS {version}: its major ({major}) is not in the OS support table")
    if version_tuple(version) >= version_tuple(rel.latest):
        return UpdateState("sw_vers", False, f"macOS {version}, the newest of {rel.name} ({rel.latest})")
    return UpdateState(
        "sw_vers", True, f"macOS {version} is behind {rel.latest}, the newest release of {rel.name}", [rel.latest]
    )


def probe_json(output: str) -> dict:
    """The Windows laptop probe's JSON line (see laptops/probes/windows.py)."""
    from ..laptops.probes.windows import _load

    return _load(output)
