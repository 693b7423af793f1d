"""aupctl sandbox start | status | stop"""

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
