"""The laptop inventory in the state store: devices (with pinned host keys), their events and check-ins.

`devices.assigned_to` holds the directory username: the leavers job reads it to open "collect the
laptop" tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError, NotFoundError
from ..findings import Finding
from ..records import devices as records
from ..state import State, now_iso, today
from .probes import OSES
from .probes.facts import Facts

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
FINGERPRINT_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


@dataclass(frozen=True)
class Device:
    tag: str
    host: str
    port: int
    os: str
    key_type: str
    key_b64: str
    fingerprint: str
    assigned_to: str | None
    status: str
    enrolled_at: str
    last_seen: str | None
    next_due: str | None

    @classmethod
    def from_row(cls, row: Any) -> Device:
        return cls(
            row["tag"],
            row["host"],
            int(row["port"]),
            row["os"],
            row["host_key_type"],
            row["host_key"],
            row["fingerprint"],
            row["assigned_to"],
            row["status"],
            row["enrolled_at"],
            row["last_seen"],
            row["next_due"],
        )


@dataclass(frozen=True)
class Checkin:
    id: int
    tag: str
    at: str
    kind: str  # 'checkin', 'update', 'audit'
    ok: bool
    facts: Facts | None
    findings: list[Finding]
    error: str | None = None


# -- checking input at the edge --
def check_tag(tag: str) -> str:
    tag = (tag or "").strip()
    if not TAG_RE.match(tag):
        raise InputError(
            f"asset tag {tag!r} is not usable: use 1-64 letters, digits, '.', '_', '/' or '-', starting with a "
            "letter or digit"
        )
    return tag


def check_host(host: str) -> str:
    host = (host or "").strip()
    if not host or any(c.isspace() for c in host) or host.startswith("-") or "@" in host or len(host) > 253:
        raise InputError(f"HOST {host!r} is not a host name or address (give the name or IP, without user@)")
    return host


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port (1-65535)")
    return port


def check_os(os_name: str | None) -> str | None:
    if os_name is not None and os_name not in OSES:
        raise InputError(f"--os {os_name!r}: expected one of {', '.join(OSES)}")
    return os_name


def check_fingerprint(fp: str | None) -> str | None:
    if fp is None:
        return None
    fp = fp.strip()
    if not FINGERPRINT_RE.match(fp):
        raise InputError(
            f"--fingerprint {fp!r} is not a SHA256 fingerprint (like SHA256:followed by 43 characters, "
            "as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the laptop)"
        )
    return fp


# -- reading --
def find(state: State, tag: str) -> Device | None:
    row = records.device(state, tag)
    return Device.from_row(row) if row else None


def get(state: State, tag: str) -> Device:
    device = find(state, tag)
    if device is None:
        known = records.active_tags(state, 10)
        listed = ", ".join(known) if known else "none enrolled"
        import difflib

        from ..records import known as names

        every = {t.casefold(): t for t in names.tags(state, "", 5000)}
        close = difflib.get_close_matches(tag.casefold(), list(every), 3, 0.75)
        hint = f"did you mean {' or '.join(every[c] for c in close)}?" if close else None
        raise NotFoundError(f"no laptop with asset tag {tag!r} (known: {listed}; see `aupctl laptop list`)", hint=hint)
    return device


def devices(state: State, *, include_retired: bool = False, user: str | None = None) -> list[Device]:
    found = [Device.from_row(r) for r in records.devices(state, include_retired=include_retired)]
    if user is not None:  # SQLite's NOCASE folds ASCII only: Zoë is zoë too
        want = user.strip().casefold()
        found = [d for d in found if (d.assigned_to or "").casefold() == want]
    return found


def _checkin_from_row(row: Any) -> Checkin:
    facts_data = json.loads(row["facts"] or "{}")
    error = facts_data.pop("_error", None) if isinstance(facts_data, dict) else None
    facts = Facts.from_json(facts_data) if facts_data else None
    findings = [Finding(**f) for f in json.loads(row["findings"] or "[]")]
    return Checkin(row["id"], row["tag"], row["at"], row["kind"], bool(row["ok"]), facts, findings, error)


def latest(state: State, tag: str, *, probed: bool = False) -> Checkin | None:
    """The latest record (any kind), or with probed=True the latest one whose probe worked."""
    row = records.latest_checkin(state, tag, probed=probed)
    return _checkin_from_row(row) if row else None


def last_checkin_at(state: State, tag: str) -> str | None:
    """When the laptop was last brought in (a check-in, not a cron audit)."""
    return records.last_checkin_at(state, tag)


def history(state: State, tag: str, limit: int = 20) -> list[dict[str, Any]]:
    out = []
    for r in records.events(state, tag, limit):
        try:
            details = json.loads(r["details"])
        except ValueError:
            details = {}
        out.append({"at": r["at"], "event": r["event"], "user": r["username"], "details": details})
    return out


def due_date(state: State, cfg: Config, device: Device) -> str:
    """When the next check-in is due: the last check-in (or the enrolment) plus checkin_every_days, from today's
    config, so `list --overdue` and the audit's checkin-overdue finding always agree."""
    since = (last_checkin_at(state, device.tag) or device.enrolled_at)[:10]
    return (dt.date.fromisoformat(since) + dt.timedelta(days=cfg.laptops.checkin_every_days)).isoformat()


