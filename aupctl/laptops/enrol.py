"""Plans for the inventory: enrol (pin the host key), assign, return, retire."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..directory import require_account
from ..eligibility import is_leaver
from ..errors import ConfigError, HostKeyError, InputError, RefusedError, UnreachableError
from ..plan import Change, Plan
from ..records import leavers as leaver_records
from ..state import State
from . import inventory


@dataclass(frozen=True)
class HostInfo:
    """What enrolment learnt from the laptop before pinning anything."""

    key_type: str
    key_b64: str
    fingerprint: str
    os: str


def check_username(username: str) -> str:
    from ..text import problem

    username = (username or "").strip()
    if not username or len(username) > 256:
        raise InputError(f"USER {username!r} is not a username")
    why = problem(username)  # kept in the store even when the directory cannot be asked
    if why:
        raise InputError(f"USER {username!r} {why}: not a username")
    return username


def resolve_user(
    directory_of: Callable[[], Any] | None, username: str, state: State | None = None
) -> tuple[str, str | None]:
    """The directory's spelling of the username, or (as given, why it was not checked) when the directory
    cannot be reached. An account the directory does not hold is refused (NotFoundError); so is a leaver
    (RefusedError): in the leavers OU or disabled in the directory, or scheduled or withdrawn in the
    leavers table (checked whether or not the directory can be reached)."""
    username = check_username(username)
    if state is not None:
        _refuse_scheduled_leaver(state, username)
    if directory_of is None:
        return username, f"no directory to check {username!r} against"
    try:
        directory = directory_of()
    except (UnreachableError, ConfigError) as exc:
        return username, f"the directory could not be reached, so {username!r} was not checked: {exc.message}"
    acct = require_account(directory, username)
    if is_leaver(directory.cfg, acct):
        raise RefusedError(f"{acct.username} is a leaver (their account is in the leavers OU): no laptop is assigned")
    if acct.disabled:
        raise RefusedError(
            f"{acct.username}'s account is disabled in the directory (a leaver?): no laptop is assigned",
            hint="enable the account first if they are staying",
        )
    if state is not None and acct.username != username:
        _refuse_scheduled_leaver(state, acct.username)
    return acct.username, None


def _refuse_scheduled_leaver(state: State, username: str) -> None:
    for row in leaver_records.open_rows(state):
        if row["username"].casefold() == username.casefold():
            raise RefusedError(
                f"{row['username']} is a leaver ({row['status']}, leaving on {row['leave_on']}): no laptop is assigned",
                hint="`aupctl leaver cancel` first if they are staying",
            )


def detect_os(session: Any, timeout: float) -> str:
    res = session.run("uname -s", timeout=timeout)
    word = res.stdout.strip().lower()
    if res.status == 0 and word.startswith("linux"):
        return "linux"
    if res.status == 0 and word.startswith("darwin"):
        return "macos"
    res = session.run("cmd /c ver", timeout=timeout)
    if "windows" in res.stdout.lower():
        return "windows"
    raise InputError("could not tell the laptop's OS from `uname -s` or `ver`: pass --os windows|linux|macos")


def look(cfg: Config, connector: Any, host: str, port: int, expect: str | None, os_name: str | None) -> HostInfo:
    """First contact: get the host key (checked against --fingerprint before authenticating), prove that
    aupctl's key is accepted, and find the OS. Pins nothing."""
    with connector.connect(host, port, None, expect=expect) as session:
        found = os_name or detect_os(session, cfg.laptops.connect_timeout * 3)
        pin = session.pin
    return HostInfo(pin.key_type, pin.key_b64, pin.fingerprint, found)


