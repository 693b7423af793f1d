"""discover -> config check -> doctor green on every sandbox layout of both flavours (standard OpenLDAP,
flat OpenLDAP with posixGroup and roles by group, standard AD, nested AD with staff per site)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cli_helpers import payload
from click.testing import CliRunner

from aupctl import sandbox as sb
from aupctl.commands import cli
from aupctl.credentials import ENV_BIND


def run(*args: str, password: str | None = None, home: Path | None = None):
    env = {
        "AUPCTL_CONFIG": None,
        ENV_BIND: password,
        "XDG_DATA_HOME": str(home / "data") if home else None,  # the default store and key: not the real home
        "XDG_CONFIG_HOME": str(home / "config") if home else None,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_discover_then_check_then_doctor_green(any_sandbox: sb.SandboxInfo, tmp_path: Path) -> None:
    info = any_sandbox
    out = tmp_path / "discovered.toml"
    result = run(
        "config", "discover", "--url", info.urls[0], "--bind-dn", info.bind_dn, "--ca-file", str(info.ca_file),
        "--out", str(out), password=info.bind_password,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    check = run("--config", str(out), "config", "check")
    assert check.exit_code == 0, check.output
    doctor = run("--config", str(out), "--format", "json", "doctor", password=info.bind_password, home=tmp_path)
    rows = payload(doctor.stdout)
    assert doctor.exit_code == 0, rows
    assert not [r for r in rows if r["status"] in ("warn", "fail")], rows
    read = next(r for r in rows if r["check"] == "read access")
    assert read["status"] == "ok"

    d = data["directory"]
    roles = data["roles"]
    text = out.read_text()
    layout = getattr(info, "layout", "standard")
    if layout == "flat":
        assert d["staff_ou"] == "ou=People" and d["leavers_ou"] == "ou=Former,ou=People"
        assert d["privileged_groups"] == ["itadmins"]
        assert all("ou" not in r for r in roles.values())
        assert {g for r in roles.values() for g in r["groups"]} == {
            "teachers", "support", "office", "slt", "site", "governors",
        }  # fmt: skip
        assert f'# group = "cn=sims,ou=Systems,ou=Groups,{info.base_dn}"' in text
        assert "posixGroup" in result.output
        staff = run(
            "--config", str(out), "--format", "json", "staff", "list", password=info.bind_password, home=tmp_path
        )
        assert staff.exit_code == 0, staff.output
        # Every account listed, the hand-made ones too (cn=Brown\2C Michael is mbrown). Their roles come from
        # posixGroup memberUid, which the group-schema work reads (issue 10 item 2), so they are not asserted here.
        listed = {r["username"] for r in payload(staff.stdout)}
        assert {"wgreen", "mbrown", "p.obrien", "zoe", "ksmith-jones"} <= listed
    elif layout == "nested":
        assert d["staff_ou"] == "OU=Staff" and d["leavers_ou"] == "OU=Former Staff" and d["groups_ou"] == "OU=Groups"
        assert "IT Admins" in d["privileged_groups"]
        assert all("ou" not in r for r in roles.values())  # staff spread over sites: roles by group
        assert {g for r in roles.values() for g in r["groups"]} >= {"Teaching Staff", "Support Staff", "Leadership"}
        assert "Pupils" in result.output and "left out of staff" in result.output
        assert f'# group = "CN=SIMS Users,OU=MIS,OU=Applications,{info.base_dn}"' in text
    else:
        assert d["staff_ou"].lower() == "ou=staff" and len(roles) == 6
        assert all("ou" in r for r in roles.values())
