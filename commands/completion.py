"""`aupctl completion SHELL`, and what completes: system keys (the config), usernames and laptop tags (the
state store). bash, zsh and fish use click's own scripts; PowerShell a small one written here.

Completing never fails and never touches the directory: anything that goes wrong (no config yet, no
store) completes nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem, ShellComplete, add_completion_class, split_arg_string

if TYPE_CHECKING:
    from aupctl.config import Config

SHELLS = ("bash", "zsh", "fish", "powershell")
COMPLETE_VAR = "_AUPCTL_COMPLETE"

# Register-ArgumentCompleter calls aupctl with the words before the cursor, as bash's script does.
_SOURCE_POWERSHELL = """\
# aupctl completion for PowerShell: add this line to your $PROFILE
#   aupctl completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName %(prog_name)s, %(prog_name)s.exe -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $words = @($commandAst.CommandElements |
        Where-Object { $_.Extent.StartOffset -lt $cursorPosition } |
        ForEach-Object {
            # a quoted word counts by its value; each goes to aupctl single-quoted, as a POSIX shell would
            $text = if ($_ -is [System.Management.Automation.Language.StringConstantExpressionAst]) { $_.Value } else { $_.ToString() }
            "'" + ($text -replace "'", "'\\''") + "'"
        })
    $cword = $words.Count
    if ($wordToComplete -ne '') { $cword = $cword - 1 }
    $env:%(complete_var)s = 'powershell_complete'
    $env:COMP_WORDS = $words -join ' '
    $env:COMP_CWORD = "$cword"
    try {
        %(prog_name)s | ForEach-Object {
            [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
        }
    } finally {
        Remove-Item Env:%(complete_var)s, Env:COMP_WORDS, Env:COMP_CWORD -ErrorAction SilentlyContinue
    }
}
"""


class PowerShellComplete(ShellComplete):
    """PowerShell: the same protocol as bash (COMP_WORDS, COMP_CWORD), one plain value a line."""

    name = "powershell"
    source_template = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        cword = int(os.environ.get("COMP_CWORD", "0") or 0)
        incomplete = words[cword] if cword < len(words) else ""
        return words[1:cword], incomplete

    def format_completion(self, item: CompletionItem) -> str:
        return item.value


add_completion_class(PowerShellComplete)


def _config(ctx: click.Context) -> Config | None:
    from aupctl.config import load

    path = ctx.find_root().params.get("config_path") or os.environ.get("AUPCTL_CONFIG")
    try:
        return load(path, ctx.find_root().params.get("school"))
    except Exception:  # noqa: BLE001 - no config yet (or a broken one): complete nothing, never a traceback
        return None


def _from_store(ctx: click.Context, read: Any) -> list[str]:
    from aupctl.state import State, default_state_path

    cfg = _config(ctx)
    if cfg is not None and cfg.state.url:
        return []  # never wait on a database server to complete a word
    path = (cfg.state.path or default_state_path()) if cfg is not None else None
    if path is None or not os.path.exists(path):
        return []  # never create a store to complete a word
    try:
        state = State(path, busy_timeout=1.0)
    except Exception:  # noqa: BLE001 - completion must never fail
        return []
    try:
        return list(read(state))
    except Exception:  # noqa: BLE001
        return []
    finally:
        state.close()


def complete_system(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    cfg = _config(ctx)
    if cfg is None:
        return []
    return [
        CompletionItem(k, help=s.name) for k, s in cfg.systems.items() if k.casefold().startswith(incomplete.casefold())
    ]


def complete_user(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from aupctl.records import known

    return [CompletionItem(u) for u in _from_store(ctx, lambda st: known.usernames(st, incomplete))]


def complete_tag(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from aupctl.records import known

    return [CompletionItem(t) for t in _from_store(ctx, lambda st: known.tags(st, incomplete))]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS, case_sensitive=False))
def cli(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh, fish or powershell).

    Completes commands, options, system keys, usernames known to the state store and laptop tags.

    \b
    bash:        eval "$(aupctl completion bash)"            (in ~/.bashrc)
    zsh:         eval "$(aupctl completion zsh)"             (in ~/.zshrc)
    fish:        aupctl completion fish > ~/.config/fish/completions/aupctl.fish
    PowerShell:  aupctl completion powershell | Out-String | Invoke-Expression   (in $PROFILE)
    """
    from click.shell_completion import get_completion_class

    from . import cli as root

    cls = get_completion_class(shell.lower())
    assert cls is not None  # every name in SHELLS is registered
    click.echo(cls(root, {}, "aupctl", COMPLETE_VAR).source())


def did_you_mean_user(obj: Any, username: str) -> str | None:
    """A hint naming the usernames on record closest to a misspelt one (None when there are none).

    Cheap: the state store (already open for most commands), never another directory search."""
    from aupctl.records import known

    state = getattr(obj, "_state", None)
    if state is None:
        return None
    try:
        close = known.close_usernames(state, username)
    except Exception:  # noqa: BLE001 - a hint must never replace the real message
        return None
    return f"did you mean {' or '.join(close)}?" if close else None
