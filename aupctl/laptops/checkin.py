"""`laptop checkin`: the laptop is here: probe it, optionally bring it up to date, probe again, record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import AupctlError, InputError, RefusedError
from ..findings import Finding
from ..plan import Change, Plan
from ..state import State
from . import inventory
from .inventory import Device
from .probe import pin_of, run_probe
from .probes.facts import Facts


@dataclass
class Result:
    device: Device
    facts: Facts | None
    findings: list[Finding]
    error: str | None
    before: tuple[Facts | None, list[Finding]] | None = None  # with --update: the probe before updating


def update_commands(cfg: Config, device: Device) -> list[str]:
    cmds = list(getattr(cfg.laptops.update_commands, device.os))
    if not cmds:
        raise InputError(
            f"no update commands configured for {device.os} laptops",
            hint=f"set [laptops.update_commands] {device.os} = [...] in the config (see config.example.toml)",
        )
    return cmds


def update_plan(
    cfg: Config, device: Device, session_of: Callable[[], Any] | None, on_output: Callable[[str], None] | None
) -> Plan:
    """One Change per configured update command; each streams its output and must exit 0."""
    plan = Plan(f"bring laptop {device.tag} up to date", notes=["then probe it again and record the result"])
    for cmd in update_commands(cfg, device):
        plan.add(
            Change(
                "laptop-update",
                device.tag,
                f"run on {device.tag} ({device.os}): {cmd}",
                run=_runner(cfg, device, session_of, cmd, on_output),
                details={"command": cmd},
            )
        )
    return plan


def _runner(cfg: Config, device: Device, session_of: Any, cmd: str, on_output: Any) -> Callable[[], dict]:
    def run() -> dict:
        from .ssh import POWERSHELL_STDIN

        if session_of is None:
            raise RefusedError("a dry run does not run update commands")
        session = session_of()
        if device.os == "windows":
            res = session.run(POWERSHELL_STDIN, stdin=cmd, timeout=cfg.laptops.command_timeout, on_output=on_output)
        else:
            res = session.run(cmd, timeout=cfg.laptops.command_timeout, on_output=on_output)
        if res.status != 0:
            tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
            raise AupctlError(f"`{cmd}` exited with status {res.status}: {tail[0][:200]}")
        return {"status": res.status}

    return run


def checkin(
    cfg: Config,
    state: State,
    connector: Any,
    tag: str,
    *,
    update: bool = False,
    on_output: Callable[[str], None] | None = None,
    apply_plan: Callable[[Plan], None] | None = None,
) -> Result:
    """Probe and record (kind 'checkin', sets the next due date). With update: run the update plan through
    apply_plan (journalled, audited), probe again and record that too (kind 'update')."""
    device = inventory.get(state, inventory.check_tag(tag))
    if device.status != "active":
        raise RefusedError(f"laptop {device.tag} is retired; enrol it again to check it in")
    if update:
        update_commands(cfg, device)  # refuse before connecting when none are configured
    with connector.connect(device.host, device.port, pin_of(device), name=device.tag) as session:
        facts, findings, error = run_probe(session, device, cfg)
        inventory.record(state, cfg, device, "checkin", facts, findings, error=error)
        state.audit("laptop-checkin", device.tag, {"ok": facts is not None, "findings": len(findings)})
        if not update:
            return Result(inventory.get(state, device.tag), facts, findings, error)
        assert apply_plan is not None
        apply_plan(update_plan(cfg, device, lambda: session, on_output))
        after, after_findings, after_error = run_probe(session, device, cfg)
        inventory.record(state, cfg, device, "update", after, after_findings, error=after_error)
        state.audit(
            "laptop-checkin",
            device.tag,
            {"ok": after is not None, "findings": len(after_findings), "after_update": True},
        )
        return Result(inventory.get(state, device.tag), after, after_findings, after_error, before=(facts, findings))
