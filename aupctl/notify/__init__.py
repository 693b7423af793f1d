"""`aupctl notify`: reminders by email (laptops, the AUP, leavers' tasks, recertification), once per stage."""

from .engine import (
    Batch,
    NotifyRun,
    Outbox,
    Pending,
    Reminder,
    aup_reminders,
    build,
    check_letters,
    laptop_reminders,
    laptop_stage,
    pending_recertifications,
    plan_of,
    recertify_reminders,
    recertify_stage,
    task_reminders,
)

__all__ = [
    "Batch",
    "NotifyRun",
    "Outbox",
    "Pending",
    "Reminder",
    "aup_reminders",
    "build",
    "check_letters",
    "laptop_reminders",
    "laptop_stage",
    "pending_recertifications",
    "plan_of",
    "recertify_reminders",
    "recertify_stage",
    "task_reminders",
]
