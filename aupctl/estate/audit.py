"""`estate audit` and `estate list`: the directory's computers, joined with the laptop register, against
the OS support table, staleness, LAPS and (for laptops enrolled for SSH) the 14-day patch rule."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..findings import Finding, sort_findings
from ..records import devices as device_records
from ..state import State
from . import computers as comp
from . import patches, support
from .computers import Computer
from .support import Release

DFE = "DfE cyber security standards for schools and colleges"
DFE_DEVICES = f"{DFE}: network devices should be known, recorded and kept up to date"
DFE_ADMIN = f"{DFE}: administrator accounts only for approved activities, unique local passwords"
LAG_DAYS = 14  # lastLogonTimestamp replicates with up to 14 days' lag (ms-DS-Logon-Time-Sync-Interval)


@dataclass
class Laptop:
    """A laptop from the register, with what its latest check-in said (for the join)."""

    tag: str
    host: str
    port: int
    os: str
    device: Any  # laptops.inventory.Device
    hostname: str | None = None
    serial: str | None = None


@dataclass
class EstateReport:
    computers: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    laps: list[str] = field(default_factory=list)  # LAPS expiry attributes the schema has
    probed: list[dict[str, Any]] = field(default_factory=list)


def releases(cfg: Config) -> list[Release]:
    return support.table(cfg.estate.os_support)


def laptops(state: State) -> list[Laptop]:
    from ..laptops import inventory

    out = []
    for d in inventory.devices(state):
        last = inventory.latest(state, d.tag, probed=True)
        facts = last.facts if last else None
        out.append(
            Laptop(
                d.tag,
                d.host,
                d.port,
                d.os,
                d,
                (facts.hostname or "").split(".")[0].casefold() or None if facts else None,
                (facts.serial or "").strip().casefold() or None if facts else None,
            )
        )
    return out


def join(computers: list[Computer], fleet: list[Laptop]) -> dict[str, Laptop]:
    """Computer DN -> its laptop in the register, matched by serial, then by name (tag or hostname)."""
    by_serial = {lap.serial: lap for lap in fleet if lap.serial}
    by_name: dict[str, Laptop] = {}
    for lap in fleet:
        by_name.setdefault(lap.tag.casefold(), lap)
        if lap.hostname:
            by_name.setdefault(lap.hostname, lap)
    out: dict[str, Laptop] = {}
    for c in computers:
        found = by_serial.get((c.serial or "").strip().casefold()) if c.serial else None
        if found is None:
            found = by_name.get(c.name.casefold()) or by_name.get((c.dns_host or "").split(".")[0].casefold())
        if found is not None:
            out[c.dn] = found
    return out


def _days(since: dt.datetime | None, now: dt.datetime) -> int | None:
    return None if since is None else max(0, (now - since).days)


class Matcher:
    """support.match, remembered per (OS, version): thousands of computers share a handful of OS strings."""

    def __init__(self, rels: list[Release]) -> None:
        self.rels = rels
        self.seen: dict[tuple[str, str], Release | None] = {}

    def __call__(self, os_name: str, version: str) -> Release | None:
        key = (os_name, version)
        if key not in self.seen:
            self.seen[key] = support.match(self.rels, os_name, version)
        return self.seen[key]


def row(
    c: Computer, rels: list[Release] | Matcher, lap: Laptop | None, now: dt.datetime, stale_days: int
) -> dict[str, Any]:
    rel = rels(c.os, c.os_version) if isinstance(rels, Matcher) else support.match(rels, c.os, c.os_version)
    end = rel.end_for(c.os) if rel else None
    seen = _days(c.last_seen or c.password_set, now)  # never logged on: its machine password's age
    return {
        "name": c.name,
        "os": c.os or None,
        "version": c.os_version or None,
        "release": rel.name if rel else None,
        "supported_until": end.isoformat() if end else None,
        "support": ("unknown" if rel is None else "ended" if end and end < now.date() else "supported"),
        "last_seen": c.last_seen.date().isoformat() if c.last_seen else None,
        "not_seen_days": seen,
        "stale": c.enabled is not False and seen is not None and seen >= stale_days,
        "enabled": c.enabled,
        "password_age_days": _days(c.password_set, now),
        "laps_expires": c.laps_expiry.date().isoformat() if c.laps_expiry else None,
        "laptop": lap.tag if lap else None,
        "ou": c.ou,
        "dn": c.dn,
    }


def _who(lap: Laptop | None) -> str:
    if lap is None:
        return ""
    holder = lap.device.assigned_to
    return f" (laptop {lap.tag}" + (f", with {holder})" if holder else ")")


def findings_for(
    c: Computer,
    r: dict[str, Any],
    lap: Laptop | None,
    laps: list[str],
    stale_days: int,
    now: dt.datetime,
    laps_grace: int,
) -> list[Finding]:
    found: list[Finding] = []
    who = _who(lap)
    if r["support"] == "ended" and c.enabled is not False:
        found.append(
            Finding(
                c.name,
                "os-unsupported",
                "6.7",
                "high",
                f"{r['release']} ({c.os} {c.os_version}".rstrip() + f") has had no security updates since "
                f"{r['supported_until']}{who}: upgrade or replace it, or take it off the network "
                f"({DFE_DEVICES}; Cyber Essentials: software must be supported and licensed)",
            )
        )
    if c.enabled is not False:
        seen = r["not_seen_days"]
        if r["stale"] and seen is not None:
            if c.last_seen is not None:
                at_least = max(0, seen - LAG_DAYS)
                why = (
                    f"not seen for at least {at_least} days (last logon recorded {r['last_seen']}; the directory "
                    f"updates it up to {LAG_DAYS} days late)"
                )
            else:
                why = f"never logged on, and its machine password is {seen} days old"
            found.append(
                Finding(
                    c.name,
                    "stale-computer",
                    "1.4",
                    "medium",
                    f"{why} but still enabled{who}: find it and bring it in, or disable it "
                    f"({DFE_DEVICES}; Cyber Essentials: devices in scope are known and managed)",
                )
            )
    if laps and c.enabled is not False and c.os.lower().startswith("windows") and not c.domain_controller:
        if c.laps_expiry is None:
            found.append(
                Finding(
                    c.name,
                    "laps-missing",
                    "6.7",
                    "medium",
                    f"no LAPS password expiry ({' / '.join(laps)}){who}: its local administrator password is not "
                    f"managed by LAPS, so it may be the same as on other computers; apply the LAPS policy to its OU "
                    f"({DFE_ADMIN}; Cyber Essentials: change default passwords, unique admin passwords)",
                )
            )
        elif c.laps_expiry < now - dt.timedelta(days=laps_grace):
            found.append(
                Finding(
                    c.name,
                    "laps-not-rotated",
                    "6.7",
                    "medium",
                    f"its LAPS password expired {c.laps_expiry.date()} ({c.laps_attribute}) and has not been "
                    f"rotated{who}: the computer has not applied the policy (offline, or the LAPS client "
                    f"broken) ({DFE_ADMIN})",
                )
            )
    return found


def laps_not_in_use(cfg: Config) -> Finding:
    return Finding(
        cfg.directory.base_dn,
        "laps-not-in-use",
        "6.7",
        "medium",
        "the directory's schema has no LAPS attributes (msLAPS-PasswordExpirationTime or the legacy "
        "ms-Mcs-AdmPwdExpirationTime): local administrator passwords are not managed centrally and may be the "
        "same on every computer; deploy Windows LAPS (docs/estate.md) "
        f"({DFE_ADMIN}; Cyber Essentials: unique, non-default admin passwords)",
    )


def read(cfg: Config, directory: Any) -> tuple[list[Computer], list[str]]:
    laps = comp.laps_attributes(directory)
    return comp.read(cfg, directory, laps), laps


def listing(
    cfg: Config,
    directory: Any,
    state: State,
    *,
    os_glob: str | None = None,
    stale_only: bool = False,
    stale_days: int | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.UTC)
    stale_days = stale_days or cfg.estate.stale_days
    computers, _ = read(cfg, directory)
    rels = releases(cfg)
    joined = join(computers, laptops(state))
    match = Matcher(rels)
    rows = [row(c, match, joined.get(c.dn), now, stale_days) for c in computers]
    if os_glob:
        want = os_glob.casefold()
        rows = [
            r
            for r in rows
            if fnmatch.fnmatchcase(" ".join(x for x in (r["os"], r["version"]) if x).casefold(), want)
            or fnmatch.fnmatchcase((r["os"] or "").casefold(), want)
            or fnmatch.fnmatchcase((r["release"] or "").casefold(), want)
        ]
    if stale_only:
        rows = [r for r in rows if r["stale"]]
    return rows


def audit(
    cfg: Config,
    directory: Any,
    state: State,
    *,
    stale_days: int | None = None,
    connector: Any = None,
    now: dt.datetime | None = None,
) -> EstateReport:
    """Read-only: findings for every computer; with a connector, the 14-day rule on the enrolled laptops."""
    now = now or dt.datetime.now(dt.UTC)
    stale_days = stale_days or cfg.estate.stale_days
    computers, laps = read(cfg, directory)
    rels = releases(cfg)
    fleet = laptops(state)
    joined = join(computers, fleet)
    report = EstateReport(laps=laps)
    match = Matcher(rels)
    if not laps and cfg.directory.flavour == "ad":  # LAPS lives in AD; OpenLDAP has no equivalent to ask for
        report.findings.append(laps_not_in_use(cfg))
    for c in computers:
        lap = joined.get(c.dn)
        r = row(c, match, lap, now, stale_days)
        report.computers.append(r)
        report.findings += findings_for(c, r, lap, laps, stale_days, now, cfg.estate.laps_max_overdue_days)
    if connector is not None and fleet:
        names = {lap.tag: c.name for c in computers if (lap := joined.get(c.dn))}
        for outcome in probe_all(cfg, state, connector, fleet, rels, now.date()):
            report.probed.append(outcome.as_row())
            f = outcome.finding(names.get(outcome.laptop.tag, outcome.laptop.tag))
            if f:
                report.findings.append(f)
    report.findings = sort_findings(report.findings)
    return report


# -- the 14-day rule over SSH --
@dataclass
class Probed:
    laptop: Laptop
    state: patches.UpdateState
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "laptop": self.laptop.tag,
            "os": self.laptop.os,
            "read_from": self.state.how or None,
            "overdue": self.state.overdue,
            "detail": self.error or self.state.detail,
        }

    def finding(self, subject: str) -> Finding | None:
        holder = self.laptop.device.assigned_to
        who = f"laptop {self.laptop.tag}" + (f", with {holder}" if holder else "")
        rule = (
            "security updates within 14 days of release (DfE cyber security standards for schools and colleges; "
            "Cyber Essentials: security update management)"
        )
        if self.state.overdue:
            return Finding(subject, "updates-overdue", "6.7", "high", f"{self.state.detail} ({who}); {rule}")
        if not self.state.how:
            why = self.error or self.state.detail or "nothing readable"
            return Finding(
                subject, "updates-unknown", "1.4", "low", f"could not tell whether updates are current: {why} ({who})"
            )
        return None


def pending_since(state: State, tag: str, today: dt.date) -> dict[str, str]:
    """Package -> the first probe (within 120 days) that saw it pending, from the check-in history."""
    since = (today - dt.timedelta(days=120)).isoformat()
    first: dict[str, str] = {}
    for r in device_records.checkin_facts(state, tag, since):
        try:
            titles = json.loads(r["facts"] or "{}").get("pending_titles") or []
        except ValueError:
            continue
        for t in titles:
            first.setdefault(str(t), r["at"])
    return first


def read_updates(
    os_name: str, stdout: str, rels: list[Release], today: dt.date, extra: str, since: dict
) -> patches.UpdateState:
    """The 14-day rule from the laptop probe's output (and, on dnf systems, `updateinfo info --security`)."""
    from ..laptops.probes import ProbeError, parse
    from ..laptops.probes.linux import HEADER, sections

    try:
        if os_name == "windows":
            return patches.windows_state(patches.hotfixes_from_probe(patches.probe_json(stdout)), today)
        if os_name == "macos":
            facts = parse("macos", stdout)
            if not facts.os_version:
                return patches.UpdateState("", detail="the probe printed no macOS version")
            return patches.macos_state(facts.os_version, rels)
        s = sections(stdout, HEADER)
        if "pending-apt" in s:
            return patches.apt_state(patches.apt_security("\n".join(s["pending-apt"])), since, today)
        if "pending-dnf" in s and extra.strip():
            return patches.dnf_state(patches.dnf_security(extra), today)
        return patches.UpdateState("", detail="neither apt nor dnf listed pending updates")
    except ProbeError as exc:
        return patches.UpdateState("", detail=f"probe output unreadable: {exc}")


