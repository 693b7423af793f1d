"""Software licences (policy 6.7): seats used against seats owned, from each laptop's latest check-in.

A licence matches software by glob on its name ([[licences]] match). A laptop counts once per licence
however many matching programs it has. Over-allocation, licences expiring within 60 days (or expired
with installs) and software that needs a licence but matches none ([laptops] needs_licence) are findings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..findings import Finding, sort_findings
from ..state import State
from . import inventory
from .checks import matches

EXPIRY_WARNING_DAYS = 60


@dataclass
class LicenceReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unlicensed: list[dict[str, Any]] = field(default_factory=list)
    laptops_counted: int = 0
    laptops_without_facts: list[str] = field(default_factory=list)


def installed(state: State) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """{tag: [(software name, version)]} from each active laptop's latest successful probe; and the tags
    with no probe yet (they cannot be counted)."""
    out: dict[str, list[tuple[str, str]]] = {}
    missing = []
    for device in inventory.devices(state):
        last = inventory.latest(state, device.tag, probed=True)
        if last is None or last.facts is None:
            missing.append(device.tag)
            continue
        out[device.tag] = [(s.name, s.version) for s in last.facts.software]
    return out, missing


def report(cfg: Config, state: State, today: dt.date) -> LicenceReport:
    rep = LicenceReport()
    software, rep.laptops_without_facts = installed(state)
    rep.laptops_counted = len(software)
    for lic in cfg.licences:
        tags = sorted(tag for tag, progs in software.items() if any(matches(name, lic.match) for name, _ in progs))
        used = len(tags)
        days_left = (dt.date.fromisoformat(lic.expires) - today).days if lic.expires else None
        status = "ok"
        subject = f"licence {lic.product}"
        if used > lic.seats:
            status = "over-allocated"
            rep.findings.append(
                Finding(
                    subject,
                    "licence-over-allocated",
                    "6.7",
                    "high",
                    f"installed on {used} laptops but {lic.seats} seat(s) owned: buy {used - lic.seats} more or "
                    f"remove it from: {', '.join(tags[lic.seats :][:10])}",
                )
            )
        if days_left is not None and days_left < 0:
            status = "expired"
            if used:
                rep.findings.append(
                    Finding(
                        subject,
                        "licence-expired",
                        "6.7",
                        "high",
                        f"expired on {lic.expires} and still installed on {used} laptop(s): renew it or remove it",
                    )
                )
        elif days_left is not None and days_left <= EXPIRY_WARNING_DAYS:
            status = "expiring" if status == "ok" else status
            rep.findings.append(
                Finding(
                    subject,
                    "licence-expiring",
                    "6.7",
                    "medium",
                    f"expires on {lic.expires}, in {days_left} day(s); {used} laptop(s) use it: renew in time",
                )
            )
        rep.rows.append(
            {
                "product": lic.product,
                "seats": lic.seats,
                "used": used,
                "free": lic.seats - used,
                "expires": lic.expires,
                "days_left": days_left,
                "status": status,
                "laptops": tags,
            }
        )

    # Software the school says needs a licence, matched by no [[licences]] entry.
    patterns = [p for lic in cfg.licences for p in lic.match]
    names: dict[str, set[str]] = {}
    for tag, progs in software.items():
        for name, _ in progs:
            if matches(name, cfg.laptops.needs_licence) and not matches(name, patterns):
                names.setdefault(name, set()).add(tag)
    for name, holders in sorted(names.items(), key=lambda kv: kv[0].lower()):
        rep.unlicensed.append({"software": name, "laptops": sorted(holders)})
        rep.findings.append(
            Finding(
                name,
                "software-unlicensed",
                "6.7",
                "high",
                f"needs a licence but no [[licences]] entry covers it; installed on: {', '.join(sorted(holders)[:10])}",
            )
        )
    rep.findings = sort_findings(rep.findings)
    return rep
