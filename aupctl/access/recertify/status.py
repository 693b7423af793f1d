"""Where a campaign stands: per system and approver, decided and undecided (read only).

campaign_status() is what `access recertify status` shows and the governors' report reads;
pending_approvers() is what the reminders (aupctl notify) ask: who still has people to decide about.
Both read the store only: a campaign keeps its systems' names and approvers as they were at its start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ...errors import NotFoundError
from ...records import recertify as rec
from ...state import State
from .campaign import Campaign, load_campaign


def campaign_status(state: State, campaign_id: int | str | None = None) -> dict[str, Any]:
    """{campaign, systems, approvers} of one campaign (by id or code; default the open one, else the newest).
    With no campaign at all: campaign None and empty lists."""
    try:
        camp = load_campaign(state, campaign_id)
    except NotFoundError:
        if campaign_id is not None:
            raise
        return {"campaign": None, "systems": [], "approvers": []}
    return status_of(camp)


def status_of(camp: Campaign) -> dict[str, Any]:
    systems: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for key, meta in camp.systems.items():
        mine = [i for i in camp.items if i["system"] == key]
        standing = [camp.decisions[i["id"]] for i in mine if i["id"] in camp.decisions]
        undecided = len(mine) - len(standing)
        systems.append(
            {
                "system": key,
                "name": meta["name"],
                "members": len(mine),
                "decided": len(standing),
                "undecided": undecided,
                "keep": sum(1 for d in standing if d["decision"] == "keep"),
                "remove": sum(1 for d in standing if d["decision"] == "remove"),
                "carried_out": sum(1 for i in mine if i["enacted"]),
            }
        )
        for approver in meta["approvers"]:
            rows.append(
                {
                    "system": key,
                    "name": meta["name"],
                    "approver": approver,
                    "members": len(mine),
                    "decided": sum(1 for d in standing if d["approver"] == approver),
                    "undecided": undecided,
                    "due": camp.due,
                }
            )
    return {
        "campaign": {
            "id": camp.id,
            "code": camp.code,
            "status": camp.status,
            "due": camp.due,
            "opened_at": camp.opened_at,
            "opened_by": camp.opened_by,
            "closed_at": camp.closed_at,
            "out_dir": camp.out_dir,
            "members": len(camp.items),
            "decided": len(camp.decisions),
            "undecided": len(camp.items) - len(camp.decisions),
        },
        "systems": systems,
        "approvers": rows,
    }


def pending_approvers(state: State, today: dt.date) -> list[tuple[str, str, dt.date]]:
    """(approver as the config wrote them, system key, due date) for every open campaign with members nobody
    has decided about yet; today is given so the caller's clock decides (overdue ones are included: due <
    today). An item needs one approver's decision, so every approver of the system is pending until then."""
    out: list[tuple[str, str, dt.date]] = []
    for row in rec.campaigns(state, open_only=True):
        camp = load_campaign(state, row["id"])
        due = dt.date.fromisoformat(camp.due)
        for key, meta in camp.systems.items():
            if any(i["system"] == key and i["id"] not in camp.decisions for i in camp.items):
                out.extend((a, key, due) for a in meta["approvers"])
    return sorted(out, key=lambda t: (t[2], t[0].casefold(), t[1]))
