"""The click layer: the root group, global options, and the one handler that turns an AupctlError into
a message on stderr and an exit code. Subcommands load lazily so `aupctl --help` stays fast."""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
import traceback
from typing import Any

import click

from aupctl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AupctlError, NoSuchAccount

from .context import Ctx

# name -> (module, attribute, one-line help). Help lives here so listing commands imports nothing.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "access": ("access", "cli", "Access to restricted systems: grant, revoke, list, review (policy 1.3)."),
    "aup": ("aup", "cli", "AUP declarations: record, import and report signatures (policy 8.1, 9.1)."),
    "completion": ("completion", "cli", "Print the shell completion script: bash, zsh, fish or powershell."),
    "config": ("config", "cli", "Check the config file, discover a first one, store the bind password."),
    "doctor": ("doctor", "cli", "Check config, directory, TLS, bind, state store and keyring."),
    "domain": ("domain", "cli", "The directory's own settings and admin accounts (policy 6.2, 6.1)."),
    "estate": ("estate", "cli", "Every computer the directory knows: OS support, stale, LAPS, updates (1.4, 6.7)."),
    "laptop": ("laptop", "cli", "School laptops: enrol, check in over SSH, audit (policy 1.4, 6.7, 6.8)."),
    "evidence": ("evidence", "cli", "Evidence no tool can check (backups tested, training...), for the report."),
    "leaver": ("leaver", "cli", "Staff leavers: withdraw access, schedule, restore (policy 4.2, 9.2)."),
    "licence": ("licence", "cli", "Software licences: seats used against seats owned (policy 6.7)."),
    "log": ("log", "cli", "The audit log: show it, verify it, sign a checkpoint (cron)."),
    "notify": ("notify", "cli", "Send the day's reminders by email: laptops, AUP, leaver tasks (policy 1.3, 1.4, 9.1)."),
    "password": ("password", "cli", "Password hygiene: audit, check, reset (policy 6.2)."),
    "report": ("termly_report", "cli", "The termly report for the head teacher and governors: HTML and PDF."),
    "sandbox": ("sandbox", "cli", "A throwaway school directory to try aupctl on."),
    "staff": ("staff", "cli", "Staff accounts: list, show, import, set a role."),
    "state": ("state", "cli", "The state store: make a new one (state init)."),
    "tasks": ("tasks", "cli", "Work to do by hand in systems without a directory group."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, global_first(args))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        ctx.meta["aupctl.command"] = args[0] if args else ""  # as typed, if it is no command
        try:
            name, cmd, rest = super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # click suggests only from self.commands: these load lazily
            typed = args[0] if args else ""
            raise click.exceptions.NoSuchCommand(typed, possibilities=list(SUBCOMMANDS), ctx=ctx) from exc
        # the command's name for the JSON envelope: "access review", "log", "staff list"
        path = [name or ""]
        if isinstance(cmd, click.Group):
            sub = next((a for a in rest if not a.startswith("-")), None)
            if sub is not None and sub in cmd.list_commands(ctx):
                path.append(sub)
        ctx.meta["aupctl.command"] = " ".join(path)
        ctx.meta["aupctl.help"] = any(a in ("--help", "-h") for a in rest)
        return name, cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        # The one place an AupctlError becomes a message on stderr and its exit code (also under CliRunner),
        # and, with --format json, where the command's one envelope is printed, whatever its end.
        code: int = EXIT_OK
        error: dict[str, Any] | None = None
        try:
            try:
                return super().invoke(ctx)
            except (AupctlError, sqlite3.Error) as exc:
                if isinstance(exc, NoSuchAccount) and exc.hint is None:
                    from .completion import did_you_mean_user

                    exc.hint = did_you_mean_user(ctx.obj, exc.username)
                err = exc if isinstance(exc, AupctlError) else _store_error(exc, ctx.obj)
                code, error = err.exit_code, {"message": err.message, "hint": err.hint}
                if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                    raise  # main() shows the traceback, then reports it the same way
                ctx.exit(report(exc, ctx.obj))
        except click.exceptions.Exit as exc:
            code = exc.exit_code
            raise
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
            raise
        except click.ClickException as exc:
            code, error = exc.exit_code or EXIT_USAGE, {"message": exc.format_message(), "hint": None}
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):
            code, error = EXIT_INTERRUPTED, {"message": "interrupted: nothing more was changed", "hint": None}
            raise
        except Exception as exc:
            code = EXIT_INTERNAL
            error = {"message": f"internal error: {type(exc).__name__}", "hint": "run with --debug; please report it"}
            raise
        finally:
            if ctx.params.get("fmt") == "json" and not ctx.meta.get("aupctl.help"):
                from .output import emit_json

                parts = ctx.obj.json_parts if ctx.obj is not None else {}
                emit_json(ctx.meta.get("aupctl.command", ""), code, parts, error)
            hush = getattr(ctx.obj, "hush", None)
            if hush is not None:  # --quiet: what was held back is shown unless the run was clean and idle
                hush.finish(code, ctx.obj.acted)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in sorted(SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar="AUPCTL_CONFIG",
    help="Config file (else $AUPCTL_CONFIG, else the user config dir).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format for data on stdout.",
)
@click.option(
    "--school",
    metavar="KEY",
    envvar="AUPCTL_SCHOOL",
    help="Which school of a trust's config ([schools.KEY]; else $AUPCTL_SCHOOL); needed when it has several.",
)
@click.option("--wide", is_flag=True, help="Tables on one line per row, however wide (else they fit 120 columns).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="For cron: print nothing when there is nothing to report or do (exit code unchanged; findings, "
    "changes, warnings and errors still shown).",
)
@click.version_option(package_name="aupctl", prog_name="aupctl")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, fmt: str, school: str | None, wide: bool, debug: bool, quiet: bool
) -> None:
    """aupctl: enforce the staff Acceptable Use Policy on the school's directory, laptops and passwords.

    Exit codes: 0 clean, 1 findings, 2 bad usage/config/input, 3 directory or host unreachable or
    authentication failed, 4 a change failed part-way (re-run to resume).
    """
    ctx.obj = Ctx(config_path=config_path, fmt=fmt, debug=debug, wide=wide, quiet=quiet, school=school or None)
    ctx.call_on_close(ctx.obj.close)
    if quiet and ctx.invoked_subcommand is not None:
        from .quiet import Hush

        ctx.obj.hush = Hush()