DNF_SECURITY = "command -v dnf >/dev/null 2>&1 && LC_ALL=C dnf -q -C updateinfo info --security 2>/dev/null"


def probe_one(cfg: Config, connector: Any, lap: Laptop, rels: list[Release], today: dt.date, since: dict) -> Probed:
    from ..errors import AuthError, HostKeyError, UnreachableError
    from ..laptops.probe import command_for, pin_of
    from ..laptops.probes import script

    try:
        with connector.connect(lap.host, lap.port, pin_of(lap.device), name=lap.tag) as session:
            res = session.run(command_for(lap.os), stdin=script(lap.os), timeout=cfg.laptops.command_timeout)
            extra = ""
            if lap.os == "linux" and "@@section pending-dnf" in res.stdout:
                extra = session.run(DNF_SECURITY, timeout=cfg.laptops.command_timeout).stdout
            return Probed(lap, read_updates(lap.os, res.stdout, rels, today, extra, since))
    except (HostKeyError, AuthError, UnreachableError) as exc:
        return Probed(lap, patches.UpdateState(""), error=exc.message)


def probe_all(
    cfg: Config, state: State, connector: Any, fleet: list[Laptop], rels: list[Release], today: dt.date
) -> list[Probed]:
    since = {lap.tag: pending_since(state, lap.tag, today) for lap in fleet if lap.os == "linux"}
    workers = max(1, min(cfg.laptops.parallel, len(fleet)))
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aupctl-estate") as pool:
        futures = [pool.submit(probe_one, cfg, connector, lap, rels, today, since.get(lap.tag, {})) for lap in fleet]
        out = [f.result() for f in futures]
    return sorted(out, key=lambda p: p.laptop.tag.casefold())
