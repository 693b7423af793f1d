"""The OS support table (os_support.toml, overridable in [estate.os_support]) and matching a computer's
operatingSystem / operatingSystemVersion text to one of its releases."""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import ConfigError

FAMILIES = ("windows", "windows-server", "macos")
SOURCE = "aupctl/estate/os_support.toml"


@dataclass(frozen=True)
class Release:
    name: str
    family: str
    build: int | None  # Windows
    version: str | None  # macOS major: "14", "10.15"
    end: dt.date
    end_enterprise: dt.date | None = None
    latest: str | None = None  # macOS: the newest release of this major

    def end_for(self, os_name: str) -> dt.date:
        """Enterprise and Education editions of some Windows releases are supported a year longer."""
        if self.end_enterprise and re.search(r"enterprise|education", os_name, re.I):
            return self.end_enterprise
        return self.end


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _release(name: str, row: dict[str, Any], where: str) -> Release:
    family = row.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"{where}: family must be one of {', '.join(FAMILIES)} (got {family!r})")
    build = row.get("build")
    version = row.get("version")
    if family == "macos":
        if not version:
            raise ConfigError(f'{where}: a macos release needs version (its major, e.g. "14")')
    elif not isinstance(build, int) or isinstance(build, bool) or build <= 0:
        raise ConfigError(f"{where}: a {family} release needs build (e.g. 22631)")
    if not row.get("end"):
        raise ConfigError(f"{where}: end (the last day of security updates) is missing")
    return Release(
        name,
        family,
        build if family != "macos" else None,
        str(version) if family == "macos" else None,
        _date(row["end"], f"{where}.end"),
        _date(row["end_enterprise"], f"{where}.end_enterprise") if row.get("end_enterprise") else None,
        str(row["latest"]) if row.get("latest") else None,
    )


@functools.cache
def shipped() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("os_support.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["release"]


def table(overrides: dict[str, Any] | None = None) -> list[Release]:
    """The shipped releases, with the config's rows laid over them field by field (same name) or added."""
    rows = {k: dict(v) for k, v in shipped().items()}
    for name, row in (overrides or {}).items():
        given = {k: v for k, v in (row if isinstance(row, dict) else vars(row)).items() if v not in (None, "", 0)}
        rows[name] = {**rows.get(name, {}), **given}
    out = []
    for name, row in rows.items():
        where = f"estate.os_support.{name!r}" if name in (overrides or {}) else f"{SOURCE} [release.{name!r}]"
        out.append(_release(name, row, where))
    return out


def family_of(os_name: str) -> str | None:
    low = os_name.lower()
    if "windows" in low:
        return "windows-server" if "server" in low else "windows"
    if "mac" in low or "os x" in low or "darwin" in low:
        return "macos"
    return None


_BUILD = re.compile(r"\b(?:10\.0|6\.[0-3])(?:\.|\s*\()\s*(\d{4,5})\b")
_SERVER_YEAR = re.compile(r"\b(2008 R2|2012 R2|2008|2012|2016|2019|2022|2025)\b", re.I)
_MAC_VERSION = re.compile(r"\b(1[0-9]|2[0-9]|[1-9])(?:\.(\d+))?(?:\.(\d+))?\b")


def windows_build(text: str) -> int | None:
    """The build in "10.0 (22631)", "10.0.22631" or "6.3 (9600)"."""
    m = _BUILD.search(text)
    return int(m.group(1)) if m else None


def mac_version(text: str) -> str | None:
    """ "14.3.1" from "14.3.1", "macOS 14.3.1 (23D60)" or "Version 14.3.1"."""
    for m in _MAC_VERSION.finditer(text):
        return ".".join(g for g in m.groups() if g is not None)
    return None


def mac_major(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if parts[0] == "10" else parts[0]


def match(releases: list[Release], os_name: str, os_version: str = "") -> Release | None:
    """The release a computer runs, or None when the table cannot tell (unknown OS, no build)."""
    family = family_of(os_name) or family_of(os_version)
    text = f"{os_name} {os_version}"
    if family in ("windows", "windows-server"):
        build = windows_build(os_version) or windows_build(os_name)
        if build is not None:
            for r in releases:
                if r.family == family and r.build == build:
                    return r
        if family == "windows-server":
            m = _SERVER_YEAR.search(text)
            if m:
                want = f"windows server {m.group(1)}".lower()
                return next((r for r in releases if r.family == family and r.name.lower() == want), None)
        else:  # "Windows 11 23H2" written by hand (an OpenLDAP device entry)
            m = re.search(r"windows\s+(10|11)\b.*?\b(\d\dH\d)\b", text, re.I)
            if m:
                want = f"windows {m.group(1)} {m.group(2)}".lower()
                return next((r for r in releases if r.family == family and r.name.lower() == want), None)
        return None
    if family == "macos":
        version = mac_version(os_version) or mac_version(re.sub(r"(?i)mac\s*os\s*x?", "", os_name))
        if version:
            major = mac_major(version)
            return next((r for r in releases if r.family == "macos" and r.version == major), None)
    return None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))
