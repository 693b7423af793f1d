"""Findings from a laptop's facts and record, each citing its AUP clause (1.4, 6.7, 6.8)."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable

from ..config import Laptops
from ..findings import Finding
from .probes.facts import Facts, Software

NO_PERMISSION = '"I will not install any software or hardware without permission"'


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive glob match of a software name against config patterns."""
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def who(assigned_to: str | None) -> str:
    return f"assigned to {assigned_to}" if assigned_to else "not assigned to anyone"


def overdue(
    tag: str, assigned_to: str | None, last_checkin: str | None, enrolled_at: str, cfg: Laptops, today: dt.date
) -> Finding | None:
    """Policy 1.4: staff bring the laptop in for updating. Name the person to chase."""
    since = (last_checkin or enrolled_at)[:10]
    try:
        age = (today - dt.date.fromisoformat(since)).days
    except ValueError:
        return None
    if age <= cfg.checkin_every_days:
        return None
    seen = f"last checked in {since}" if last_checkin else f"never checked in (enrolled {since})"
    chase = f"ask {assigned_to} to bring it in" if assigned_to else "find it: it is not assigned to anyone"
    return Finding(
        tag,
        "checkin-overdue",
        "1.4",
        "medium",
        f"{seen}, {age} days ago (every {cfg.checkin_every_days} days required); {chase}",
    )


def from_facts(tag: str, facts: Facts, cfg: Laptops, today: dt.date) -> list[Finding]:
    out: list[Finding] = []
    if facts.pending_updates is None:
        out.append(Finding(tag, "updates-unknown", "6.7", "low", "the probe could not count pending updates"))
    elif facts.pending_updates > cfg.max_pending_updates:
        sec = f", {facts.pending_security} of them security" if facts.pending_security else ""
        out.append(
            Finding(
                tag,
                "pending-updates",
                "6.7",
                "high" if facts.pending_security else "medium",
                f"{facts.pending_updates} pending update(s){sec} (allowed: {cfg.max_pending_updates}); "
                f"run `aupctl laptop checkin {tag} --update`",
            )
        )
    if not facts.av_product:
        out.append(Finding(tag, "antivirus-missing", "6.7", "high", "no antivirus product found"))
    else:
        if facts.av_enabled is False or facts.av_realtime is False:
            off = "turned off" if facts.av_enabled is False else "real-time protection off"
            out.append(Finding(tag, "antivirus-off", "6.7", "high", f"{facts.av_product}: {off}"))
        if facts.av_signature_date is None:
            out.append(
                Finding(tag, "signatures-unknown", "6.7", "medium", f"{facts.av_product}: signature date unknown")
            )
        else:
            age = (today - dt.date.fromisoformat(facts.av_signature_date[:10])).days
            if age > cfg.max_signature_age_days:
                out.append(
                    Finding(
                        tag,
                        "signatures-old",
                        "6.7",
                        "high",
                        f"{facts.av_product}: signatures from {facts.av_signature_date[:10]}, {age} days old "
                        f"(allowed: {cfg.max_signature_age_days})",
                    )
                )
    if cfg.require_encryption:
        if facts.encrypted is False:
            out.append(
                Finding(tag, "not-encrypted", "6.8", "high", f"system disk not encrypted: {facts.encryption_detail}")
            )
        elif facts.encrypted is None:
            out.append(
                Finding(tag, "encryption-unknown", "6.8", "medium", f"disk encryption: {facts.encryption_detail}")
            )
    unapproved = unapproved_software(facts.software, cfg.approved_software)
    if unapproved:
        names = ", ".join(f"{s.name} {s.version}".strip() for s in unapproved[:8])
        more = f" and {len(unapproved) - 8} more (`aupctl laptop show {tag}`)" if len(unapproved) > 8 else ""
        out.append(
            Finding(
                tag,
                "software-not-approved",
                "1.4, 6.7",
                "medium",
                f"{len(unapproved)} program(s) not on the approved list: {names}{more}; {NO_PERMISSION}",
            )
        )
    return out


def unapproved_software(software: list[Software], approved: list[str]) -> list[Software]:
    return [s for s in software if not s.system and not matches(s.name, approved)]


def probe_failed(tag: str, why: str) -> Finding:
    return Finding(tag, "probe-failed", "6.7", "high", f"probe failed: {why}")
