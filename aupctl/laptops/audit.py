"""`laptop audit`: every enrolled laptop probed in parallel (or reported from the records alone)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..findings import Finding, sort_findings
from ..state import State, today
from . import checks, inventory
from .inventory import Device
from .probe import Outcome, probe, unreachable_finding


@dataclass
class AuditReport:
    findings: list[Finding] = field(default_factory=list)
    laptops: list[dict[str, Any]] = field(default_factory=list)  # one row per laptop: what happened to it
    unreachable: list[dict[str, Any]] = field(default_factory=list)


def _overdue(cfg: Config, state: State, device: Device) -> Finding | None:
    return checks.overdue(
        device.tag,
        device.assigned_to,
        inventory.last_checkin_at(state, device.tag),
        device.enrolled_at,
        cfg.laptops,
        today(),
    )


def _row(device: Device, status: str, findings: list[Finding], error: str | None, seconds: float | None) -> dict:
    return {
        "tag": device.tag,
        "host": device.host,
        "os": device.os,
        "assigned_to": device.assigned_to,
        "status": status,
        "findings": len(findings),
        "last_seen": device.last_seen,
        "error": error,
        "seconds": round(seconds, 2) if seconds is not None else None,
    }


def run(
    cfg: Config,
    state: State,
    connector: Any,
    *,
    do_probe: bool = True,
    parallel: int | None = None,
    progress: Callable[[Outcome | None], None] | None = None,
) -> AuditReport:
    report = AuditReport()
    fleet = inventory.devices(state)
    if not do_probe:
        for device in fleet:
            found = _from_records(cfg, state, device)
            report.findings += found
            report.laptops.append(_row(device, "records", found, None, None))
        report.findings = sort_findings(report.findings)
        return report

    workers = max(1, min(parallel or cfg.laptops.parallel, len(fleet) or 1))
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aupctl-probe")
    try:
        pending = {pool.submit(probe, connector, d, cfg) for d in fleet}
        # Record in this thread (the state store's connection belongs to it), one transaction per batch of
        # laptops that finished together: one commit per laptop cost more than the probing at 100 laptops.
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            with state.transaction():
                for fut in done:
                    _record(cfg, state, fut.result(), report)
            if progress:
                for _ in done:
                    progress(None)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        if hasattr(connector, "close_all"):
            connector.close_all()  # what was recorded stays; the probes still running end now
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    report.laptops.sort(key=lambda r: r["tag"].lower())
    report.unreachable.sort(key=lambda r: r["tag"].lower())
    report.findings = sort_findings(report.findings)
    return report


def _record(cfg: Config, state: State, out: Outcome, report: AuditReport) -> None:
    device = out.device
    found = list(out.findings)
    if out.reached:
        at = inventory.record(state, cfg, device, "audit", out.facts, out.findings, error=out.error)
        if out.facts is not None:
            device = dataclasses.replace(device, last_seen=at)
    else:
        last = inventory.last_checkin_at(state, device.tag)
        found.append(unreachable_finding(out, last))
        inventory.record(state, cfg, device, "audit", None, found, error=out.error)
        report.unreachable.append(
            {
                "tag": device.tag,
                "host": device.host,
                "assigned_to": device.assigned_to,
                "last_seen": device.last_seen,
                "error": out.error,
            }
        )
    od = _overdue(cfg, state, device)
    if od:
        found.append(od)
    report.findings += found
    report.laptops.append(_row(device, out.kind, found, out.error, out.seconds))


def _from_records(cfg: Config, state: State, device: Device) -> list[Finding]:
    """Findings as of the latest record, re-checked against today's date and today's config."""
    found: list[Finding] = []
    last = inventory.latest(state, device.tag)
    if last is not None:
        if last.facts is not None:
            found += checks.from_facts(device.tag, last.facts, cfg.laptops, today())
        else:
            found += last.findings  # why it could not be probed last time
    od = _overdue(cfg, state, device)
    if od:
        found.append(od)
    return found
