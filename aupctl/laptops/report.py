"""Rows for `laptop list` and `laptop show`, from the records alone (no laptop is contacted)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..config import Config
from ..findings import sort_findings
from ..state import State, today
from . import checks, inventory


def list_rows(
    cfg: Config, state: State, *, overdue: bool = False, user: str | None = None, include_retired: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for d in inventory.devices(state, include_retired=include_retired, user=user.strip() if user else None):
        due = inventory.due_date(state, cfg, d) if d.status == "active" else None
        late = due is not None and due < today().isoformat()
        if overdue and not late:
            continue
        last = inventory.latest(state, d.tag)
        rows.append(
            {
                "tag": d.tag,
                "host": d.host,
                "port": d.port,
                "os": d.os,
                "assigned_to": d.assigned_to,
                "status": d.status,
                "enrolled_at": d.enrolled_at,
                "last_seen": _when(d.last_seen),
                "next_due": due,
                "overdue": late,
                "findings": len(last.findings) if last else None,
                "fingerprint": d.fingerprint,
            }
        )
    return rows


def _when(iso: str | None) -> dt.datetime | None:
    """A stored timestamp as a datetime: the table shows it to the minute, JSON in full ISO 8601."""
    return dt.datetime.fromisoformat(iso) if iso else None


def show(cfg: Config, state: State, tag: str) -> dict[str, Any]:
    d = inventory.get(state, inventory.check_tag(tag))
    last = inventory.latest(state, d.tag)
    probed = inventory.latest(state, d.tag, probed=True)
    findings = list(last.findings) if last else []
    od = checks.overdue(
        d.tag, d.assigned_to, inventory.last_checkin_at(state, d.tag), d.enrolled_at, cfg.laptops, today()
    )
    if od and d.status == "active" and all(f.check != od.check for f in findings):
        findings.append(od)
    facts = probed.facts if probed else None
    laptop = {
        "tag": d.tag,
        "host": f"{d.host}:{d.port}",
        "os": d.os,
        "assigned_to": d.assigned_to,
        "status": d.status,
        "host_key": f"{d.key_type} {d.fingerprint}",
        "enrolled_at": d.enrolled_at,
        "last_seen": d.last_seen,
        "next_due": inventory.due_date(state, cfg, d) if d.status == "active" else None,
        "last_record": f"{last.kind} {last.at}" + ("" if last.ok else f" (failed: {last.error})") if last else None,
        "facts_from": f"{probed.kind} {probed.at}" if probed else None,
    }
    return {
        "laptop": laptop,
        "facts": facts.summary() if facts else None,
        "findings": [f.as_row() for f in sort_findings(findings)],
        "unapproved_software": [
            {"name": s.name, "version": s.version}
            for s in (checks.unapproved_software(facts.software, cfg.laptops.approved_software) if facts else [])
        ],
        "software": [
            {"name": s.name, "version": s.version, "system": s.system} for s in (facts.software if facts else [])
        ],
        "pending_updates": facts.pending_titles if facts else [],
        "notes": facts.notes if facts else [],
        "history": inventory.history(state, d.tag),
    }
