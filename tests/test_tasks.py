"""`tasks list` and `tasks done` through the CLI (state only, so one flavour is enough)."""

from __future__ import annotations

from cli_helpers import payload
from test_access import run

from aupctl.config import load
from aupctl.records import tasks
from aupctl.state import State


def test_list_and_done(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    st = State(load(str(cfgp)).state.path)
    a = tasks.open_task(
        st, kind="grant", text="Give Zoë O'Brien access to SAP", username="zobrien", system="sap", ref="t1"
    )
    b = tasks.open_task(st, kind="revoke", text="Remove x from the intranet", username="xother", system="intranet")
    code, out, err = run("tasks", "list", config=cfgp)
    assert code == 0 and "Zoë O'Brien" in out and "Remove x" in out
    code, out, err = run("--format", "json", "tasks", "list", "--user", "ZOBRIEN", config=cfgp)
    rows = payload(out)
    assert [r["id"] for r in rows] == [a] and rows[0]["status"] == "open"
    code, out, err = run("tasks", "done", str(a), "--note", "SD-4411", config=cfgp)
    assert code == 2 and "--yes" in err  # a change: no terminal to ask and no --yes
    code, out, err = run("tasks", "done", str(a), "--note", "SD-4411", "--dry-run", config=cfgp)
    assert code == 0 and "SD-4411" in out and "nothing was changed" in err
    assert [r["id"] for r in tasks.list_tasks(st, open_only=True)] == [a, b]
    code, out, err = run("tasks", "done", str(a), "--note", "SD-4411", "--yes", config=cfgp)
    assert code == 0 and "done" in err
    code, out, err = run("--format", "json", "tasks", "list", "--open", config=cfgp)
    assert [r["id"] for r in payload(out)] == [b]
    done = [r for r in tasks.list_tasks(st, username="zobrien")][0]
    assert done["note"] == "SD-4411" and done["closed_by"]
    assert st.query("SELECT COUNT(*) AS n FROM audit WHERE action='task-done'")[0]["n"] == 1
    code, out, err = run("tasks", "done", str(a), "--yes", config=cfgp)
    assert code == 0 and "already done" in err
    assert st.query("SELECT COUNT(*) AS n FROM audit WHERE action='task-done'")[0]["n"] == 1
    st.close()


def test_bad_input(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    code, out, err = run("tasks", "done", "99999", config=cfgp)
    assert code == 2 and "no task 99999" in err
    code, out, err = run("tasks", "done", "seven", config=cfgp)
    assert code == 2 and "not a valid integer" in err
    code, out, err = run("tasks", "list", "--open", "--user", "nobody-at-all", config=cfgp)
    assert code == 0 and "no open tasks" in err


def test_help() -> None:
    for args in (("tasks", "--help"), ("tasks", "list", "--help"), ("tasks", "done", "--help")):
        code, out, err = run(*args)
        assert code == 0 and "Usage:" in out


def test_done_in_json_is_one_document(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    st = State(load(str(cfgp)).state.path)
    tid = tasks.open_task(st, kind="grant", text="json task", username="jtask", system="sap")
    st.close()
    code, out, err = run("--format", "json", "tasks", "done", str(tid), "--dry-run", config=cfgp)
    assert code == 0 and payload(out)["changes"][0]["action"] == "task-done"
    code, out, err = run("--format", "json", "tasks", "done", str(tid), "--yes", config=cfgp)
    assert code == 0
    (row,) = payload(out)
    assert row["id"] == tid and row["status"] == "done"
