"""Facts: what every probe parser returns, whatever the OS. Stored as JSON with each check-in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


class ProbeError(Exception):
    """The probe's output could not be read; becomes a "probe failed: ..." finding, never a crash."""


@dataclass(frozen=True)
class Software:
    name: str
    version: str = ""
    system: bool = False  # part of the OS (Windows SystemComponent, Apple's own apps, Linux auto-installed)


@dataclass(frozen=True)
class Facts:
    os: str  # windows | linux | macos
    hostname: str | None = None
    serial: str | None = None
    os_name: str | None = None  # e.g. "Microsoft Windows 11 Pro", "Debian GNU/Linux 12 (bookworm)"
    os_version: str | None = None
    os_build: str | None = None
    last_update: str | None = None  # ISO date of the last installed update
    pending_updates: int | None = None  # None = the probe could not tell
    pending_security: int | None = None  # None where the OS does not say
    pending_titles: list[str] = field(default_factory=list)
    av_product: str | None = None  # None = no antivirus found
    av_enabled: bool | None = None
    av_realtime: bool | None = None
    av_signature_date: str | None = None  # ISO date
    av_signature_version: str | None = None
    encrypted: bool | None = None  # system volume; None = could not tell
    encryption_detail: str | None = None
    software: list[Software] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # parts the probe could not gather, in plain words

    def to_json(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict: its deep copy of ~1,000 programs per laptop dominated an audit's CPU.
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["software"] = [{"name": s.name, "version": s.version, "system": s.system} for s in self.software]
        out["pending_titles"] = list(self.pending_titles)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Facts:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["software"] = [Software(**s) for s in data.get("software", [])]
        return cls(**known)

    def summary(self) -> dict[str, Any]:
        """The short form `laptop show` prints."""
        return {
            "hostname": self.hostname,
            "serial": self.serial,
            "os": " ".join(x for x in (self.os_name, self.os_version) if x) or None,
            "build": self.os_build,
            "last_update": self.last_update,
            "pending_updates": self.pending_updates,
            "pending_security": self.pending_security,
            "antivirus": self.av_product,
            "av_enabled": self.av_enabled,
            "av_realtime": self.av_realtime,
            "signatures": self.av_signature_date,
            "encrypted": self.encrypted,
            "encryption": self.encryption_detail,
            "software": len(self.software),
        }


def iso_date(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat()


def parse_when(text: str | None) -> dt.datetime | None:
    """A date or date-time in the forms probes print: ISO 8601 (with Z or offset), "/Date(ms)/"
    (PowerShell 5.1's ConvertTo-Json), or a bare date. None for empty or unreadable."""
    if text is None:
        return None
    s = str(text).strip()
    if not s:
        return None
    if s.startswith(("/Date(", "\\/Date(")):
        digits = s.split("(", 1)[1].split(")", 1)[0]
        ms = int(digits.split("+")[0].split("-")[0] if not digits.startswith("-") else digits)
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    s = s.replace("Z", "+00:00")
    if "." in s:  # .NET prints 7 fractional digits; Python takes at most 6
        head, _, tail = s.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits) :]
        s = f"{head}.{digits[:6]}{rest}"
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        pass
    try:  # RFC 2822, as Security Center's timestamps: "Tue, 12 Mar 2024 21:05:44 GMT"
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(str(text).strip())
    except (TypeError, ValueError):
        return None
