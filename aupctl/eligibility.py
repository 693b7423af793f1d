"""THE eligibility rule (policy 1.3, 9.1): may this account hold this restricted system?

Not a leaver (in the leavers OU), not disabled, a role that may be nominated for the system, and the
current AUP signed. `access grant` refuses with the first reason, `access review` reports every one
(by its check name), and the intake asks it before granting what a CSV row lists: one rule, one set of
words, wherever it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .directory import Account, is_under
from .records.signatures import signature
from .roles import RoleInfo, role_of
from .state import State

# The checks, in the order they are asked (grant gives the first that fails); names as access review reports them.
LEAVER, DISABLED, ROLE, AUP = "leaver-member", "disabled-member", "role-not-eligible", "aup-unsigned"


@dataclass(frozen=True)
class Ineligible:
    """One reason an account may not hold a system: the check, the reason naming the person, what to do."""

    check: str
    reason: str
    hint: str = ""

    def refusal(self) -> str:
        return f"{self.reason}; {self.hint}" if self.hint else self.reason


def is_leaver(cfg: Config, acct: Account) -> bool:
    return is_under(acct.dn, cfg.dn(cfg.directory.leavers_ou))


def ineligible(cfg: Config, acct: Account, system_key: str, role: RoleInfo, signed: bool | None) -> list[Ineligible]:
    """Every reason this account may not hold the system, in order ([] if it may). role: the account's role
    (roles.role_of, or a RoleResolver for many); signed: has it signed the current AUP (None: not asked,
    as when the caller records the signature in the same plan). A leaver needs no role: being one says it all."""
    system = cfg.system(system_key)
    who = acct.name
    out: list[Ineligible] = []
    leaver = is_leaver(cfg, acct)
    if leaver:
        out.append(Ineligible(LEAVER, f"{who} is a leaver (in {cfg.dn(cfg.directory.leavers_ou)})"))
    elif acct.disabled:
        out.append(Ineligible(DISABLED, f"{who}'s account is disabled"))
    if leaver:
        pass
    elif role.role is None:
        out.append(
            Ineligible(
                ROLE,
                f"{who} has no role ({role.why}), so may not be nominated for {system.name}",
                "see `staff set-role`",
            )
        )
    elif system_key not in cfg.roles[role.role].systems:
        allowed = ", ".join(cfg.roles[role.role].systems) or "none"
        out.append(
            Ineligible(
                ROLE,
                f"{who}'s role {role.role!r} ({role.why}) may not be nominated for {system.name} "
                f"(roles.{role.role}.systems: {allowed})",
            )
        )
    if signed is False:
        out.append(
            Ineligible(
                AUP,
                f"{who} has not signed the current AUP (version {cfg.school.aup_version})",
                f"record it first with `aupctl aup sign {acct.username}`",
            )
        )
    return out


def is_signed(cfg: Config, state: State, username: str, version: str | None = None) -> bool:
    """Has this person signed the AUP version (the current [school] aup_version by default)?"""
    return signature(state, username, version or cfg.school.aup_version) is not None


def refusal_for(cfg: Config, state: State, acct: Account, system_key: str, *, check_aup: bool = True) -> str | None:
    """Why this one account may not be given the system (the first reason), or None: grant's and the
    intake's question, reading the role and signature records for this person."""
    signed = is_signed(cfg, state, acct.username) if check_aup else None
    found = ineligible(cfg, acct, system_key, role_of(cfg, acct, state=state), signed)
    return found[0].refusal() if found else None
