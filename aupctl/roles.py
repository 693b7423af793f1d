"""A person's role: recorded by aupctl (at creation or by hand), else inferred from OU, else from groups."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .directory import Account, normalise_dn
from .state import State, actor, now_iso


@dataclass(frozen=True)
class RoleInfo:
    role: str | None
    why: str


def recorded_roles(state: State) -> dict[str, tuple[str, str]]:
    return {r["username"].lower(): (r["role"], r["source"]) for r in state.query("SELECT * FROM roles")}


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


def set_role(state: State, username: str, role: str, source: str = "set") -> None:
    state.execute(
        "INSERT INTO roles (username, role, source, recorded_by, recorded_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT(username) DO UPDATE SET role=excluded.role, source=excluded.source, "
        "recorded_by=excluded.recorded_by, recorded_at=excluded.recorded_at",
        (username, role, source, actor(), now_iso()),
    )
