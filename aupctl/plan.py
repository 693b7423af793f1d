"""Change, Plan, apply(): the one road by which anything is changed.

A Plan is computed from what the directory and the state store hold now, so building one touches
nothing, a dry run is exact, and a re-run after a crash computes only what is left. Each Change
applies itself; apply() journals it and writes it to the audit log as it goes, and on the first
failure (or Ctrl-C) stops and reports what was done and what was not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import AupctlError, PartialError, UnreachableError
from .state import State


@dataclass
class Change:
    action: str  # stable machine name, e.g. "add-member", "disable"
    target: str  # the account, group or device it is about
    description: str  # one line a technician reads in the plan
    run: Callable[[], dict[str, Any] | None]  # does it; may return extra audit details (never secrets)
    details: dict[str, Any] = field(default_factory=dict)  # what goes into the audit log (never secrets)
    audit: bool = True  # False for bookkeeping steps that the audit log does not need

    def as_row(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "description": self.description}


@dataclass
class Plan:
    title: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "12 accounts already up to date"
    summary: dict[str, Any] = field(default_factory=dict)  # counts to show before and after

    def add(self, change: Change) -> None:
        self.changes.append(change)

    def extend(self, changes: list[Change]) -> None:
        self.changes.extend(changes)

    @property
    def empty(self) -> bool:
        return not self.changes

    def rows(self) -> list[dict[str, Any]]:
        return [c.as_row() | {"step": i} for i, c in enumerate(self.changes, 1)]


@dataclass
class ApplyResult:
    plan_id: str
    done: list[Change]
    results: list[dict[str, Any] | None]


Progress = Callable[[int, int, Change], None]


def apply(plan: Plan, state: State, progress: Progress | None = None) -> ApplyResult:
    """Apply every change in order. Raises PartialError (exit 4) naming what stands and what is left."""
    plan_id = uuid.uuid4().hex[:12]
    done: list[Change] = []
    results: list[dict[str, Any] | None] = []
    total = len(plan.changes)
    for seq, change in enumerate(plan.changes, 1):
        try:
            extra = change.run()
        except KeyboardInterrupt:
            state.journal(plan_id, seq, change.action, change.target, "interrupted")
            raise _partial(plan, done, change, "interrupted (Ctrl-C)") from None
        except AupctlError as exc:
            state.journal(plan_id, seq, change.action, change.target, "failed", exc.message)
            if not done and isinstance(exc, UnreachableError):
                raise  # nothing was changed: the plain "cannot reach" error (exit 3) says it best
            raise _partial(plan, done, change, exc.message) from exc
        except Exception as exc:  # noqa: BLE001 - any failure must still report what stands
            state.journal(plan_id, seq, change.action, change.target, "failed", repr(exc))
            raise _partial(plan, done, change, f"{type(exc).__name__}: {exc}") from exc
        state.journal(plan_id, seq, change.action, change.target, "done")
        if change.audit:
            state.audit(change.action, change.target, {**change.details, **(extra or {}), "plan": plan_id})
        done.append(change)
        results.append(extra)
        if progress:
            progress(seq, total, change)
    return ApplyResult(plan_id, done, results)


def _partial(plan: Plan, done: list[Change], failed: Change, why: str) -> PartialError:
    remaining = len(plan.changes) - len(done)
    lines = [f"{plan.title}: stopped at step {len(done) + 1} of {len(plan.changes)} ({failed.description}): {why}"]
    lines.append(f"  done: {len(done)} change(s), recorded in the audit log")
    lines.append(f"  not done: {remaining} change(s), starting with: {failed.description}")
    return PartialError(
        "\n".join(lines),
        done=len(done),
        remaining=remaining,
        hint="fix the cause and run the same command again: it picks up from where it stopped",
    )
