"""aupctl licence report"""

from __future__ import annotations

import click

from .context import Ctx, pass_ctx
from .output import exit_with, message, render, render_findings


@click.group("licence")
def cli() -> None:
    """Software licences: seats used against seats owned (policy 6.7).

    Licences are [[licences]] entries in the config (product, match globs, seats, expires). Installs are
    counted from each laptop's latest successful check-in or audit.
    """


@cli.command("report", short_help="Seats used against owned, expiring, unlicensed; exit 1 on findings.")
@pass_ctx
def report(ctx: Ctx) -> None:
    """Seats used against seats owned, licences expiring within 60 days, unlicensed software.

    Exit 0 when all is in order, 1 when there are findings (over-allocated, expiring or expired with
    installs, software in [laptops] needs_licence that no licence covers).
    """
    import datetime as dt

    from aupctl.laptops.licences import report as build

    rep = build(ctx.config, ctx.state, dt.date.today())
    if ctx.fmt == "json":
        render(
            ctx,
            [],
            json_obj={
                "licences": rep.rows,
                "unlicensed": rep.unlicensed,
                "findings": [f.as_row() for f in rep.findings],
                "laptops_counted": rep.laptops_counted,
                "laptops_without_facts": rep.laptops_without_facts,
            },
        )
        exit_with(1 if rep.findings else 0)
        return
    render(
        ctx,
        rep.rows,
        ["product", "seats", "used", "free", "expires", "days_left", "status"],
        empty="no [[licences]] in the config",
    )
    if ctx.fmt == "csv":  # one table per output: the licences; findings are in the JSON and table forms
        exit_with(1 if rep.findings else 0)
        return
    if ctx.fmt == "table":
        message(f"counted from {rep.laptops_counted} laptop(s)")
        if rep.laptops_without_facts:
            message(f"not counted (never probed): {', '.join(rep.laptops_without_facts)}")
        click.echo()
    exit_with(render_findings(ctx, rep.findings, clean="licences in order"))
