"""aupctl laptop enrol | assign | return | retire | list | show | checkin | audit"""

from __future__ import annotations

import sys
from typing import Any

import click

from .completion import complete_tag, complete_user
from .context import Ctx, pass_ctx
from .output import (
    changing,
    confirm,
    exit_with,
    for_people,
    message,
    note,
    render,
    render_findings,
    run_plan,
    show_plan,
)
from .schools import all_schools_option, run_all_schools

OS_CHOICE = click.Choice(["windows", "linux", "macos"])
LIST_COLUMNS = ["tag", "host", "os", "assigned_to", "last_seen", "next_due", "overdue", "findings", "status"]
LIST_JSON_COLUMNS = [*LIST_COLUMNS[:2], "port", *LIST_COLUMNS[2:], "enrolled_at", "fingerprint"]


def _connector(ctx: Ctx) -> Any:
    from aupctl.laptops.ssh import Connector

    return Connector(ctx.config.laptops)


def _directory_of(ctx: Ctx) -> Any:
    return lambda: ctx.directory


@click.group("laptop")
def cli() -> None:
    """School laptops: enrol, check in over SSH, audit (policy 1.4, 6.7, 6.8).

    aupctl logs in to each laptop over SSH with [laptops] ssh_user and ssh_key, and accepts only the
    host key pinned at enrolment (exit 3 for an unknown or changed key). See docs/laptops.md.
    """


@cli.command("enrol", short_help="Pin a laptop's SSH host key and record it.")
@click.argument("host")
@click.option("--asset-tag", "tag", required=True, metavar="TAG", help="The laptop's asset tag (its name in aupctl).")
@click.option("--assign", "assign", metavar="USER", help="Assign it to this staff username (checked in the directory).")
@click.option("--os", "os_name", type=OS_CHOICE, help="Its OS (default: asked over SSH with `uname -s` / `ver`).")
@click.option(
    "--fingerprint",
    metavar="SHA256:…",
    help="The host key fingerprint read at the laptop; a different key is refused and nothing is pinned.",
)
@click.option("--port", type=int, default=22, show_default=True, help="SSH port.")
@click.option(
    "--replace-key", is_flag=True, help="Re-pin an enrolled laptop's key (after re-imaging); needs --fingerprint."
)
@changing
@pass_ctx
def enrol(
    ctx: Ctx,
    host: str,
    tag: str,
    assign: str | None,
    os_name: str | None,
    fingerprint: str | None,
    port: int,
    replace_key: bool,
    dry_run: bool,
    yes: bool,
) -> None:
    """Enrol the laptop at HOST: show its SSH host key's SHA256 fingerprint and pin it.

    aupctl connects once, checks that its key is accepted, and pins the host key it saw (or refuses it
    when --fingerprint names another). From then on any other key is refused. Enrolling the same laptop
    again changes nothing.
    """
    from aupctl.laptops.enrol import enrol_plan

    plan, info = enrol_plan(
        ctx.config,
        ctx.state,
        _connector(ctx),
        host=host,
        tag=tag,
        port=port,
        os_name=os_name,
        fingerprint=fingerprint,
        assign=assign,
        replace_key=replace_key,
        directory_of=_directory_of(ctx) if assign else None,
    )
    if info:
        note(ctx, f"{host}:{port} host key: {info.key_type} {info.fingerprint}")
    run_plan(ctx, plan, dry_run=dry_run, yes=yes)


@cli.command("assign", short_help="Record who has a laptop.")
@click.argument("tag", shell_complete=complete_tag)
@click.argument("user", shell_complete=complete_user)
@changing
@pass_ctx
def assign(ctx: Ctx, tag: str, user: str, dry_run: bool, yes: bool) -> None:
    """Record that laptop TAG is now with USER (a directory username, checked when the directory answers)."""
    from aupctl.laptops.enrol import assign_plan

    run_plan(ctx, assign_plan(ctx.state, tag, user, _directory_of(ctx)), dry_run=dry_run, yes=yes)


