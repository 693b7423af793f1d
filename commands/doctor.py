"""aupctl doctor"""

from __future__ import annotations

import sys

import click

from aupctl.errors import EXIT_UNREACHABLE, EXIT_USAGE

from .context import Ctx, pass_ctx
from .output import render


@click.command("doctor")
@pass_ctx
def cli(ctx: Ctx) -> None:
    """Check config, keyring, credentials, state store, reachability, TLS, bind and read access.

    Exit 0 when every check passes, 2 for a config or credentials problem, 3 when the directory
    cannot be reached or refuses the bind.
    """
    from aupctl import doctor

    checks = doctor.run(ctx.config_path)
    rows = [{"check": c.check, "ok": c.ok, "detail": c.detail} for c in checks]
    if ctx.fmt == "table":
        for r in rows:
            r["ok"] = click.style("ok", fg="green") if r["ok"] else click.style("FAIL", fg="red")
    render(ctx, rows, ["check", "ok", "detail"])
    failed = {c.check for c in checks if not c.ok}
    if failed & {"reach", "tls", "bind"}:
        sys.exit(EXIT_UNREACHABLE)
    if failed & {"config", "credentials", "state store"}:
        sys.exit(EXIT_USAGE)
    if failed:
        sys.exit(1)