GLOBAL_VALUED = ("--format", "--school")
GLOBAL_FLAGS = ("--wide", "--quiet", "-q")


def global_first(args: list[str]) -> list[str]:
    """--format, --school and --wide where they are given, after the subcommand too (`aupctl access review --format
    json`): moved to the front, where the root group reads them. Nothing after `--` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        if a in GLOBAL_FLAGS or any(a.startswith(f"{o}=") for o in GLOBAL_VALUED):
            front.append(a)
        elif a in GLOBAL_VALUED and i + 1 < len(args):
            front += args[i : i + 2]
            i += 1
        else:
            rest.append(a)
        i += 1
    return front + rest


def report(exc: AupctlError | sqlite3.Error, obj: Any) -> int:
    """The one handler: an AupctlError (or a state-store failure, as one) to a message on stderr; returns
    its exit code. obj: the command's Ctx, if there is one (it names the state store's path)."""
    from aupctl.text import shown

    err = exc if isinstance(exc, AupctlError) else _store_error(exc, obj)
    click.echo(shown(f"aupctl: {err}", newlines=True), err=True)
    return err.exit_code


def _store_error(exc: sqlite3.Error, obj: Any) -> AupctlError:
    """A failure of the state store, anywhere, as a message naming the file and what to do (never exit 70)."""
    from aupctl.state import DEFAULT_BUSY_TIMEOUT, describe_store_error

    state = getattr(obj, "_state", None)
    path = state.path if state is not None else "(the [state] path)"
    return describe_store_error(exc, path, getattr(state, "busy_timeout", DEFAULT_BUSY_TIMEOUT))


def main(argv: list[str] | None = None) -> Any:
    from .streams import utf8_when_redirected

    utf8_when_redirected()  # Windows: a redirected stdout would otherwise refuse names outside cp1252
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if "_AUPCTL_COMPLETE" in os.environ:  # a shell asking for completions: PowerShell's is registered there
        importlib.import_module(f"{__name__}.completion")
    try:
        return cli.main(args=argv, prog_name="aupctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted: nothing more was changed", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        import io

        from aupctl.text import shown

        buf = io.StringIO()
        exc.show(file=buf)  # click quotes the bad value: escaped like every other message
        click.echo(shown(buf.getvalue(), newlines=True), err=True, nl=False)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except (AupctlError, sqlite3.Error) as exc:  # --debug, or the state store failed outside a command
        if debug:  # the traceback, and still the exit code cron and scripts rely on
            traceback.print_exc()
        sys.exit(report(exc, None))
    except KeyboardInterrupt:
        click.echo("aupctl: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - a traceback is a bug; show it only with --debug
        if debug:
            raise
        from aupctl.text import shown

        click.echo(
            shown(
                f"aupctl: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; "
                "please report it)"
            ),
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