@cli.command("return", short_help="Record a laptop as handed back.")
@click.argument("tag", shell_complete=complete_tag)
@changing
@pass_ctx
def return_(ctx: Ctx, tag: str, dry_run: bool, yes: bool) -> None:
    """Record that laptop TAG came back (assigned to no one)."""
    from aupctl.laptops.enrol import return_plan

    run_plan(ctx, return_plan(ctx.state, tag), dry_run=dry_run, yes=yes)


@cli.command("retire", short_help="Take a laptop out of use; unpin its key.")
@click.argument("tag", shell_complete=complete_tag)
@changing
@pass_ctx
def retire(ctx: Ctx, tag: str, dry_run: bool, yes: bool) -> None:
    """Retire laptop TAG: it leaves audits and its host key is unpinned. Its history is kept."""
    from aupctl.laptops.enrol import retire_plan

    run_plan(ctx, retire_plan(ctx.config, ctx.state, tag), dry_run=dry_run, yes=yes)


@cli.command("list", short_help="Laptops, who has them, when each is due.")
@click.option("--overdue", is_flag=True, help="Only laptops whose check-in is overdue (policy 1.4).")
@click.option("--user", metavar="USER", shell_complete=complete_user, help="Only laptops assigned to this username.")
@click.option("--all", "include_retired", is_flag=True, help="Include retired laptops.")
@pass_ctx
def list_(ctx: Ctx, overdue: bool, user: str | None, include_retired: bool) -> None:
    """Enrolled laptops: who has each, when it was last seen and when its next check-in is due."""
    from aupctl.laptops.report import list_rows

    rows = list_rows(ctx.config, ctx.state, overdue=overdue, user=user, include_retired=include_retired)
    render(ctx, rows, LIST_COLUMNS, data_columns=list(LIST_JSON_COLUMNS), empty="no laptops match")


@cli.command("show", short_help="One laptop: facts, findings, software, history.")
@click.argument("tag", shell_complete=complete_tag)
@pass_ctx
def show(ctx: Ctx, tag: str) -> None:
    """Laptop TAG: its record, the facts of its last check-in, findings, software and history."""
    from aupctl.laptops.report import show as show_laptop

    data = show_laptop(ctx.config, ctx.state, tag)
    # JSON: the whole record; CSV: the findings; the table: a view of several tables
    render(ctx, data["findings"], json_obj=data, table=lambda: _show_tables(ctx, data))


def _show_tables(ctx: Ctx, data: dict[str, Any]) -> None:
    rows = [{"field": k.replace("_", " "), "value": v} for k, v in data["laptop"].items()]
    rows += [{"field": k.replace("_", " "), "value": v} for k, v in (data["facts"] or {}).items()]
    render(ctx, rows, ["field", "value"])
    click.echo()
    if data["findings"]:
        render(ctx, data["findings"], ["severity", "check", "clause", "detail"])
    else:
        click.echo("no findings" if data["facts"] else "never probed")
    if data["unapproved_software"]:
        click.echo()
        render(ctx, data["unapproved_software"], ["name", "version"], headers={"name": "not approved"})
    click.echo()
    render(ctx, data["history"], ["at", "event", "user"], empty="no history")