def enrol_plan(
    cfg: Config,
    state: State,
    connector: Any,
    *,
    host: str,
    tag: str,
    port: int = 22,
    os_name: str | None = None,
    fingerprint: str | None = None,
    assign: str | None = None,
    replace_key: bool = False,
    directory_of: Callable[[], Any] | None = None,
) -> tuple[Plan, HostInfo | None]:
    tag = inventory.check_tag(tag)
    host = inventory.check_host(host)
    port = inventory.check_port(port)
    os_name = inventory.check_os(os_name)
    fingerprint = inventory.check_fingerprint(fingerprint)
    if replace_key and not fingerprint:  # a changed key is never taken on trust, --yes or not
        raise InputError(
            "--replace-key needs --fingerprint SHA256:...: the new host key's fingerprint, read at the laptop",
            hint="on the laptop: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub (Windows: "
            "ssh-keygen -lf $env:ProgramData\\ssh\\ssh_host_ed25519_key.pub); nothing was pinned",
        )
    plan = Plan(f"enrol laptop {tag}")
    assignee, note = (None, None)
    if assign is not None:
        assignee, note = resolve_user(directory_of, assign, state)
        if note:
            plan.notes.append(note)

    existing = inventory.find(state, tag)
    expect = _expected_key(state, existing, tag, host, port, fingerprint, replace_key)
    try:
        info = look(cfg, connector, host, port, expect, os_name)
    except HostKeyError as exc:
        if existing and expect == existing.fingerprint and not fingerprint:
            raise HostKeyError(
                f"laptop {tag}: {exc.message}; the pinned key is {existing.fingerprint}",
                hint="if the laptop was re-imaged, read its new key at the laptop and re-run with "
                "--replace-key --fingerprint SHA256:...",
            ) from None
        raise

    if existing and existing.status == "active" and existing.fingerprint == info.fingerprint and not replace_key:
        plan.notes.append(f"{tag} is already enrolled with host key {info.fingerprint}")
    else:
        replace = existing is not None
        verb = "re-pin" if replace else "pin"
        plan.add(
            Change(
                "laptop-enrol",
                tag,
                f"{verb} host key {info.key_type} {info.fingerprint} for {host}:{port} and record laptop {tag} "
                f"({info.os})",
                run=lambda: inventory.add(
                    state,
                    cfg,
                    tag=tag,
                    host=host,
                    port=port,
                    os_name=info.os,
                    key_type=info.key_type,
                    key_b64=info.key_b64,
                    fp=info.fingerprint,
                    replace=replace,
                ),
                details={"host": host, "port": port, "os": info.os, "fingerprint": info.fingerprint, "rekey": replace},
            )
        )
        if fingerprint is None:
            plan.notes.append(
                "check this fingerprint at the laptop (`ssh-keygen -lf` on its host key, or Get-FileHash on "
                "Windows' ssh_host_ed25519_key.pub) before confirming; or pass --fingerprint"
            )
    current = existing.assigned_to if existing and existing.status == "active" else None
    if assignee and (current or "").lower() != assignee.lower():
        plan.add(_assign_change(state, tag, assignee, current))
    return plan, info


def _expected_key(
    state: State,
    existing: inventory.Device | None,
    tag: str,
    host: str,
    port: int,
    fingerprint: str | None,
    replace_key: bool,
) -> str | None:
    """The host key the laptop must offer (None: any, to be checked by eye); refuses a host or tag in use."""
    for other in inventory.devices(state):
        if other.host.lower() == host.lower() and other.port == port and other.tag.lower() != tag.lower():
            raise RefusedError(f"{host}:{port} is already enrolled as laptop {other.tag}; retire it first")
    if existing and existing.status == "active" and not replace_key:
        if (existing.host.lower(), existing.port) != (host.lower(), port):
            raise RefusedError(
                f"asset tag {tag} is already enrolled at {existing.host}:{existing.port}",
                hint="retire it first, or pick the right asset tag",
            )
        return existing.fingerprint  # same laptop again: its key must still be the pinned one
    return fingerprint


def _assign_change(state: State, tag: str, username: str, current: str | None) -> Change:
    was = f" (was {current})" if current else ""
    return Change(
        "laptop-assign",
        tag,
        f"assign laptop {tag} to {username}{was}",
        run=lambda: inventory.set_assigned(state, tag, username),
        details={"user": username, "previous": current},
    )


def assign_plan(state: State, tag: str, user: str, directory_of: Callable[[], Any] | None) -> Plan:
    device = inventory.get(state, inventory.check_tag(tag))
    if device.status != "active":
        raise RefusedError(f"laptop {device.tag} is retired")
    username, note = resolve_user(directory_of, user, state)
    plan = Plan(f"assign laptop {device.tag}", notes=[note] if note else [])
    if (device.assigned_to or "").lower() == username.lower():
        plan.notes.append(f"{device.tag} is already assigned to {device.assigned_to}")
    else:
        plan.add(_assign_change(state, device.tag, username, device.assigned_to))
    return plan


def return_plan(state: State, tag: str) -> Plan:
    device = inventory.get(state, inventory.check_tag(tag))
    plan = Plan(f"laptop {device.tag} returned")
    if not device.assigned_to:
        plan.notes.append(f"{device.tag} is not assigned to anyone")
        return plan
    plan.add(
        Change(
            "laptop-return",
            device.tag,
            f"record laptop {device.tag} as returned by {device.assigned_to}",
            run=lambda: inventory.set_assigned(state, device.tag, None),
            details={"user": device.assigned_to},
        )
    )
    return plan


def retire_plan(cfg: Config, state: State, tag: str) -> Plan:
    device = inventory.get(state, inventory.check_tag(tag))
    plan = Plan(f"retire laptop {device.tag}")
    if device.status == "retired":
        plan.notes.append(f"{device.tag} is already retired")
        return plan
    if device.assigned_to:
        plan.notes.append(f"it is still assigned to {device.assigned_to}: retiring it records it as returned")
    plan.add(
        Change(
            "laptop-retire",
            device.tag,
            f"retire laptop {device.tag} ({device.host}) and unpin its host key {device.fingerprint}",
            run=lambda: inventory.retire(state, cfg, device.tag),
            details={"user": device.assigned_to, "fingerprint": device.fingerprint},
        )
    )
    return plan
