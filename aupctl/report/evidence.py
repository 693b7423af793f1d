"""`aupctl evidence record|list`: what no tool can check (backups tested, training, the risk assessment...),
kept in the state store for the termly report. A file is hashed and its path recorded, never copied."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

from ..dates import parse_date
from ..errors import InputError
from ..plan import Change, Plan
from ..records import evidence as records
from ..state import State
from ..text import refuse_unsafe

KINDS = records.KINDS
MAX_NOTE = 2000


def check_kind(kind: str) -> str:
    """KIND as the record spells it (case-insensitive), or InputError naming the kinds."""
    key = kind.strip().lower()
    if key in KINDS:
        return key
    close = difflib.get_close_matches(key, list(KINDS), n=2, cutoff=0.6)
    raise InputError(
        f"unknown evidence kind {kind!r} (known: {', '.join(KINDS)})",
        hint=f"did you mean {' or '.join(close)}?" if close else "`aupctl evidence record --help` lists them",
    )


def file_hash(path: str) -> tuple[str, str]:
    """(absolute path, SHA-256) of an evidence file; InputError naming --file when it cannot be read."""
    p = Path(path).expanduser()
    try:
        digest = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"--file {path}: cannot read it: {exc.strerror or exc}") from None
    return str(p.resolve()), digest.hexdigest()


def record_plan(state: State, kind: str, on: str, note: str | None, file: str | None) -> Plan:
    """The one change `evidence record` makes: a row in the store, audit-logged."""
    key = check_kind(kind)
    day = parse_date(on, "--on", future=False)
    text = refuse_unsafe(note or "", "--note") or ""
    if len(text) > MAX_NOTE:
        raise InputError(f"--note is {len(text)} characters long (at most {MAX_NOTE})")
    path, sha = file_hash(file) if file else (None, None)
    details: dict[str, Any] = {"kind": key, "on": day.isoformat(), "note": text, "file": path, "sha256": sha}
    plan = Plan(f"record evidence: {key} on {day.isoformat()}")
    plan.add(
        Change(
            "evidence-record",
            key,
            f"record {KINDS[key][0]} on {day.isoformat()}"
            + (f" (note: {text})" if text else "")
            + (f" (file {path}, sha256 {sha[:12]}…)" if sha else ""),
            run=lambda: {
                "evidence": records.record(
                    state, kind=key, on=day.isoformat(), note=text, file_path=path, file_sha256=sha
                )["id"]
            },
            details=details,
            local=True,
        )
    )
    return plan


def list_rows(state: State, kind: str | None = None) -> list[dict[str, Any]]:
    rows = records.rows(state, kind=check_kind(kind) if kind else None)
    return [
        {
            "id": r["id"],
            "kind": r["kind"],
            "on": r["happened_on"],
            "note": r["note"],
            "file": r["file_path"],
            "sha256": r["file_sha256"],
            "recorded_by": r["recorded_by"],
            "recorded_at": r["recorded_at"],
        }
        for r in rows
    ]
