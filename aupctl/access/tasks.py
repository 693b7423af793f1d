"""The change that opens a task by hand (records/tasks.py keeps them): for grants and revokes of systems
managed by hand, and what access review --fix cannot do itself."""

from __future__ import annotations

from ..plan import Change, Plan
from ..records import tasks
from ..state import State
from ..text import refuse_unsafe


def task_change(state: State, kind: str, user: str, system_key: str, text: str) -> Change:
    """Open a task once: the ref (kind, system, person) makes a re-run find the open one, not a second."""
    ref = f"{kind}:{system_key}:{user.lower()}"
    return Change(
        "open-task",
        user,
        f"open a task: {text}",
        run=lambda: {"task": tasks.open_task(state, kind=kind, text=text, username=user, system=system_key, ref=ref)},
        details={"system": system_key, "kind": kind, "text": text},
    )


def done_plan(state: State, task_id: int, note: str | None = None) -> Plan:
    """`tasks done`: close task ID with an optional note; a task already done gives an empty plan saying so."""
    refuse_unsafe(note, "--note")
    row = tasks.get_task(state, task_id)
    plan = Plan(f"mark task {task_id} as done")
    if row["closed_at"]:
        plan.notes.append(f"task {task_id} was already done on {row['closed_at'][:10]} by {row['closed_by']}")
        return plan
    plan.add(
        Change(
            "task-done",
            row["username"] or str(task_id),
            f"mark task {task_id} as done: {row['text']}" + (f" (note: {note})" if note else ""),
            run=lambda: {"closed": tasks.close_task(state, task_id, note)["closed_at"]},
            details={"task": task_id, "text": row["text"], "note": note},
        )
    )
    return plan
