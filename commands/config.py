"""aupctl config check | set-password"""

from __future__ import annotations

import click

from aupctl.errors import InputError

from .context import Ctx, pass_ctx
from .output import message, warn


@click.group("config")
def cli() -> None:
    """Check the config file; store the bind password in the keyring."""


@cli.command("check")
@pass_ctx
def check(ctx: Ctx) -> None:
    """Validate the config file and say exactly what is wrong (exit 2).

    Warnings (a role with neither ou nor groups, a glob that looks like a regular expression, a group
    outside base_dn) are printed but do not fail: exit 0.
    """
    from aupctl.config import warnings

    cfg = ctx.config
    found = warnings(cfg)
    for text in found:
        warn(text)
    message(
        f"{cfg.source}: OK — {cfg.school.name}, {cfg.directory.flavour} at {', '.join(cfg.directory.url)}; "
        f"{len(cfg.roles)} roles, {len(cfg.systems)} systems, {len(cfg.licences)} licences"
        + (f"; {len(found)} warning(s)" if found else "")
    )


@cli.command("set-password")
@pass_ctx
def set_password(ctx: Ctx) -> None:
    """Store the directory bind password in the OS keyring (asked at a hidden prompt)."""
    from aupctl.credentials import store_bind_password

    cfg = ctx.config
    if not click.get_text_stream("stdin").isatty():
        secret = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        secret = click.prompt(
            f"Bind password for {cfg.directory.bind_dn}", hide_input=True, confirmation_prompt=True, err=True
        )
    if not secret:
        raise InputError("empty password: nothing stored")
    store_bind_password(cfg.directory.bind_dn, secret)
    message(f"stored in the keyring (service 'aupctl', user {cfg.directory.bind_dn!r})")
