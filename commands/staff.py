"""aupctl staff list | show | set-role (import joins later)"""

from __future__ import annotations

import click

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import changing, render


@click.group("staff")
def cli() -> None:
    """Staff accounts: list, show, import, set a role."""


@cli.command("list")
@click.option("--role", metavar="ROLE", help="Only this role (a [roles.NAME] in the config).")
@click.option("--include-disabled", is_flag=True, help="Include disabled accounts.")
@pass_ctx
def list_(ctx: Ctx, role: str | None, include_disabled: bool) -> None:
    """Staff accounts under the staff OU, with their role."""
    from aupctl.staff.people import list_staff

    rows = list_staff(ctx.config, ctx.directory, ctx.state, role=role, include_disabled=include_disabled)
    cols = ["username", "name", "role", "email", "staff_code", "enabled"]
    data = [{c: r.get(c) for c in cols + ["dn"]} for r in rows]  # JSON only: CSV keeps the table's columns
    render(ctx, rows, cols, json_obj=data, empty="no staff accounts match")


@cli.command("show")
@click.argument("user", shell_complete=complete_user)
@pass_ctx
def show(ctx: Ctx, user: str) -> None:
    """One account: details, role and why, groups, password and logon dates."""
    from aupctl.staff.people import show as show_user

    row = show_user(ctx.config, ctx.directory, ctx.state, user)
    render(ctx, [{"field": k.replace("_", " "), "value": v} for k, v in row.items()], ["field", "value"], json_obj=row)


@cli.command("set-role")
@click.argument("user", shell_complete=complete_user)
@click.argument("role")
@changing
@pass_ctx
def set_role(ctx: Ctx, user: str, role: str, dry_run: bool, yes: bool) -> None:
    """Record USER's ROLE by hand (a [roles.NAME] in the config).

    A person's role decides which restricted systems they may be nominated for. Without one set by
    hand or at creation, aupctl infers it from the account's OU, then its groups (`staff show` says
    which and why). Recorded in the state store and the audit log; the directory is not changed.
    """
    from aupctl.staff.people import set_role_plan

    from .output import run_plan

    plan = set_role_plan(ctx.config, ctx.directory, ctx.state, user, role)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


def _register_import() -> None:
    from .staff_import import import_

    cli.add_command(import_)
    from .staff_sync import sync

    cli.add_command(sync)


_register_import()
