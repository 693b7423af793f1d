"""A person's role: recorded by aupctl (at creation or by hand), else inferred from OU, else from groups.

The record itself (read and written) is records/roles.py; this is the rule that places a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .directory import Account, normalise_dn
from .records.roles import recorded_roles
from .state import State


@dataclass(frozen=True)
class RoleInfo:
    role: str | None
    why: str


def role_of(
    cfg: Config, acct: Account, recorded: dict[str, tuple[str, str]] | None = None, state: State | None = None
) -> RoleInfo:
    if recorded is None:
        recorded = recorded_roles(state) if state else {}
    return RoleResolver(cfg, recorded)(acct)


NO_ROLE = RoleInfo(None, "no role: not in a role's OU or groups, and none recorded")


class RoleResolver:
    """role_of for many accounts: the roles' OU and group DNs normalised once (a review places thousands)."""

    def __init__(self, cfg: Config, recorded: dict[str, tuple[str, str]]) -> None:
        self.cfg = cfg
        self.recorded = recorded
        self.by_ou = [
            (normalise_dn(cfg.dn(role.ou)), RoleInfo(name, f"account is in {cfg.dn(role.ou)}"))
            for name, role in cfg.roles.items()
            if role.ou  # None (known by groups or the record) and "" (the whole base) place nobody by OU
        ]
        # A group several roles list (e.g. "All Staff") says less than one only a single role lists:
        # the role with the most specific group the account is in wins; ties go to the config's order.
        shared: dict[str, int] = {}
        for role in cfg.roles.values():
            for group in dict.fromkeys(normalise_dn(cfg.group_dn(g)) for g in role.groups):
                shared[group] = shared.get(group, 0) + 1
        self.by_group = sorted(
            (
                (normalise_dn(cfg.group_dn(group)), RoleInfo(name, f"member of {group}"))
                for name, role in cfg.roles.items()
                for group in role.groups
            ),
            key=lambda pair: shared[pair[0]],
        )

    def __call__(self, acct: Account) -> RoleInfo:
        rec = self.recorded.get(acct.username.lower())
        if rec and rec[0] in self.cfg.roles:
            role, source = rec
            return RoleInfo(role, "recorded when aupctl created the account" if source == "created" else "set by hand")
        dn = normalise_dn(acct.dn)
        for ou, info in self.by_ou:
            if dn == ou or dn.endswith("," + ou):
                return info
        if acct.groups:
            mine = {normalise_dn(g) for g in acct.groups}
            for group, info in self.by_group:
                if group in mine:
                    return info
        return NO_ROLE
