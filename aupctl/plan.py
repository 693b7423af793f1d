"""Change, Plan, apply(): the one road by which anything is changed.

A Plan is computed from what the directory and the state store hold now, so building one touches
nothing, a dry run is exact, and a re-run after a crash computes only what is left. Each Change
applies itself; apply() journals it and writes it to the audit log as it goes, and on the first
failure (or Ctrl-C) stops and reports what was done and what was not.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import AupctlError, PartialError, UnreachableError, UnrecordedError
from .state import State, describe_store_error

# Changes that only write the state store: run, journalled and audited in one transaction, so they are
# never half-recorded (an open intent of one means its transaction was rolled back: not done).
STORE_ONLY = frozenset(
    {
        "approve",
        "approve-waiting",
        "approval-waiting",
        "end-approval",
        "end-approvals",
        "restore-approval",
        "open-task",
        "close-task",
        "task-done",
        "set-role",
        "aup-sign",
        "leaver-snapshot",
        "leaver-done",
        "leaver-restored",
        "leaver-schedule",
        "leaver-reschedule",
        "leaver-cancel",
        "laptop-assign",
        "laptop-return",
    }
)


@dataclass(frozen=True)
class Check:
    """How to tell, later and from another process, whether a change stands in the directory: a kind
    (aupctl.checks knows them: "member", "attributes", "moved") and its JSON-able arguments."""

    kind: str
    args: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.args}


@dataclass
class Change:
    action: str  # stable machine name, e.g. "add-member", "disable"
    target: str  # the account, group or device it is about
    description: str  # one line a technician reads in the plan
    run: Callable[[], dict[str, Any] | None]  # does it; may return extra audit details (never secrets)
    details: dict[str, Any] = field(default_factory=dict)  # what goes into the audit log (never secrets)
    audit: bool = True  # False for bookkeeping steps that the audit log does not need
    check: Check | None = None  # how a later run tells whether it happened (reconcile); None: it cannot
    local: bool | None = None  # writes only the state store (default: by action, see STORE_ONLY)

    def __post_init__(self) -> None:
        if self.local is None:
            self.local = self.action in STORE_ONLY and self.check is None

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
    """Apply every change in order, each journalled as intended before it runs and recorded (journal done
    + audit entry, one transaction) after. Raises PartialError (exit 4) naming what stands and what is
    left; UnrecordedError (exit 4) when the store failed after the directory changed."""
    plan_id = uuid.uuid4().hex[:12]
    done: list[Change] = []
    results: list[dict[str, Any] | None] = []
    total = len(plan.changes)
    if any(c.audit for c in plan.changes):
        state.audit_key(create=True)  # a lost audit key is found before the directory is touched, not after
    for seq, change in enumerate(plan.changes, 1):
        try:
            jid = state.journal_intent(
                plan_id,
                seq,
                change.action,
                change.target,
                change.description,
                change.details,
                change.check.spec() if change.check else None,
                bool(change.local),
            )
        except sqlite3.Error as exc:
            raise _store_failed(plan, state, done, change, exc, applied=False) from None
        try:
            if change.local:
                with state.transaction():  # the change, its journal row and its audit entry stand or fall together
                    extra = change.run()
                    _record(state, plan_id, jid, change, extra)
            else:
                extra = change.run()
        except sqlite3.Error as exc:
            if change.local:  # rolled back with its record: not done
                _close_quietly(state, jid, "failed", f"state store: {exc}")
                raise _store_failed(plan, state, done, change, exc, applied=False) from None
            # a change that writes the store as it goes (the intake's batches) may stand in part: the
            # intent stays open for reconcile, and the message says it may be done
            raise _store_failed(plan, state, done, change, exc, applied=True, partly=True) from None
        except KeyboardInterrupt:
            # a directory change may have gone through before the interrupt: left open for reconcile
            _close_quietly(state, jid, "failed" if change.local else "interrupted", "interrupted")
            raise _partial(plan, done, change, "interrupted (Ctrl-C)") from None
        except AupctlError as exc:
            _close_quietly(state, jid, "failed", exc.message)
            if not done and isinstance(exc, UnreachableError):
                raise  # nothing was changed: the plain "cannot reach" error (exit 3) says it best
            raise _partial(plan, done, change, exc.message) from exc
        except Exception as exc:  # noqa: BLE001 - any failure must still report what stands
            _close_quietly(state, jid, "failed", repr(exc))
            raise _partial(plan, done, change, f"{type(exc).__name__}: {exc}") from exc
        if not change.local:
            try:
                with state.transaction():
                    _record(state, plan_id, jid, change, extra)
            except sqlite3.Error as exc:
                raise _store_failed(plan, state, done, change, exc, applied=True) from None
        done.append(change)
        results.append(extra)
        try:
            state.renew_leases()
        except sqlite3.Error:
            pass  # the next write says what is wrong with the store; the lease is only a courtesy to others
        if progress:
            progress(seq, total, change)
    return ApplyResult(plan_id, done, results)


def _record(state: State, plan_id: str, jid: int, change: Change, extra: dict[str, Any] | None) -> None:
    state.journal_close(jid, "done")
    if change.audit:
        state.audit(change.action, change.target, {**change.details, **(extra or {}), "plan": plan_id})


def _close_quietly(state: State, jid: int, status: str, error: str) -> None:
    """Close an intent after a failure; if the store fails too, the intent stays open for reconcile."""
    try:
        state.journal_close(jid, status, error)
    except sqlite3.Error:
        pass


def _store_failed(
    plan: Plan,
    state: State,
    done: list[Change],
    change: Change,
    exc: sqlite3.Error,
    *,
    applied: bool,
    partly: bool = False,
) -> AupctlError:
    """The store failed mid-plan: say what stands in the directory and what is not recorded."""
    cause = describe_store_error(exc, state.path, state.busy_timeout)
    step = len(done) + 1
    total = len(plan.changes)
    if not applied and not done:
        # Nothing was changed at all: the plain store error (exit 3 when busy, 2 otherwise) says it best.
        cause.message = f"{cause.message}; nothing was changed ({plan.title})"
        return cause
    lines = [f"{plan.title}: stopped at step {step} of {total}: {cause.message}"]
    if applied:
        how = "done (or partly done)" if partly else "done"
        lines.append(f"  {how} in the directory but NOT recorded: {change.description}")
    lines.append(f"  done and recorded: {len(done)} change(s)")
    left = total - len(done) - (1 if applied else 0)
    if left:
        nxt = plan.changes[step] if applied else change
        lines.append(f"  not done: {left} change(s), starting with: {nxt.description}")
    hint = (cause.hint + "; then " if cause.hint else "") + (
        "run `aupctl log repair` (or the same command again): it checks the directory and records what was done, once"
        if applied
        else "run the same command again: it picks up from where it stopped"
    )
    return UnrecordedError("\n".join(lines), done=len(done), remaining=left, hint=hint)


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


# -- reconciling intents left open by a run that stopped before recording them --

DONE, NOT_DONE, UNKNOWN = "done", "not done", "unknown"


@dataclass(frozen=True)
class Reconciled:
    journal_id: int
    plan_id: str
    step: int
    action: str
    target: str
    description: str
    intended_at: str
    outcome: str  # "done", "not done" or "unknown" (check it by hand)
    why: str

    def row(self) -> dict[str, Any]:
        return {
            "id": self.journal_id,
            "intended_at": self.intended_at,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "description": self.description,
            "why": self.why,
            "plan": self.plan_id,
            "step": self.step,
        }


Checker = Callable[[Check], "bool | None"]


def reconcile(state: State, checker: Checker | None, *, keep_going: bool = False) -> list[Reconciled]:
    """Close every intent left open by a run that has stopped: check the directory (checker: True it
    stands, False it does not, None cannot tell), record the outcome (journal + a `reconciled` audit
    entry, exactly once), and return what was recorded. With keep_going, an intent the checker cannot
    reach (AupctlError) stays open for later instead of stopping the run."""
    out: list[Reconciled] = []
    for row in state.open_intents():
        spec = row["check"]
        if row["local"]:
            outcome, why = NOT_DONE, "a change to the state store only: its transaction did not commit"
        elif not isinstance(spec, dict) or "kind" not in spec:
            outcome, why = UNKNOWN, "this kind of change cannot be checked in the directory: check it by hand"
        elif checker is None:
            outcome, why = UNKNOWN, "no directory to check it against"
        else:
            args = {k: v for k, v in spec.items() if k != "kind"}
            try:
                seen = checker(Check(spec["kind"], args))
            except AupctlError:
                if keep_going:
                    continue
                raise
            if seen is True:
                outcome, why = DONE, "the directory shows it was done"
            elif seen is False:
                outcome, why = NOT_DONE, "the directory shows it was not done"
            else:
                outcome, why = UNKNOWN, "the directory cannot tell (the entry has gone or moved): check it by hand"
        if state.close_intent(row["id"], outcome, why):
            out.append(
                Reconciled(
                    row["id"],
                    row["plan_id"],
                    row["seq"],
                    row["action"],
                    row["target"],
                    row["description"] or row["action"],
                    row["at"],
                    outcome,
                    why,
                )
            )
    return out
