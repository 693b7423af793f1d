"""Probe one laptop over SSH: run its OS's probe script, parse the output into Facts, derive findings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config
from ..errors import AuthError, HostKeyError, UnreachableError
from ..findings import Finding
from ..state import today
from . import checks
from .inventory import Device
from .probes import ProbeError, parse, script
from .probes.facts import Facts


@dataclass
class Outcome:
    """What probing one laptop gave: facts and findings, or why it could not be probed."""

    device: Device
    facts: Facts | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # set when unreachable, refused, or its output unreadable
    kind: str = "ok"  # 'ok', 'unreachable', 'auth', 'host-key', 'probe-failed'
    seconds: float = 0.0

    @property
    def reached(self) -> bool:
        return self.kind in ("ok", "probe-failed")


def command_for(os_name: str) -> str:
    from .ssh import POWERSHELL_STDIN, SH_STDIN

    return POWERSHELL_STDIN if os_name == "windows" else SH_STDIN


def pin_of(device: Device):  # -> ssh.Pin (import kept lazy: paramiko)
    from .ssh import Pin

    return Pin(device.key_type, device.key_b64, device.fingerprint)


def run_probe(session, device: Device, cfg: Config) -> tuple[Facts | None, list[Finding], str | None]:
    """On an open session: (facts, findings, error). Unreadable output is a finding, never an exception."""
    from .ssh import OutputTooLarge

    try:
        res = session.run(command_for(device.os), stdin=script(device.os), timeout=cfg.laptops.command_timeout)
    except OutputTooLarge as exc:  # it answered, with a flood: the probe failed (not "unreachable")
        return None, [checks.probe_failed(device.tag, exc.message)], exc.message
    try:
        facts = parse(device.os, res.stdout)
    except ProbeError as exc:
        why = str(exc)
        if res.status not in (0, -1):
            tail = (res.stderr.strip().splitlines() or [""])[-1][:160]
            why += f"; it exited with status {res.status}" + (f": {tail}" if tail else "")
        return None, [checks.probe_failed(device.tag, why)], why
    return facts, checks.from_facts(device.tag, facts, cfg.laptops, today()), None


def probe(connector, device: Device, cfg: Config) -> Outcome:
    """Connect, probe, parse. Never raises for a laptop's fault: the Outcome says what went wrong."""
    started = time.monotonic()
    out = Outcome(device)
    try:
        with connector.connect(device.host, device.port, pin_of(device), name=device.tag) as session:
            out.facts, out.findings, out.error = run_probe(session, device, cfg)
            out.kind = "ok" if out.facts else "probe-failed"
    except HostKeyError as exc:
        out.kind, out.error = "host-key", exc.message
    except AuthError as exc:
        out.kind, out.error = "auth", exc.message
    except UnreachableError as exc:
        out.kind, out.error = "unreachable", exc.message
    out.seconds = time.monotonic() - started
    return out


def unreachable_finding(out: Outcome, last_checkin: str | None) -> Finding:
    d = out.device
    seen = f"last seen {d.last_seen[:10]}" if d.last_seen else "never seen by aupctl"
    if out.kind == "host-key":
        return Finding(d.tag, "host-key-refused", "6.7", "high", f"{out.error}; {checks.who(d.assigned_to)}")
    if out.kind == "auth":
        return Finding(d.tag, "ssh-auth-refused", "6.7", "medium", f"{out.error}; {checks.who(d.assigned_to)}")
    return Finding(
        d.tag,
        "unreachable",
        "1.4",
        "info",
        f"not reachable: {out.error}; {checks.who(d.assigned_to)}, {seen}",
    )


Progress = Callable[[Outcome], None]
