"""aupctl aup sign | import | status (policy 8.1, 9.1)"""

from __future__ import annotations

import click

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import bulk, changing, render, run_plan


@click.group("aup")
def cli() -> None:
    """AUP declarations: record, import and report signatures (policy 8.1, 9.1).

    Each signature keeps the version, the date signed, who recorded it and (when [school] aup_text
    names the policy file) the SHA-256 of the text. Restricted access needs a signature of the current
    [school] aup_version; grants that were waiting for one are applied when it is recorded.
    """


@cli.command("sign", short_help="Record USER's signed declaration; apply grants waiting for it.")
@click.argument("user", shell_complete=complete_user)
@click.option("--version", "version", metavar="V", help="AUP version signed (default: [school] aup_version).")
@click.option(
    "--on", "on", metavar="DATE", help="The day the declaration was signed, YYYY-MM-DD or DD/MM/YYYY (default: today)."
)
@changing
@bulk("aup sign")
@pass_ctx
def sign(ctx: Ctx, user: str, version: str | None, on: str | None, dry_run: bool, yes: bool) -> None:
    """Record USER's signed AUP declaration, and apply any grant that was waiting for it.

    Recording the same version twice keeps the first. Exit 2 (nothing recorded) for an unknown
    account or a bad date.
    """
    from aupctl.access.aup import sign_plan

    plan = sign_plan(ctx.config, ctx.directory, ctx.state, user, version, on)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("import", short_help="Record many signed declarations from a CSV file.")
@click.argument("file", type=click.Path(dir_okay=False))
@changing
@bulk("aup import")
@pass_ctx
def import_(ctx: Ctx, file: str, dry_run: bool, yes: bool) -> None:
    """Record a term's worth of signed declarations from FILE.csv.

    Columns: username (required), version (default: the current one), signed_on (YYYY-MM-DD or
    DD/MM/YYYY, day first; default today; "date" also accepted). Excel's CSV and CSV UTF-8 both work. One bad row
    (an unknown account, a bad or future date, a duplicate) refuses the whole file, naming the line:
    nothing is recorded. Declarations already on record are skipped, so importing twice is safe.
    """
    from aupctl.access.aup import import_plan

    plan = import_plan(ctx.config, ctx.directory, ctx.state, file)
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("status", short_help="Who has signed which version; --unsigned: who has not.")
@click.option("--unsigned", is_flag=True, help="Only staff who have not signed the current version.")
@click.option("--include-disabled", is_flag=True, help="Include disabled accounts.")
@pass_ctx
def status(ctx: Ctx, unsigned: bool, include_disabled: bool) -> None:
    """Who under the staff OU has signed which version, and who has not signed the current one."""
    from aupctl.access.aup import status as signature_status

    rows = signature_status(
        ctx.config, ctx.directory, ctx.state, unsigned_only=unsigned, include_disabled=include_disabled
    )
    cols = ["username", "name", "role", "signed", "signed_version", "signed_on", "recorded_by"]
    render(
        ctx,
        rows,
        cols,
        data_columns=["current_version", *cols],
        empty="everyone has signed the current version" if unsigned else "no staff accounts",
    )
