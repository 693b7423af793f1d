"""aupctl staff import: the September intake from the office's CSV (registered in commands/staff.py)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aupctl.errors import AupctlError, PartialError
from aupctl.text import shown as escaped

from .context import Ctx, pass_ctx
from .output import bulk, changing, for_people, message, render, run_plan, warn

PLAN_COLUMNS = ["line", "action", "username", "name", "role", "groups", "waiting", "granted", "changes", "note"]


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--credentials-out",
    metavar="FILE",
    help="New file for the first passwords (CSV, created readable only by you, never overwritten). "
    "Required when accounts are created; passwords go nowhere else.",
)
@changing
@bulk("staff import")
@pass_ctx
def import_(ctx: Ctx, file: str, credentials_out: str | None, dry_run: bool, yes: bool) -> None:
    """Create the new staff listed in FILE (the September intake), or bring them up to date.

    \b
    Columns (header names, any case; map your own in [import.columns]):
      required  first_name, last_name, role
      optional  preferred_name, staff_code, email, department, start_date,
                username, systems (keys separated by ';'), approved_by
    UTF-8 (with or without BOM) or Windows-1252; ',' ';' or tab between fields.

    The whole file is checked first: any bad row (unknown role or system, an approver who is not
    one of the system's approvers, a bad date, the same person twice, a name that gives no
    username) is listed by line and field, exit 2, and nothing is changed.

    Usernames follow [accounts] username, folded to plain a-z (Zoë -> zoe, Łukasz -> lukasz), cut to
    max_length, with 2, 3 … added on a clash. A name in another script needs the username column.
    Someone already in the directory (same staff_code, else the same name, username and email) is
    updated where the file differs, never created twice; running the same file again does nothing.

    Each new account gets a generated passphrase (written only to --credentials-out, before the
    account is made) and is created in its role's OU never enabled without it: on OpenLDAP in one
    step holding the (hashed) passphrase and flagged to change it at first logon; on AD created
    disabled, given the passphrase, flagged and enabled. Then it is added to the role's groups. Systems in the row wait for the person's AUP signature
    (`aupctl aup sign` grants them; `aupctl access list` shows them).

    Stopped part-way (Ctrl-C, a lost server: exit 4)? Run the same command again with a NEW
    --credentials-out file: it finishes what was left, and says which passwords are where.
    """
    from aupctl.staff import intake as engine

    cfg = ctx.config
    people = engine.read_intake(cfg, file)
    plan = engine.build(cfg, ctx.directory, ctx.state, people, credentials_out=credentials_out, source=file)
    try:
        _run(ctx, plan, dry_run=dry_run, yes=yes, resume=lambda new: _resume_command(ctx, file, new, yes))
    finally:
        plan.close()


def _run(ctx: Ctx, intake: Any, *, dry_run: bool, yes: bool, resume: Callable[[str], str]) -> None:
    rows = [e.row() for e in intake.entries]
    counts = intake.counts()
    # The table shows what an update sets ("departmentNumber -> Year 1"); JSON keeps both forms.
    shown = [
        {**r, "changes": [f"{k} -> {v}" for k, v in r["updates"].items()]} for r in rows if r["action"] != "unchanged"
    ]
    if for_people(ctx):
        click.echo(escaped(f"Plan: {intake.plan.title}"))
        always = PLAN_COLUMNS[:5]
        columns = [c for c in PLAN_COLUMNS if c in always or any(r[c] for r in shown)]  # no empty columns
        render(ctx, shown, columns, empty="nothing to do: everyone in the file is already in the directory")
        for note in intake.plan.notes:
            message(f"  - {note}")
        message(_counts_line(counts))
    creds = intake.credentials
    if dry_run:
        if intake.needs_credentials and creds is None:
            warn("applying this needs --credentials-out FILE (where the first passwords are written)")
        _result(ctx, rows, counts, None, applied=False)
        message("dry run: nothing was changed")
        return
    if intake.plan.empty:
        _result(ctx, rows, counts, None, applied=False)
        message("nothing to do: the directory already matches the file")
        return
    intake.check_ready()
    try:
        run_plan(ctx, intake.plan, dry_run=False, yes=yes, show=False, done=_done_line(counts))
    except AupctlError as exc:
        if creds is not None and creds.fd is not None:
            warn(f"the passwords of the accounts made so far are in {creds.path}; keep that file")
            if isinstance(exc, PartialError):  # the same command would be refused: its file exists now
                exc.hint = (
                    f"fix the cause, then finish with a NEW credentials file: {resume(_new_file(creds.path))}"
                    f" (it picks up from where it stopped; {creds.path} keeps the passwords already written)"
                )
        raise
    _result(ctx, rows, counts, creds.path if creds is not None and creds.fd is not None else None, applied=True)


def _done_line(c: dict[str, int]) -> str:
    """The summary counts people, not the batches the plan applies them in."""
    parts = [f"{c['create']} account(s) created"] if c["create"] else []
    parts += [
        f"{c[k]} {word}" for k, word in (("update", "account(s) updated"), ("finish", "account(s) finished")) if c[k]
    ]
    if c["granted"]:
        parts.append(f"{c['granted']} grant(s) made")
    if c["waiting"]:
        parts.append(f"{c['waiting']} grant(s) waiting for an AUP signature")
    return ", ".join(parts) or "nothing changed"


def _new_file(path: str) -> str:
    """A name beside path that does not exist yet: staff-passwords.csv -> staff-passwords-2.csv."""
    old = Path(path)
    n = 2
    while (candidate := old.with_name(f"{old.stem}-{n}{old.suffix}")).exists():
        n += 1
    return str(candidate)


def _resume_command(ctx: Ctx, file: str, credentials_out: str, yes: bool) -> str:
    """The exact command that resumes an import (quoted for the shell in use)."""
    quote = subprocess.list2cmdline if sys.platform == "win32" else shlex.join
    argv = ["aupctl"] + (["--config", ctx.config_path] if ctx.config_path else [])
    argv += ["staff", "import", file, "--credentials-out", credentials_out] + (["--yes"] if yes else [])
    return quote(argv)


def _counts_line(c: dict[str, int]) -> str:
    return (
        f"{c['create']} to create, {c['update']} to update, {c['finish']} to finish, {c['unchanged']} unchanged, "
        f"{c['skip']} skipped; {c['waiting']} grant(s) waiting for an AUP signature, {c['granted']} to grant now"
    )


def _result(ctx: Ctx, rows: list[dict[str, Any]], counts: dict[str, int], creds: str | None, *, applied: bool) -> None:
    data = {"applied": applied, "summary": counts, "credentials_file": creds, "people": rows}
    columns = PLAN_COLUMNS + ["staff_code", "email", "start_date", "dn"]
    render(ctx, rows, columns, json_obj=data, table=lambda: _summary(ctx, counts, creds) if applied else None)


def _summary(ctx: Ctx, counts: dict[str, int], creds: str | None) -> None:
    done = {"create": "created", "update": "updated", "finish": "finished", "unchanged": "unchanged", "skip": "skipped"}
    summary = [{"result": done[k], "people": counts[k]} for k in done if counts[k]]
    summary.append({"result": "grants waiting for an AUP signature", "people": counts["waiting"]})
    if counts["granted"]:
        summary.append({"result": "granted now", "people": counts["granted"]})
    click.echo("")
    render(ctx, summary, ["result", "people"])
    if creds:
        message(f"first passwords: {creds} (readable only by you; hand them out, then delete the file)")
