"""`password reset`: a generated passphrase, a forced change at next logon, and an audit entry without it.

The plan is two changes: (1) write the new passphrase to the credentials file (created O_EXCL, 0600,
fsynced) and then set it in the directory — in that order, so a crash never leaves a password set
that nobody can read; if the directory refuses, the file we just made is removed; (2) force a change
at next logon (AD pwdLastSet 0, OpenLDAP pwdReset TRUE). With --show there is no file: the command
prints the passphrase once, after the plan has been applied.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import credfile
from ..credfile import CredentialsFile, require_new
from ..directory import require_account
from ..errors import AupctlError, InputError
from ..passphrase import generate
from ..plan import Change, Plan
from .denylist import check_candidate

if TYPE_CHECKING:
    from ..config import Config
    from ..directory import Account, Directory



@dataclass
class Secret:
    """A password held in memory only; its repr never shows it (tracebacks, debuggers, logs)."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__


def new_passphrase(cfg: Config, person: Account | None, *, tries: int = 20) -> Secret:
    """The intake's generator, checked against the same rules as `password check` (never a weak one)."""
    words = 4
    for _ in range(tries):
        candidate = generate(words)
        if len(candidate) < cfg.passwords.min_length:
            words += 1
            continue
        if not check_candidate(cfg, candidate, person=person):
            return Secret(candidate)
    raise AupctlError(
        f"could not generate a passphrase that passes the checks in {tries} tries",
        hint="check [passwords] min_length and deny_words in the config",
    )


def check_destination(credentials_out: str | None, show: bool) -> Path | None:
    """Exactly one place for the new password; the file must be new (never overwritten)."""
    if credentials_out and show:
        raise InputError("give --credentials-out FILE or --show, not both")
    if not credentials_out and not show:
        raise InputError(
            "say where the new password goes: --credentials-out FILE (a new file, mode 0600) "
            "or --show (printed once on this terminal)"
        )
    if not credentials_out:
        return None
    return require_new(credentials_out)


def _create_credentials(path: Path, acct: Account, secret: Secret) -> None:
    """Written and fsynced before the password is set; removed again if writing fails."""
    creds = CredentialsFile(path, credfile.RESET_COLUMNS)
    try:
        creds.write([[acct.username, acct.name, secret.value, "yes"]])
    except BaseException:
        creds.discard()
        raise
    creds.close()


def plan_reset(
    cfg: Config, directory: Directory, username: str, *, credentials_out: str | None = None, show: bool = False
) -> tuple[Plan, Secret]:
    """The reset plan for one account and the passphrase it will set (shown or filed by the caller)."""
    path = check_destination(credentials_out, show)
    acct = require_account(directory, username, changing=True)
    secret = new_passphrase(cfg, acct)
    flavour = directory.flavour
    where = f"written to {path} (mode 0600)" if path else "shown once on this terminal"

    def set_it() -> dict[str, Any]:
        if path is not None:
            _create_credentials(path, acct, secret)
        try:
            flavour.set_password(directory, acct.dn, secret.value)
        except BaseException:
            if path is not None:  # ours, made a moment ago: a password that was never set must not linger
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return {}

    def force_it() -> dict[str, Any]:
        flavour.force_change(directory, acct.dn)
        return {}

    plan = Plan(f"reset the password of {acct.username}")
    plan.add(
        Change(
            "password-reset",
            acct.username,
            f"set a new generated passphrase for {acct.username} ({acct.name}), {where}",
            run=set_it,
            details={"dn": acct.dn, "generated": "passphrase", "password_to": str(path) if path else "terminal"},
        )
    )
    plan.add(
        Change(
            "password-force-change",
            acct.username,
            f"make {acct.username} change it at next logon",
            run=force_it,
            details={"dn": acct.dn},
        )
    )
    if acct.disabled:
        plan.notes.append(f"{acct.username} is disabled: the reset does not enable the account")
    plan.summary = {"username": acct.username, "dn": acct.dn, "password_to": str(path) if path else "terminal"}
    return plan, secret