@cli.command("checkin", short_help="Probe a laptop at the desk; --update brings it up to date.")
@click.argument("tag", shell_complete=complete_tag)
@click.option("--update", is_flag=True, help="Also run [laptops.update_commands] for its OS, then probe again.")
@click.option("--dry-run", is_flag=True, help="With --update: show the update commands and run nothing.")
@click.option("--yes", "-y", is_flag=True, help="With --update: run the update commands without asking.")
@pass_ctx
def checkin(ctx: Ctx, tag: str, update: bool, dry_run: bool, yes: bool) -> None:
    """The laptop is here: probe it, record the facts, set its next due date.

    With --update, the configured update commands are shown and run only when confirmed (or with
    --yes; with no terminal and no --yes, exit 2 before connecting), one by one with
    their output streamed to stderr; then it is probed again and both results are recorded. Exit 1 when findings remain, 3 when it
    cannot be reached or its host key is not the pinned one, 4 when an update command fails.
    """
    from aupctl.laptops import checkin as engine
    from aupctl.laptops.inventory import check_tag, get

    if dry_run:
        if not update:
            raise click.UsageError("--dry-run only applies with --update (a check-in changes nothing on the laptop)")
        device = get(ctx.state, check_tag(tag))
        show_plan(ctx, engine.update_plan(ctx.config, device, None, None))
        message("dry run: nothing was run")
        return

    if update and not yes and not sys.stdin.isatty():  # no one to ask: refused (exit 2) before connecting
        device = get(ctx.state, check_tag(tag))
        if device.status == "active":  # the engine's own refusals (retired, no commands) say more
            engine.update_commands(ctx.config, device)
            confirm(f"Run the update commands on {device.tag}?", yes)

    def apply_plan(plan: Any) -> None:
        run_plan(ctx, plan, dry_run=False, yes=yes, show=for_people(ctx) or not yes)

    stream = (lambda line: message(f"  | {line}")) if update else None  # the laptop's output, escaped
    result = engine.checkin(
        ctx.config, ctx.state, _connector(ctx), tag, update=update, on_output=stream, apply_plan=apply_plan
    )
    if result.before is not None:
        note(ctx, f"before updating: {len(result.before[1])} finding(s); after: {len(result.findings)}")
    if result.facts:
        f = result.facts
        note(
            ctx,
            f"{result.device.tag}: {f.hostname or '?'}, {f.os_name or '?'} {f.os_version or ''}; "
            f"next check-in due {result.device.next_due}",
        )
    exit_with(render_findings(ctx, result.findings, clean=f"{result.device.tag}: no findings"))


@cli.command("audit", short_help="Probe every laptop in parallel (for cron); exit 1 on findings.")
@click.option("--no-probe", is_flag=True, help="Report from the records alone; contact no laptop.")
@click.option(
    "--parallel", type=click.IntRange(1, 256), metavar="N", help="Laptops probed at once ([laptops] parallel)."
)
@all_schools_option
@pass_ctx
def audit(ctx: Ctx, no_probe: bool, parallel: int | None, all_schools: bool) -> None:
    """Every enrolled laptop, for cron: probe those that answer (in parallel), report findings.

    Laptops that cannot be reached are listed with who has them and when each was last seen; that is
    not fatal. Exit 0 clean, 1 findings (unreachable laptops included). With --all-schools (a trust's
    config): every school's laptops in one result with a school column.
    """
    from aupctl.laptops import inventory
    from aupctl.laptops.audit import run

    if all_schools:

        def one(sub: Ctx) -> tuple[list, int]:
            probe = not no_probe and bool(inventory.devices(sub.state))
            connector = _connector(sub) if probe else None
            if connector is not None:
                connector.key()
            found = run(sub.config, sub.state, connector, do_probe=probe, parallel=parallel)
            for r in found.unreachable:
                note(ctx, f"school {sub.config.school_key}: {r['tag']} could not be reached: {r['error']}")
            return found.findings, len(found.laptops)

        run_all_schools(ctx, one, clean="no findings", snapshot="laptop-audit")
        return

    total = len(inventory.devices(ctx.state))
    connector = None if no_probe or not total else _connector(ctx)
    if connector is not None:
        connector.key()  # a bad key or passphrase is one config error, not 100 unreachable laptops
    bar = None
    if not no_probe and total and sys.stderr.isatty() and for_people(ctx):
        bar = click.progressbar(length=total, label="probing laptops", file=sys.stderr)
        bar.__enter__()
    try:
        report = run(
            ctx.config,
            ctx.state,
            connector,
            do_probe=not no_probe,
            parallel=parallel,
            progress=(lambda out: bar.update(1)) if bar else None,
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if report.unreachable:
        note(ctx, f"{len(report.unreachable)} laptop(s) could not be reached:", warning=True)
        for r in report.unreachable:
            who = r["assigned_to"] or "no one"
            seen = (r["last_seen"] or "never")[:10]
            note(ctx, f"  {r['tag']}: with {who}, last seen {seen}: {r['error']}")
    note(ctx, f"{len(report.laptops)} laptop(s) audited")
    rows = [f.as_row() for f in report.findings]
    data = {"findings": rows, "laptops": report.laptops, "unreachable": report.unreachable}
    exit_with(
        render_findings(
            ctx,
            report.findings,
            clean="no findings",
            json_obj=data,
            snapshot="laptop-audit",
            subjects=len(report.laptops),
        )
    )