# -- writing (called from plan Changes and from check-in recording) --
def event(state: State, tag: str, name: str, username: str | None = None, **details: Any) -> None:
    records.add_event(state, tag, name, username, details)


def add(
    state: State,
    cfg: Config,
    *,
    tag: str,
    host: str,
    port: int,
    os_name: str,
    key_type: str,
    key_b64: str,
    fp: str,
    replace: bool = False,
) -> None:
    """Pin the key and record the laptop (due for its first check-in now); rewrite the known_hosts mirror."""
    with state.transaction():
        records.enrol(
            state,
            tag=tag,
            host=host,
            port=port,
            os_name=os_name,
            key_type=key_type,
            key_b64=key_b64,
            fp=fp,
            next_due=_due(cfg),
            replace=replace,
        )
        event(state, tag, "rekey" if replace else "enrol", host=host, port=port, os=os_name, fingerprint=fp)
    sync_known_hosts(state, cfg)


def set_assigned(state: State, tag: str, username: str | None) -> None:
    with state.transaction():  # the change and its event together
        previous = records.set_assigned(state, tag, username)
        if username:
            event(state, tag, "assign", username, previous=previous)
        else:
            event(state, tag, "return", previous)


def retire(state: State, cfg: Config, tag: str) -> None:
    with state.transaction():
        event(state, tag, "retire", records.retire(state, tag))
    sync_known_hosts(state, cfg)


def record(
    state: State,
    cfg: Config,
    device: Device,
    kind: str,
    facts: Facts | None,
    findings: list[Finding],
    *,
    error: str | None = None,
) -> str:
    """Store a probe's result; returns its time. A check-in (the laptop was brought in) also sets the next due
    date."""
    at = now_iso()
    body = facts.to_json() if facts else ({"_error": error} if error else {})
    with state.transaction():
        records.add_checkin(
            state,
            device.tag,
            at,
            kind,
            ok=bool(facts),
            facts=json.dumps(body, ensure_ascii=False),
            findings=json.dumps([f.as_row() for f in findings], ensure_ascii=False),
        )
        if facts is not None:
            records.seen(state, device.tag, at, next_due=_due(cfg) if kind in ("checkin", "update") else None)
        if kind != "audit":
            event(state, device.tag, kind, device.assigned_to, ok=bool(facts), findings=len(findings))
    return at


def _due(cfg: Config) -> str:
    return (today() + dt.timedelta(days=cfg.laptops.checkin_every_days)).isoformat()


def known_hosts_path(cfg: Config, state: State) -> Path:
    return Path(cfg.laptops.known_hosts) if cfg.laptops.known_hosts else state.path.parent / "known_hosts"


def sync_known_hosts(state: State, cfg: Config) -> None:
    """Mirror the pinned keys to aupctl's own known_hosts file (never ~/.ssh/known_hosts)."""
    from .ssh import Pin, write_known_hosts

    entries = [(d.host, d.port, Pin(d.key_type, d.key_b64, d.fingerprint)) for d in devices(state)]
    write_known_hosts(str(known_hosts_path(cfg, state)), entries)
