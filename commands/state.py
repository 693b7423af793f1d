"""aupctl state init"""

from __future__ import annotations

from pathlib import Path

import click

from .context import Ctx, pass_ctx
from .output import message


@click.group("state")
def cli() -> None:
    """The state store: approvals, signatures, tasks, laptops, leaver snapshots and the audit log."""


@cli.command("init")
@pass_ctx
def init(ctx: Ctx) -> None:
    """Make a new, empty state store at [state] path.

    Only where no file exists, or the file there is empty (zero-length): a store holding anything is
    never overwritten (exit 2). Every other command refuses an empty or foreign file at that path
    instead of silently starting a new store, so a lost store is noticed.
    """
    from aupctl.state import default_state_path, init_store

    path = Path(ctx.config.state.path) if ctx.config.state.path else default_state_path()
    message(init_store(path))
