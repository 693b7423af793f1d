"""The recertification record (policy 1.3): campaigns, the members each one asked about (items), and every
decision an approver gave. Rows only; the rules live in aupctl/access/recertify/."""

from __future__ import annotations

import json
from typing import Any

from ..state import State, actor, now_iso

ITEM_COLUMNS = (
    "system",
    "username",
    "user_key",
    "member_key",
    "member_dn",
    "via",
    "name",
    "role",
    "access",
    "approval_id",
    "approved_on",
    "approved_by",
    "last_logon",
    "aup_signed",
)


def _campaign(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["systems"] = json.loads(out["systems"])
    return out


def create(state: State, *, code: str, due: str, systems: dict[str, Any], out_dir: str, items: list[dict]) -> int:
    """A new open campaign and its items, in one transaction; returns its id."""
    with state.transaction() as db:
        row = db.execute(
            "INSERT INTO recert_campaigns (code, status, due, systems, out_dir, opened_at, opened_by) "
            "VALUES (?,?,?,?,?,?,?) RETURNING id",
            (code, "open", due, json.dumps(systems, ensure_ascii=False, sort_keys=True), out_dir, now_iso(), actor()),
        ).fetchone()
        cid = int(row[0])
        marks = ",".join("?" * (len(ITEM_COLUMNS) + 1))
        for item in items:
            db.execute(
                f"INSERT INTO recert_items (campaign_id, {', '.join(ITEM_COLUMNS)}) VALUES ({marks})",
                (cid, *(item.get(c) for c in ITEM_COLUMNS)),
            )
    return cid


def campaign(state: State, ref: int | str) -> dict[str, Any] | None:
    """One campaign by id (a number) or code."""
    text = str(ref).strip()
    if text.isdigit():
        rows = state.query("SELECT * FROM recert_campaigns WHERE id = ?", (int(text),)) if len(text) < 18 else []
    else:
        rows = state.query("SELECT * FROM recert_campaigns WHERE code = ?", (text.upper(),))
    return _campaign(rows[0]) if rows else None


def campaigns(state: State, *, open_only: bool = False) -> list[dict[str, Any]]:
    """Every campaign, newest first."""
    sql = "SELECT * FROM recert_campaigns" + (" WHERE status = 'open'" if open_only else "") + " ORDER BY id DESC"
    return [_campaign(r) for r in state.query(sql)]


def items(state: State, campaign_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in state.query("SELECT * FROM recert_items WHERE campaign_id = ? ORDER BY system, id", (campaign_id,))
    ]


def decisions(state: State, campaign_id: int) -> list[dict[str, Any]]:
    """Every decision of a campaign, oldest first (the latest of an item is the one that stands)."""
    return [
        dict(r) for r in state.query("SELECT * FROM recert_decisions WHERE campaign_id = ? ORDER BY id", (campaign_id,))
    ]


def current_decisions(state: State, campaign_id: int) -> dict[int, dict[str, Any]]:
    """item id -> the decision that stands (the latest recorded)."""
    return {d["item_id"]: d for d in decisions(state, campaign_id)}


def decide(state: State, campaign_id: int, item_id: int, decision: str, approver: str, note: str, source: str) -> int:
    with state.transaction() as db:
        row = db.execute(
            "INSERT INTO recert_decisions (campaign_id, item_id, decision, approver, note, source, decided_at, "
            "recorded_by) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
            (campaign_id, item_id, decision, approver, note, source, now_iso(), actor()),
        ).fetchone()
    return int(row[0])


def mark_enacted(state: State, item_id: int, decision: str) -> None:
    state.execute("UPDATE recert_items SET enacted = ?, enacted_at = ? WHERE id = ?", (decision, now_iso(), item_id))


def close(state: State, campaign_id: int) -> int:
    """Close an open campaign; returns state.execute's answer."""
    return state.execute(
        "UPDATE recert_campaigns SET status = 'closed', closed_at = ?, closed_by = ? WHERE id = ? AND status = 'open'",
        (now_iso(), actor(), campaign_id),
    )
