"""The directory server going away in the middle of a grant plan: exit 4 naming what was done, and a
re-run once it is back finishes the job (a real slapd, stopped and started again on the same data)."""

from __future__ import annotations

import subprocess
import time

import pytest

from aupctl.access.aup import sign
from aupctl.access.grant import grant_changes
from aupctl.config import load
from aupctl.directory import open_directory, same_dn
from aupctl.errors import EXIT_PARTIAL, AupctlError, PartialError
from aupctl.plan import Change, Plan, apply
from aupctl.records import approvals
from aupctl.sandbox.school import HEADTEACHER
from aupctl.state import State


def _slapd_argv(args_file) -> list[str]:
    """slapd.args holds the command line; the -h value (several URLs) is one argument with spaces."""
    tokens = args_file.read_text().split()
    i = tokens.index("-h")
    j = i + 1
    while j < len(tokens) and not tokens[j].startswith("-"):
        j += 1
    return [*tokens[: i + 1], " ".join(tokens[i + 1 : j]), *tokens[j:]]


def _wait_for(cfg, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return open_directory(cfg)
        except AupctlError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_server_gone_mid_plan_then_a_rerun_finishes(fresh_openldap) -> None:
    info = fresh_openldap
    cfg = load(str(info.config_path))
    argv = _slapd_argv(info.dir / "slapd.args")
    d = open_directory(cfg)
    st = State(cfg.state.path)
    users = ["zclarke", "gsmithjones", "jsmith"]  # teachers, not in RAISE Online Users
    changes: list[Change] = []
    for u in users:
        sign(cfg, st, u)
        changes += grant_changes(cfg, d, st, u, "raise", HEADTEACHER)
    gone = Change("server-gone", "slapd", "the directory server stops", run=lambda: info.stop(), audit=False)
    plan = Plan("grant RAISE Online", [*changes[:2], gone, *changes[2:]])
    with pytest.raises(PartialError) as caught:
        apply(plan, st)
    assert caught.value.exit_code == EXIT_PARTIAL and caught.value.done == 3
    assert "done: 3 change(s)" in caught.value.message and "add gsmithjones" in caught.value.message
    assert approvals.live(st, username="zclarke", system="raise")
    assert not approvals.live(st, username="gsmithjones", system="raise")

    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d2 = _wait_for(cfg)
        rerun: list[Change] = []
        for u in users[1:]:
            rerun += grant_changes(cfg, d2, st, u, "raise", HEADTEACHER)
        assert [c.action for c in rerun] == ["add-member", "approve", "add-member", "approve"]
        apply(Plan("grant RAISE Online (again)", rerun), st)
        group = cfg.group_dn(cfg.systems["raise"].group)
        members = d2.flavour.group_members(d2, group) or []
        for u in users:
            acct = d2.flavour.find_user(d2, u)
            assert any(same_dn(m, acct.dn) for m in members)
            assert approvals.live(st, username=u, system="raise")[0]["status"] == "active"
        d2.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        st.close()
        d.close()
