"""aupctl sandbox start | status | stop | mail"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aupctl.errors import InputError

from .context import Ctx, pass_ctx
from .output import message, render

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the sandbox lives (default: the user data dir).",
)


@click.group("sandbox")
def cli() -> None:
    """A throwaway school directory (slapd or Samba AD) seeded with a fictional school. Linux only."""


def _not_linux() -> InputError:
    return InputError(
        f"the sandbox runs on Linux only (this is {sys.platform})",
        hint="start it on a Linux machine or WSL and point aupctl at its aupctl.toml with --config",
    )


@cli.command("start")
@click.option("--flavour", type=click.Choice(["openldap", "ad"]), default="openldap", show_default=True)
@click.option(
    "--layout",
    type=click.Choice(["standard", "flat", "nested"]),
    default="standard",
    show_default=True,
    help="How the school is laid out: standard (an OU per role; both flavours), flat (OpenLDAP: one "
    "ou=People, posixGroup groups, roles by group) or nested (AD: OUs per site, system groups in "
    "their own OU tree, a 2,000-member group). See docs/sandbox.md.",
)
@dir_option
@pass_ctx
def start(ctx: Ctx, flavour: str, layout: str, directory: Path | None) -> None:
    """Start a sandbox directory and write DIR/aupctl.toml for it."""
    if not sys.platform.startswith("linux"):
        raise _not_linux()
    from aupctl import sandbox

    info = sandbox.start(flavour, directory, layout=layout)
    shape = "" if layout == "standard" else f", layout {layout}"
    message(f"{flavour} sandbox{shape} running (pid {info.pid}) at {', '.join(info.urls)}")
    message(f"config: {info.config_path}")
    message("next:")
    message(f"  export AUPCTL_CONFIG={info.config_path}")
    for cmd in ("aupctl doctor", "aupctl staff list", "aupctl access review", "aupctl password audit"):
        message(f"  {cmd}")


@cli.command("status")
@dir_option
@pass_ctx
def status(ctx: Ctx, directory: Path | None) -> None:
    """Is the sandbox running, and where."""
    if not sys.platform.startswith("linux"):
        raise _not_linux()
    from aupctl import sandbox

    st = sandbox.status(directory or sandbox.default_dir())
    render(ctx, [{"field": k, "value": v} for k, v in st.items()], ["field", "value"], json_obj=st)


@cli.command("stop")
@dir_option
def stop(directory: Path | None) -> None:
    """Stop the sandbox server this directory started (nothing else)."""
    if not sys.platform.startswith("linux"):
        raise _not_linux()
    from aupctl import sandbox

    d = directory or sandbox.default_dir()
    message("stopped" if sandbox.stop(d) else f"no running sandbox in {d}")


@cli.command("mail")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where its certificate, password file (smtp/) and the letters (mail/) go.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
def mail(directory: Path, port: int) -> None:
    """A throwaway SMTP server on 127.0.0.1 for trying `aupctl notify` and recertification letters:
    STARTTLS with its own CA (DIR/smtp/ca.pem), AUTH as aupctl-sandbox (DIR/smtp/password), every letter
    written to DIR/mail/NNNN.eml. Runs in the foreground until Ctrl-C or SIGTERM; DIR/smtp/port holds its
    port while it listens. Needs aiosmtpd (pip install 'aupctl[test]')."""
    if not sys.platform.startswith("linux"):
        raise _not_linux()
    import signal
    import threading

    try:
        from aupctl.sandbox import smtp  # the module, not its name: mypy --platform win32 skips the sandbox
    except ImportError as exc:  # aiosmtpd is a test extra
        raise InputError(f"the SMTP sandbox needs aiosmtpd ({exc})", hint="pip install 'aupctl[test]'") from None

    catcher = smtp.MailCatcher(directory, port=port or None).start()
    (catcher.tls_dir / "port").write_text(f"{catcher.port}\n")
    message(
        f"SMTP sandbox on {catcher.host}:{catcher.port} (STARTTLS, AUTH as {catcher.username}); "
        f"letters are written to {catcher.spool}/"
    )
    stop_ = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_.set())
    try:
        stop_.wait()
    except KeyboardInterrupt:
        pass
    finally:
        catcher.stop()
        (catcher.tls_dir / "port").unlink(missing_ok=True)
