"""Termly recertification (policy 1.3): each system's approvers are asked, once a term, whether the people
who hold it should keep it.

- campaign.py: a campaign as the store keeps it, `start` (the members as the directory shows them, one
  decisions file per approver) and letters() (what the mail layer sends each approver)
- decisions.py: `decide`, `apply FILE` (every row checked first) and `close` (what nobody decided)
- status.py: decided / undecided per system and approver (the governors' report, the reminders)

Every change goes through a Plan; the store's rows are aupctl/records/recertify.py.
"""

from .campaign import Campaign, letters, load_campaign, start_plan
from .decisions import apply_plan, close_plan, decide_plan
from .status import campaign_status, pending_approvers

__all__ = [
    "Campaign",
    "apply_plan",
    "campaign_status",
    "close_plan",
    "decide_plan",
    "letters",
    "load_campaign",
    "pending_approvers",
    "start_plan",
]
