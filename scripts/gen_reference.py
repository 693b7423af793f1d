#!/usr/bin/env python3
"""Write docs/reference.md from the commands' own --help, so the reference cannot drift from the CLI.

`python3 scripts/gen_reference.py` rewrites it; `--check` exits 1 if it is out of date (the tests run that).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "reference.md"


def _walk(cmd: click.Command, path: list[str], ctx: click.Context | None):
    sub_ctx = click.Context(cmd, info_name=path[-1], parent=ctx, terminal_width=100, max_content_width=100)
    yield path, cmd.get_help(sub_ctx)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(sub_ctx):
            child = cmd.get_command(sub_ctx, name)
            if child is not None and not child.hidden:
                yield from _walk(child, [*path, name], sub_ctx)


def render() -> str:
    from aupctl.commands import cli

    out = [
        "# Command reference",
        "",
        "Generated from the commands' own `--help` by `make docs` (scripts/gen_reference.py); a test fails when",
        "this file and the CLI disagree. Exit codes and JSON shapes: [output.md](output.md).",
        "",
    ]
    for path, text in _walk(cli, ["aupctl"], None):
        out += [f"## {' '.join(path)}", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(out)


def write_or_check(target: Path, text: str) -> int:
    """Write a generated doc, or with --check say (exit 1) that the committed one is out of date."""
    name = target.relative_to(ROOT)
    if "--check" in sys.argv:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{name} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {name}")
    return 0


def main() -> int:
    return write_or_check(TARGET, render())


if __name__ == "__main__":
    sys.exit(main())
