"""`laptop assign` / `enrol --assign` check the account in a real directory (the OpenLDAP sandbox)."""

from __future__ import annotations

import pytest
from cli_helpers import payload
from laptop_env import run_cli

from aupctl.config import load
from aupctl.laptops import inventory
from aupctl.sandbox import school as hb
from aupctl.state import State

pytestmark = pytest.mark.openldap
KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIE1ww1WyMDlwZhHrKSHlrmY9+dmnYCSjL8pW7GY0iG5G"


def add_laptop(info, tag: str) -> None:
    cfg = load(str(info.config_path))
    state = State(cfg.state.path)
    inventory.add(
        state,
        cfg,
        tag=tag,
        host=f"{tag}.test",
        port=22,
        os_name="linux",
        key_type="ssh-ed25519",
        key_b64=KEY,
        fp="SHA256:" + "C" * 43,
    )


def test_assign_checks_the_directory(openldap_sandbox) -> None:
    info = openldap_sandbox
    person = hb.school().staff[0]
    add_laptop(info, "DIR-1")
    res = run_cli(info.config_path, "laptop", "assign", "DIR-1", person.username.upper(), "--yes")
    assert res.exit_code == 0, res.output
    assert "was not checked" not in res.output
    rows = payload(run_cli(info.config_path, "--format", "json", "laptop", "list", "--user", person.username).output)
    assert [(r["tag"], r["assigned_to"]) for r in rows] == [("DIR-1", person.username)]  # the directory's spelling

    before = payload(run_cli(info.config_path, "--format", "json", "laptop", "show", "DIR-1").output)["history"]
    for user in ("no-such-person", "*", "a,b", "o'brien("):
        res = run_cli(info.config_path, "laptop", "assign", "DIR-1", user, "--yes")
        assert res.exit_code == 2 and f"no account {user!r}" in res.output, res.output
    after = payload(run_cli(info.config_path, "--format", "json", "laptop", "show", "DIR-1").output)
    assert after["history"] == before and after["laptop"]["assigned_to"] == person.username  # nothing changed

    # the leavers job's view: laptops a person holds
    res = run_cli(info.config_path, "--format", "json", "laptop", "list", "--user", person.username.title())
    assert [r["tag"] for r in payload(res.output)] == ["DIR-1"]
    # --dry-run shows the plan, changes nothing
    other = hb.school().staff[1]
    res = run_cli(info.config_path, "laptop", "assign", "DIR-1", other.username, "--dry-run")
    assert res.exit_code == 0 and f"assign laptop DIR-1 to {other.username} (was {person.username})" in res.output
    assert inventory.get(State(load(str(info.config_path)).state.path), "DIR-1").assigned_to == person.username
