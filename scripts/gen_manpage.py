#!/usr/bin/env python3
"""Write docs/aupctl.1 (a man page) from the commands' own --help, as gen_reference.py writes the reference.

`python3 scripts/gen_manpage.py` rewrites it; `--check` exits 1 if it is out of date (the tests run that).
Read it with `man -l docs/aupctl.1`; install it as share/man/man1/aupctl.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_reference import ROOT, _walk, write_or_check  # noqa: E402 - the same walk over the same --help

TARGET = ROOT / "docs" / "aupctl.1"

EXIT_STATUS = [
    ("0", "clean: nothing found, or the change was applied"),
    ("1", "findings (a review, an audit)"),
    ("2", "bad usage, config or input; refused; nothing was changed"),
    ("3", "the directory or a laptop could not be reached, or authentication failed"),
    ("4", "a change failed part-way: the message says what was done; run the same command again to resume"),
    ("70", "an internal error (a bug: please report it with the output of --debug)"),
    ("130", 'interrupted (Ctrl-C), or "no" at a confirmation'),
]


def esc(line: str) -> str:
    """One line of text as roff reads it literally: backslashes, hyphens, and control characters at the start."""
    line = line.replace("\\", "\\e").replace("-", "\\-")
    line = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in line)  # groff reads ASCII
    return "\\&" + line if line.startswith((".", "'")) else line


def render() -> str:
    from aupctl.commands import cli

    pages = list(_walk(cli, ["aupctl"], None))
    _, root_help = pages[0]
    out = [
        '.\\" Generated from --help by scripts/gen_manpage.py (make docs); do not edit by hand.',
        '.TH AUPCTL 1 "" "aupctl" "User Commands"',
        ".SH NAME",
        "aupctl \\- enforce a school's staff Acceptable Use Policy on its directory, laptops and passwords",
        ".SH SYNOPSIS",
        ".B aupctl",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        ".nf",
        *(esc(line) for line in root_help.rstrip().splitlines()),
        ".fi",
        ".SH COMMANDS",
    ]
    for path, text in pages[1:]:
        out += [f'.SS "{" ".join(path)}"', ".nf", *(esc(line) for line in text.rstrip().splitlines()), ".fi"]
    out += ['.SH "EXIT STATUS"']
    for code, meaning in EXIT_STATUS:
        out += [".TP", f".B {code}", esc(meaning)]
    out += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B AUPCTL_CONFIG",
        "The config file, when \\-\\-config is not given.",
        '.SH "SEE ALSO"',
        "docs/reference.md, docs/output.md and the task pages in docs/ of the aupctl source;",
        "\\fBaupctl completion\\fR \\fISHELL\\fR for shell completion.",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    return write_or_check(TARGET, render())


if __name__ == "__main__":
    sys.exit(main())
