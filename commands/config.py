"""aupctl config check | discover | set-password"""

from __future__ import annotations

import click

from aupctl.errors import InputError

from .context import Ctx, pass_ctx
from .output import message, set_json, wants_json, warn
from .output import message as _message


@click.group("config")
def cli() -> None:
    """Check the config file, discover a first one, store the bind password."""


@cli.command("check")
@pass_ctx
def check(ctx: Ctx) -> None:
    """Validate the config file and say exactly what is wrong (exit 2).

    Warnings (a role with neither ou nor groups, a glob that looks like a regular expression, a group
    outside base_dn) are printed but do not fail: exit 0. A trust's config ([schools.KEY]) is checked
    school by school, all of them unless --school names one.
    """
    from aupctl.config import warnings

    keys: list[str | None] = [ctx.school] if ctx.school or not ctx.trust.keys else list(ctx.trust.keys)
    for key in keys:
        cfg = ctx.trust.config(key)
        which = f"school {cfg.school_key}: " if cfg.school_key else ""
        found = warnings(cfg)
        for text in found:
            warn(which + text)
        message(
            f"{cfg.source}: {which}OK — {cfg.school.name}, {cfg.directory.flavour} at "
            f"{', '.join(cfg.directory.url)}; {len(cfg.roles)} roles, {len(cfg.systems)} systems, "
            f"{len(cfg.licences)} licences" + (f"; {len(found)} warning(s)" if found else "")
        )


@cli.command("discover")
@click.option("--url", required=True, help="The directory, ldaps://HOST (or ldap://HOST, upgraded with StartTLS).")
@click.option("--bind-dn", required=True, help="The account to read with (read access is enough).")
@click.option("--base-dn", help="The naming context to read (default: the one the server names).")
@click.option(
    "--ca-file", type=click.Path(exists=True, dir_okay=False), help="The CA that signed the server's certificate."
)
@click.option(
    "--out", "out", metavar="FILE", help="Write the config to FILE (never over an existing one); default: stdout."
)
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True, help="Seconds per answer.")
@pass_ctx
def discover_cmd(
    ctx: Ctx, url: str, bind_dn: str, base_dn: str | None, ca_file: str | None, out: str | None, timeout: float
) -> None:
    """Read a directory aupctl has never seen (nothing is changed) and write a commented starting config.

    Finds the flavour and naming context, the OUs that hold people, where groups live and their schemas,
    groups that look like roles and like restricted systems (as commented suggestions), and the password
    policy. Prints what it guessed and what you must decide. The bind password comes from
    $AUPCTL_BIND_PASSWORD, else a hidden prompt (or one line on standard input).
    Exit 0 written, 2 bad input or --out exists, 3 cannot reach or bind.
    """
    import os

    from aupctl.credentials import ENV_BIND
    from aupctl.discover import discover, write

    password = os.environ.get(ENV_BIND)
    if not password:
        stdin = click.get_text_stream("stdin")
        if stdin.isatty():
            password = click.prompt(f"Bind password for {bind_dn}", hide_input=True, err=True)
        else:
            password = stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError(f"no bind password: set {ENV_BIND} or type it at the prompt")
    if out and os.path.lexists(out):
        raise InputError(f"{out} already exists: discover never writes over a file", hint="choose another --out")
    found = discover(url, bind_dn, password, base_dn=base_dn, ca_file=ca_file, timeout=timeout)

    def message(text: str) -> None:  # names read from the directory: control characters shown escaped
        _message("".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text))

    message(f"{found.flavour} directory at {found.url}, base {found.base_dn} (read in {found.seconds:.1f} s)")
    if found.people_ous:
        message("OUs holding people:")
        for dn, n in found.people_ous[:15]:
            message(f"  {n:>6}  {dn}")
        if len(found.people_ous) > 15:
            message(f"  ... and {len(found.people_ous) - 15} more")
    message("guessed:")
    for line in found.guessed:
        message(f"  - {line}")
    message("you decide (marked DECIDE in the file):")
    for line in found.decide:
        message(f"  - {line}")
    if out:
        path = write(found, out)
        message(f"written to {path}: next, `aupctl --config {path} config check` and `aupctl --config {path} doctor`")
    elif wants_json(ctx):  # the config file's text, as one value of the envelope
        set_json(ctx, data={"config": found.text})
    else:
        click.echo(found.text, nl=False)


@cli.command("set-password")
@click.option("--mail", "mail", is_flag=True, help="The SMTP password of [mail] username instead (docs/notify.md).")
@pass_ctx
def set_password(ctx: Ctx, mail: bool) -> None:
    """Store the directory bind password (or, with --mail, the SMTP password) in the OS keyring (asked at a
    hidden prompt)."""
    from aupctl.credentials import mail_account, store_bind_password

    cfg = ctx.config
    if mail and not (cfg.mail.host and cfg.mail.username):
        raise InputError("--mail: set [mail] host and username first; a server without AUTH needs no password")
    account = mail_account(cfg.mail.host, cfg.mail.username) if mail else cfg.directory.bind_dn
    what = f"SMTP password for {cfg.mail.username} at {cfg.mail.host}" if mail else f"Bind password for {account}"
    if not click.get_text_stream("stdin").isatty():
        secret = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        secret = click.prompt(what, hide_input=True, confirmation_prompt=True, err=True)
    if not secret:
        raise InputError("empty password: nothing stored")
    store_bind_password(account, secret)
    message(f"stored in the keyring (service 'aupctl', user {account!r})")
