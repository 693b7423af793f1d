"""AUP declarations (policy 8.1, 9.1): who signed which version, when, recorded by whom.

A signature carries the SHA-256 of the policy text (`[school] aup_text`) when the school names the
file, so a later dispute can show which words were signed. Restricted access needs a signature of the
current `[school] aup_version`: grants made while one was missing wait (approvals with status
'waiting'), and `sign` hands them back so the caller can apply them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..csvfile import read as read_csv
from ..dates import parse_date
from ..directory import Account, Directory
from ..errors import AupctlError, ConfigError, InputError
from ..plan import Change, Plan
from ..records import approvals, signatures
from ..records.roles import recorded_roles
from ..roles import role_of
from ..state import State, today
from ..text import problem as unsafe_problem
from ..text import refuse_unsafe
from .grant import grant_changes
from .shared import account_here

IMPORT_REQUIRED = ["username"]
# Extra columns an office export may carry; read and ignored except those we use.
IMPORT_OPTIONAL = ["version", "signed_on", "name", "first_name", "last_name", "staff_code", "notes"]
IMPORT_ALIASES = {"signed_on": ("date", "signed", "date_signed", "signed_date"), "version": ("aup_version",)}


def text_hash(cfg: Config) -> str | None:
    """SHA-256 of the policy text named by [school] aup_text, or None when no file is named."""
    path = cfg.school.aup_text
    if not path:
        return None
    try:
        # O_NONBLOCK: a FIFO is refused at once, not waited on; a device (/dev/zero) is refused, not hashed forever.
        # Neither flag exists on Windows (no FIFOs there to wait on; handles are not inherited by default).
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        with open(os.open(path, flags), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ConfigError(f"{cfg.source}: school.aup_text {path} is not a regular file")
            return hashlib.file_digest(fh, "sha256").hexdigest()  # streamed: memory bounded whatever its size
    except OSError as exc:
        raise ConfigError(
            f"{cfg.source}: school.aup_text names {path}, which cannot be read: {exc.strerror}",
            hint="fix the path or remove the key",
        ) from None


def signed_date(value: str | dt.date, what: str) -> dt.date:
    """The day a declaration was signed (dates.py's forms): not in the future."""
    return parse_date(value, what, future=False)


def waiting_grants(cfg: Config, state: State, username: str) -> list[dict[str, Any]]:
    """Approvals recorded while this person's signature was missing, waiting to be applied."""
    return approvals.live(state, username=username, status=("waiting",))


def sign(
    cfg: Config,
    state: State,
    username: str,
    version: str | None = None,
    on: dt.date | str | None = None,
    *,
    audit: bool = True,
) -> list[dict[str, Any]]:
    """Record a signed declaration (idempotent: a second one of the same version is kept as the first).

    Returns the approvals that were waiting for it (only when the current version is signed); the caller
    applies them through access.grant_changes.
    """
    version = refuse_unsafe((version or cfg.school.aup_version).strip(), "the AUP version")
    if not version:
        raise InputError("the AUP version is empty")
    if on is None:
        day = today()
    elif isinstance(on, dt.date):
        day = on  # read and checked already (--on, the CSV's signed_on)
    else:
        day = signed_date(on, "--on")
    digest = text_hash(cfg) if version == cfg.school.aup_version else None
    signatures.record(state, username, version, day, digest, audit=audit)
    if version != cfg.school.aup_version:
        return []
    return waiting_grants(cfg, state, username)


@dataclass(frozen=True)
class SignatureRow:
    line: int
    username: str
    version: str
    signed_on: dt.date


def read_signatures(cfg: Config, path: str) -> list[SignatureRow]:
    """Read and check a signatures CSV; one bad row refuses the whole file, naming the line and field."""
    mapping = {k: v for k, v in cfg.import_.columns.items() if k in IMPORT_REQUIRED + IMPORT_OPTIONAL}
    # Common office headers for the date and version, unless the school mapped its own.
    table = read_csv(
        path,
        required=IMPORT_REQUIRED,
        optional=IMPORT_OPTIONAL + _alias_names(mapping),
        mapping=mapping,
        max_bytes=cfg.import_.max_bytes,
    )
    out: list[SignatureRow] = []
    seen: dict[tuple[str, str], int] = {}
    errors: list[str] = []
    for row in table.rows:
        values = _unalias(row.values)
        username = values.get("username", "").strip()
        if not username:
            errors.append(f"{path}: line {row.line}: username is empty")
            continue
        version = values.get("version", "").strip() or cfg.school.aup_version
        why = unsafe_problem(version)
        if why:
            errors.append(f"{path}: line {row.line}: version {why}")
            continue
        try:
            day = (
                signed_date(values["signed_on"], f"{path}: line {row.line}: signed_on")
                if values.get("signed_on")
                else today()
            )
        except InputError as exc:
            errors.append(exc.message)
            continue
        key = (username.lower(), version)
        if key in seen:
            errors.append(f"{path}: line {row.line}: {username} version {version} is already on line {seen[key]}")
            continue
        seen[key] = row.line
        out.append(SignatureRow(row.line, username, version, day))
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputError("; ".join(errors[:5]) + more + "; nothing was recorded")
    return out


def _alias_names(mapping: dict[str, str]) -> list[str]:
    return [a for ours, names in IMPORT_ALIASES.items() if ours not in mapping for a in names]


def _unalias(values: dict[str, str]) -> dict[str, str]:
    out = dict(values)
    for ours, names in IMPORT_ALIASES.items():
        if not out.get(ours):
            for n in names:
                if out.get(n):
                    out[ours] = out[n]
                    break
    return out


def status(
    cfg: Config, directory: Directory, state: State, *, unsigned_only: bool = False, include_disabled: bool = False
) -> list[dict[str, Any]]:
    """`aup status`: everyone under the staff OU (enabled ones unless asked), signed or not."""
    accounts = [a for a in directory.flavour.iter_accounts(directory) if include_disabled or not a.disabled]
    recorded = recorded_roles(state)
    roles = {a.username.lower(): role_of(cfg, a, recorded).role for a in accounts}
    return status_rows(cfg, state, accounts, roles, unsigned_only=unsigned_only)


def status_rows(
    cfg: Config, state: State, accounts: list[Account], roles: dict[str, str | None], *, unsigned_only: bool = False
) -> list[dict[str, Any]]:
    """One row per account: the current version signed or not, and their latest signature."""
    current = cfg.school.aup_version
    cur_rows = signatures.of_version(state, current)
    signed_now = set(cur_rows)
    latest = signatures.latest_signatures(state)
    rows: list[dict[str, Any]] = []
    for acct in accounts:
        key = acct.username.lower()
        has = key in signed_now
        if unsigned_only and has:
            continue
        last = cur_rows.get(key) or latest.get(key)
        rows.append(
            {
                "username": acct.username,
                "name": acct.name,
                "role": roles.get(key),
                "current_version": current,
                "signed": has,
                "signed_version": last["version"] if last else None,
                "signed_on": last["signed_on"] if last else None,
                "recorded_by": last["recorded_by"] if last else None,
            }
        )
    rows.sort(key=lambda r: (r["signed"], r["name"].lower(), r["username"].lower()))
    return rows


# -- plans: recording signatures, and the grants that were waiting for them --


def _sign_change(cfg: Config, state: State, username: str, version: str, day: dt.date) -> Change:
    return Change(
        "aup-sign",
        username,
        f"record {username}'s signed AUP declaration, version {version}, signed on {day.isoformat()}",
        run=lambda: (
            {"text_hash": text_hash(cfg) if version == cfg.school.aup_version else None}
            | {"waiting": len(sign(cfg, state, username, version, day, audit=False))}
        ),
        details={"version": version, "signed_on": day.isoformat()},
    )


def _waiting_changes(cfg: Config, directory: Directory, state: State, acct: Account, plan: Plan) -> None:
    """Add the grants that waited for this signature; one that can no longer be given becomes a note."""
    for row in waiting_grants(cfg, state, acct.username):
        if row["system"] not in cfg.systems:
            plan.notes.append(f"{acct.username}: a waiting grant names system {row['system']!r}, no longer configured")
            continue
        try:
            plan.extend(
                grant_changes(
                    cfg,
                    directory,
                    state,
                    acct.username,
                    row["system"],
                    row["approver"],
                    row["reason"],
                    row["until"],
                    source=row["source"],
                    acct=acct,
                    assume_signed=True,
                )
            )
            plan.notes.append(
                f"{acct.username}: {cfg.systems[row['system']].name} was waiting for this signature "
                f"(approved by {row['approver']} on {row['granted_at'][:10]})"
            )
        except AupctlError as exc:
            plan.notes.append(f"{acct.username}: the waiting grant of {row['system']} stays waiting: {exc.message}")


def sign_plan(
    cfg: Config, directory: Directory, state: State, username: str, version: str | None = None, on: str | None = None
) -> Plan:
    text_hash(cfg)  # an unreadable [school] aup_text is refused before anything is shown or recorded
    acct = account_here(cfg, directory, state, username, changing=True)
    version = refuse_unsafe(
        (version or cfg.school.aup_version).strip(), "--version" if version else "[school] aup_version"
    )
    if not version:
        raise InputError("--version is empty")
    day = signed_date(on, "--on") if on else today()
    plan = Plan(f"record {acct.username}'s AUP declaration ({version})")
    existing = signatures.signature(state, acct.username, version)
    if existing:
        plan.notes.append(
            f"{acct.username} already signed version {version} on {existing['signed_on']} "
            f"(recorded by {existing['recorded_by']})"
        )
    else:
        plan.add(_sign_change(cfg, state, acct.username, version, day))
    if version == cfg.school.aup_version:
        _waiting_changes(cfg, directory, state, acct, plan)
    else:
        plan.notes.append(f"version {version} is not the current one ({cfg.school.aup_version})")
    return plan


def import_plan(cfg: Config, directory: Directory, state: State, path: str) -> Plan:
    """A file of signed declarations: every username must be an account (else nothing is recorded)."""
    rows = read_signatures(cfg, path)
    text_hash(cfg)
    fl = directory.flavour
    found: dict[str, Account] = {}
    names = sorted({r.username for r in rows})
    for i in range(0, len(names), 100):
        for dn, attrs in directory.search(
            cfg.directory.base_dn, fl.users_filter(names[i : i + 100]), fl.user_attributes
        ):
            acct = fl.account(dn, attrs)
            found[acct.username.lower()] = acct
    unknown = [r for r in rows if r.username.lower() not in found]
    if unknown:
        listed = "; ".join(f"line {r.line}: no account {r.username!r}" for r in unknown[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise InputError(f"{path}: {listed}{more}; nothing was recorded", hint="fix the usernames and import again")
    already = signatures.recorded_pairs(state)
    plan = Plan(f"record {len(rows)} signed AUP declaration(s) from {path}")
    skipped = 0
    for r in rows:
        acct = found[r.username.lower()]
        if (acct.username.lower(), r.version) in already:
            skipped += 1
            continue
        plan.add(_sign_change(cfg, state, acct.username, r.version, r.signed_on))
        if r.version == cfg.school.aup_version:
            _waiting_changes(cfg, directory, state, acct, plan)
    if skipped:
        plan.notes.append(f"{skipped} declaration(s) already on record")
    plan.summary = {"signatures": sum(1 for c in plan.changes if c.action == "aup-sign"), "already": skipped}
    return plan
