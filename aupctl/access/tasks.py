"""The change that opens a task by hand (records/tasks.py keeps them): for grants and revokes of systems
managed by hand, and what access review --fix cannot do itself."""

from __future__ import annotations

from ..plan import Change
from ..records import tasks
from ..state import State


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
