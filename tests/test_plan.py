"""plan.apply: every change journalled and audited; a failure or Ctrl-C reports what stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from aupctl.errors import PartialError, UnreachableError
from aupctl.plan import Change, Plan, apply
from aupctl.state import State


def _plan(log: list[str], fail_at: int | None = None, exc: BaseException | None = None) -> Plan:
    plan = Plan("test plan")

    def step(i: int):
        def run():
            if i == fail_at:
                raise exc or RuntimeError("boom")
            log.append(f"step{i}")
            return {"n": i}

        return run

    for i in range(5):
        plan.add(Change("do", f"t{i}", f"do thing {i}", step(i), {"i": i}))
    return plan


def test_apply_all(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    log: list[str] = []
    seen: list[int] = []
    result = apply(_plan(log), st, lambda i, total, c: seen.append(i))
    assert log == [f"step{i}" for i in range(5)]
    assert seen == [1, 2, 3, 4, 5]
    assert [e.target for e in st.audit_entries()] == [f"t{i}" for i in range(5)]
    assert len(result.done) == 5


@pytest.mark.parametrize("exc", [RuntimeError("server went away"), KeyboardInterrupt()])
def test_failure_reports_done_and_not_done(tmp_path: Path, exc: BaseException) -> None:
    st = State(tmp_path / "s.db")
    log: list[str] = []
    with pytest.raises(PartialError) as info:
        apply(_plan(log, fail_at=2, exc=exc), st)
    err = info.value
    assert err.exit_code == 4 and err.done == 2 and err.remaining == 3
    assert "do thing 2" in err.message and "run the same command again" in str(err)
    assert len(list(st.audit_entries())) == 2  # only what was done is in the log
    statuses = [r["status"] for r in st.query("SELECT status FROM journal ORDER BY id")]
    assert statuses[:2] == ["done", "done"] and statuses[2] in ("failed", "interrupted")


def test_unreachable_before_anything_changed_stays_exit_3(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    with pytest.raises(UnreachableError):
        apply(_plan([], fail_at=0, exc=UnreachableError("down")), st)
