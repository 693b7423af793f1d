"""aupctl password audit | check | reset (policy 6.2)"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable

import click

from .completion import complete_user
from .context import Ctx, pass_ctx
from .output import (
    changing,
    exit_for_findings,
    exit_with,
    message,
    progress,
    render,
    render_findings,
    run_plan,
    wants_json,
    warn,
)
from .schools import all_schools_option, run_all_schools


@click.group("password")
def cli() -> None:
    """Password hygiene: audit, check, reset (policy 6.2).

    Policy 6.2: passwords are kept confidential, not easily guessed, and changed when required.
    Following NCSC guidance aupctl does not push regular forced changes; it finds passwords that are
    guessable, shared or stored badly, accounts nobody uses, and policies too weak to stop guessing.
    """


@cli.command("audit", short_help="Report accounts and policies that break policy 6.2 (exit 1 if any).")
@click.option(
    "--changed-before",
    metavar="DATE",
    help="After an incident: report every password not changed since DATE (YYYY-MM-DD).",
)
@click.option("--include-disabled", is_flag=True, help="Audit disabled accounts too.")
@click.option(
    "--no-hash-check",
    is_flag=True,
    help="Skip testing readable OpenLDAP password hashes against the deny list (the CPU-heavy part).",
)
@all_schools_option
@pass_ctx
def audit(ctx: Ctx, changed_before: str | None, include_disabled: bool, no_hash_check: bool, all_schools: bool) -> None:
    """Report accounts and policies that break policy 6.2; exit 1 if there are any findings.

    Checks every person under the base DN: stale accounts, first passwords never changed, shared
    account names, staff in privileged groups, passwords older than --changed-before or
    [passwords] max_age_days, AD account flags (PASSWD_NOTREQD, reversible encryption, never
    expires), the domain / fine-grained / ppolicy password policies against the config and Cyber
    Essentials (as `domain audit` judges them), and on
    OpenLDAP how userPassword is stored and whether it is on the deny list (never showing it).

    Output: one row per finding (severity, subject, check, clause, detail); --format json gives the
    same rows. Exit codes: 0 no findings, 1 findings, 2 bad input or config, 3 directory unreachable.
    With --all-schools (a trust's config): every school's audit in one result with a school column.
    """
    from aupctl.dates import parse_date
    from aupctl.passwords.audit import AuditResult
    from aupctl.passwords.audit import audit as run_audit

    since = None
    if changed_before:
        day = parse_date(changed_before, "--changed-before")
        since = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    usual = not changed_before and not include_disabled  # an incident's or a wider audit is no trend point
    snapshot = "password-audit" if usual else None

    def audit_of(c: Ctx, step: Callable[[int], None] | None = None) -> AuditResult:
        return run_audit(
            c.config,
            c.directory,
            changed_before=since,
            include_disabled=include_disabled,
            hash_check=not no_hash_check,
            progress=step,
        )

    if all_schools:

        def one(sub: Ctx) -> tuple[list, int]:
            found = audit_of(sub)
            for text in found.notes:
                warn(f"school {sub.config.school_key}: {text}")
            return found.findings, found.accounts

        run_all_schools(ctx, one, clean="no findings", snapshot=snapshot)
        return
    label = "accounts checked" + ("" if no_hash_check else " (password hashes against the deny list)")
    with progress(ctx, label) as step:
        result = audit_of(ctx, step)
    for note in result.notes:
        warn(note)
    tested = ""
    if result.hashes_tested:
        tested = (
            f"; {result.hashes_tested} password hash(es) tested against {result.candidates_common} deny-list "
            "candidates and the person's own names"
        )
    message(f"audited {result.accounts} account(s){tested}")
    exit_with(
        render_findings(
            ctx,
            result.findings,
            clean="no findings: every account passes policy 6.2",
            snapshot=snapshot,
            subjects=result.accounts,
        )
    )


def _read_candidate() -> str:
    from aupctl.errors import InputError

    if sys.stdin.isatty():
        value = click.prompt("Password to check", hide_input=True, err=True, default="", show_default=False)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise InputError("no password given: type it at the hidden prompt or pipe it on standard input")
    return value


@cli.command("check", short_help="Is a password acceptable? Read from a hidden prompt or stdin.")
@click.argument("user", required=False, shell_complete=complete_user)
@pass_ctx
def check(ctx: Ctx, user: str | None) -> None:
    """Is a password acceptable? Reads it from a hidden prompt (or the first line of standard input).

    Never give the password as an argument: it would show in the process list and shell history.
    Judged against min_length, the deny list (common passwords, the school's name and deny_words,
    with the usual endings), the person's own names and username when USER is given, and zxcvbn's
    strength estimate. Prints why it is weak (never the password). Exit 0 acceptable, 1 weak.
    """
    from aupctl.passwords.denylist import check_candidate

    candidate = _read_candidate()
    person = None
    if user:
        from aupctl.directory import require_account

        person = require_account(ctx.directory, user)
    reasons = check_candidate(ctx.config, candidate, person=person)
    del candidate
    payload = {"user": person.username if person else None, "acceptable": not reasons, "reasons": reasons}
    if wants_json(ctx):
        render(ctx, [], json_obj=payload)
    elif reasons:
        render(ctx, [{"reason": r} for r in reasons], ["reason"], headers={"reason": "why it is weak"})
    else:
        click.echo("acceptable")
    exit_for_findings(reasons)


@cli.command("reset", short_help="Set a generated passphrase; force a change at next logon.")
@click.argument("user", shell_complete=complete_user)
@click.option(
    "--credentials-out",
    metavar="FILE",
    help="Write the new password to FILE (a new file, created mode 0600; never overwritten).",
)
@click.option(
    "--show", is_flag=True, help="Print the new password once on this terminal instead (refused if stdout is not one)."
)
@changing
@pass_ctx
def reset(ctx: Ctx, user: str, credentials_out: str | None, show: bool, dry_run: bool, yes: bool) -> None:
    """Reset USER's password to a generated passphrase and force a change at next logon.

    The passphrase (four random words and a number, as the intake makes) goes only to
    --credentials-out FILE or, with --show, to this terminal. The audit log records who reset
    whose password and when, never the password. JSON (--format json): {"username", "dn",
    "must_change": true, "password_to"} and, with --show, "password".

    Exit codes: 0 done (or --dry-run), 2 bad options, unknown USER or no --yes without a terminal
    (nothing changed), 3 directory unreachable, 4 stopped part-way (run it again with a new FILE).
    """
    from aupctl.passwords.reset import check_destination, plan_reset

    check_destination(credentials_out, show)  # bad options fail before the directory is touched
    plan, secret = plan_reset(ctx.config, ctx.directory, user, credentials_out=credentials_out, show=show)
    # Checked once the user is found: a redirected stdout would keep the password in a file or a log.
    if show and not dry_run and not sys.stdout.isatty():
        from aupctl.errors import InputError

        raise InputError(
            "--show prints the new password only on a terminal, and standard output is not a terminal "
            "(redirected to a file or a pipe); nothing was changed",
            hint="use --credentials-out FILE: a new file, created mode 0600",
        )
    result = run_plan(ctx, plan, dry_run=dry_run, yes=yes, show=dry_run or not wants_json(ctx))
    if result is None:
        return
    summary = {**plan.summary, "must_change": True}
    if wants_json(ctx):
        render(ctx, [], json_obj=summary | ({"password": secret.value} if show else {}))
    elif show:
        click.echo(f"New password for {plan.summary['username']}: {secret.value}")
        message("they must change it at first logon; it is not stored anywhere")
    else:
        message(f"the new password is in {plan.summary['password_to']} (mode 0600); hand it over in person")
