"""--format table|json|csv, messages on stderr, progress bars, and the plan -> confirm -> apply road."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import io
import json
import re
import shutil
import sqlite3
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import click

from aupctl.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, ConfirmationRequired
from aupctl.findings import Finding, sort_findings
from aupctl.plan import UNKNOWN, ApplyResult, Change, Plan, Reconciled, apply, reconcile
from aupctl.text import csv_cell, shown, unsafe

from .context import Ctx

_SUSPECT = re.compile(r"[^\x20-\x7e\n]")  # only these can be unsafe: the rest is looked at in C, not in Python
EXIT_DECLINED = EXIT_INTERRUPTED  # the same as Ctrl-C at the prompt: nothing was changed
FINDING_COLUMNS = ["severity", "subject", "system", "check", "clause", "detail"]
JSON_VERSION = 1  # the envelope's version: bumped only if a key is renamed or removed (docs/output.md)
TABLE_WIDTH = 120  # tables fit this many columns, or the terminal's width when it is wider (--wide: no limit)
_GAP = 2  # tabulate's "simple" format puts two spaces between columns
_MIN_COLUMN = 8  # a column folded to fit is never narrower than this (or its header)


@dataclass(frozen=True)
class Styled:
    """A table cell shown in colour: its text is escaped first, then styled, so the colour's own escape
    codes are the only ones that reach the terminal (click drops them when stdout is not one)."""

    text: str
    fg: str | None = None

    def __str__(self) -> str:
        return self.text


def _table_text(value: Any) -> str:
    """A cell's text for a table, each of its own lines escaped."""
    text = value.text if isinstance(value, Styled) else _cell(value)
    return "\n".join(shown(part) for part in text.split("\n"))


def _table_cell(value: Any, width: int | None) -> str:
    text = _table_text(value)
    if width is not None:  # a long cell wraps inside its column
        text = "\n".join(
            w for line in text.split("\n") for w in (textwrap.wrap(line, width, break_on_hyphens=False) or [""])
        )
    if isinstance(value, Styled) and value.fg:
        return "\n".join(click.style(line, fg=value.fg) for line in text.split("\n"))
    return text


def table_width(ctx: Ctx) -> int | None:
    """The width tables fit: 120 columns, or the terminal's when wider ($COLUMNS first); None with --wide."""
    if ctx.wide:
        return None
    return max(TABLE_WIDTH, shutil.get_terminal_size((TABLE_WIDTH, 24)).columns)


def fit_widths(heads: Sequence[str], texts: Sequence[Sequence[str]], limit: int | None) -> list[int | None]:
    """The width each column folds at so the table is at most `limit` wide (None: not folded). The widest
    columns give way first, down to a common cap; a column never folds below its header or _MIN_COLUMN."""
    # tabulate makes a column at least its header and two spaces wide
    natural = [
        max([len(h) + 2, *(len(line) for row in texts for line in row[i].split("\n"))]) for i, h in enumerate(heads)
    ]
    if limit is None:
        return [None] * len(heads)
    room = limit - _GAP * (len(heads) - 1)
    if sum(natural) <= room:
        return [None] * len(heads)
    least = [min(n, max(len(h) + 2, _MIN_COLUMN)) for n, h in zip(natural, heads, strict=True)]

    def widths(cap: int) -> list[int]:
        return [max(m, min(n, cap)) for m, n in zip(least, natural, strict=True)]

    lo, hi = 0, max(natural)  # the largest cap that fits (or the least widths, if nothing does)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(widths(mid)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return [w if w < n else None for w, n in zip(widths(lo), natural, strict=True)]


def words(value: Any) -> str:
    """Structured details as readable words for a table cell, never raw JSON: `key: value; key: value`."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_words_in(v)}" for k, v in value.items())
    return _words_in(value)


def _words_in(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}: {_words_in(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list | tuple):
        return ", ".join(_words_in(v) for v in value)
    return _cell(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text and a terminal cannot obey (as in the credentials file); our own
    numbers stay numbers."""
    cell = _cell(value)
    return cell if isinstance(value, int | float) and not isinstance(value, bool) else csv_cell(cell)


def to_json(payload: Any) -> str:
    """JSON that means the same to a program and cannot drive a terminal: json.dumps escapes C0 controls;
    DEL, C1, bidi and invisible characters (valid raw in JSON) are written as \\u escapes too."""
    return _json_text(payload, indent=2)


def _json_text(payload: Any, **how: Any) -> str:
    out = json.dumps(_plain(payload), ensure_ascii=False, **how)
    return _SUSPECT.sub(lambda m: json.dumps(m[0])[1:-1] if unsafe(m[0]) else m[0], out)


def for_people(ctx: Ctx) -> bool:
    """--format table: a person reads the output, so progress bars, notes and views of several tables are
    for them. json and csv are for programs: data on stdout, nothing else added."""
    return ctx.fmt == "table"


def wants_json(ctx: Ctx) -> bool:
    return ctx.fmt == "json"


def render(
    ctx: Ctx,
    rows: Sequence[dict[str, Any]],
    columns: list[str] | None = None,
    *,
    data_columns: list[str] | None = None,
    json_text: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    empty: str = "nothing to show",
    json_obj: Any = None,
    wrap: dict[str, int] | None = None,
    table: Callable[[], None] | None = None,
) -> None:
    """Data to stdout in the chosen format: the one place a command's output takes its format's shape.

    JSON is the same rows the table shows (or json_obj if given), as the envelope's "data". data_columns:
    the columns JSON and CSV show when they differ from the table's (more detail, for programs).
    json_text: columns holding structured values, kept as they are in JSON, compact JSON text in CSV and
    readable words (`key: value; ...`) in the table. table: draws the table form itself (a view of several
    tables), instead of one table of the rows. A table fits table_width(): its widest columns fold; the
    columns named in `wrap` fold at that width at most; Styled cells keep their colour.
    """
    if ctx.fmt != "table" and data_columns is not None:
        columns = data_columns
    columns = columns or (list(rows[0].keys()) if rows else [])
    if ctx.fmt == "json":
        payload = json_obj if json_obj is not None else [{c: _plain(r.get(c)) for c in columns} for r in rows]
        set_json(ctx, data=payload)
        return
    if json_text:
        # in CSV: JSON text with \u escapes for what a terminal could obey (it still decodes to the value)
        text = _json_text if ctx.fmt == "csv" else words
        rows = [{**r, **{c: text(r.get(c)) for c in json_text if c in r}} for r in rows]
    if ctx.fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_cell(r.get(c)) for c in columns])
        click.echo(buf.getvalue(), nl=False)
        return
    if table is not None:
        table()
        return
    if not rows:
        message(empty)
        return
    from tabulate import tabulate

    heads = [(headers or {}).get(c, c.replace("_", " ")) for c in columns]
    texts = [[_table_text(r.get(c)) for c in columns] for r in rows]
    folds = fit_widths(heads, texts, table_width(ctx))
    if not ctx.wide:  # a command's own fold for a column, where it is narrower
        folds = [min(f or w, w) if (w := (wrap or {}).get(c)) else f for f, c in zip(folds, columns, strict=True)]
    cells = [[_table_cell(r.get(c), f) for c, f in zip(columns, folds, strict=True)] for r in rows]
    click.echo(tabulate(cells, headers=heads, tablefmt="simple", disable_numparse=True))


def set_json(ctx: Ctx, **parts: Any) -> None:
    """Parts of the one JSON envelope the command prints when it ends: data, findings, plan."""
    for key, value in parts.items():
        ctx.json_parts[key] = _plain(value)


def envelope(command: str, exit_code: int, parts: dict[str, Any], error: dict[str, Any] | None) -> dict[str, Any]:
    """The one shape of every command's --format json (docs/output.md, docs/schema/envelope.json). ok: the
    command ran to its end (exit 0, or 1 for findings); otherwise `error` says why."""
    ok = error is None and exit_code in (EXIT_OK, EXIT_FINDINGS)
    env: dict[str, Any] = {"version": JSON_VERSION, "command": command, "ok": ok, "exit_code": exit_code}
    env.update(parts)
    if not ok:
        env["error"] = error or {"message": f"stopped with exit code {exit_code} (see stderr)", "hint": None}
    return env


def emit_json(command: str, exit_code: int, parts: dict[str, Any], error: dict[str, Any] | None) -> None:
    click.echo(to_json(envelope(command, exit_code, parts, error)))


def message(text: str) -> None:
    """A line for the technician on stderr; what it quotes from outside is shown escaped."""
    click.echo(shown(text, newlines=True), err=True)


def warn(text: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + shown(text, newlines=True), err=True)


def note(ctx: Ctx, text: str, *, warning: bool = False) -> None:
    """A line on stderr for a person reading the table (a count, a hint); none with --format json/csv."""
    if for_people(ctx):
        (warn if warning else message)(text)


def render_findings(
    ctx: Ctx,
    findings: list[Finding],
    *,
    clean: str = "no findings",
    json_obj: Any = None,
    snapshot: str | None = None,
    subjects: int = 0,
) -> int:
    """Findings as rows; returns the exit code (1 if any). json_obj: what JSON shows instead (the findings
    inside a larger object). snapshot: the run's kind ("access-review", "estate-audit"...): its counts are
    kept in the state store for the termly report's trends (subjects: how many were looked at)."""
    if snapshot:
        keep_snapshot(ctx, snapshot, findings, subjects)
    rows = [f.as_row() for f in sort_findings(findings)]
    if wants_json(ctx):  # the envelope's "findings"; what else json_obj holds is its "data"
        json_columns = ["subject", "system", "check", "clause", "severity", "detail"]
        extra = {k: v for k, v in json_obj.items() if k != "findings"} if isinstance(json_obj, dict) else None
        set_json(
            ctx, findings=[{c: r.get(c) for c in json_columns} for r in rows], **({"data": extra} if extra else {})
        )
        return EXIT_FINDINGS if findings else EXIT_OK
    columns = FINDING_COLUMNS if any(f.system for f in findings) else [c for c in FINDING_COLUMNS if c != "system"]
    json_columns = ["subject", "system", "check", "clause", "severity", "detail"]
    render(ctx, rows, columns, data_columns=json_columns if wants_json(ctx) else None, empty=clean, json_obj=json_obj)
    if findings:
        note(ctx, f"{len(findings)} finding(s)")
    return EXIT_FINDINGS if findings else EXIT_OK


def keep_snapshot(ctx: Ctx, kind: str, findings: list[Finding], subjects: int) -> None:
    """Record an audit's counts (aupctl report's history). A store that cannot be written (read-only, full,
    busy) never fails the audit: a warning says the run is missing from the report's trend."""
    from aupctl.errors import AupctlError
    from aupctl.records.snapshots import record_snapshot

    try:
        record_snapshot(ctx.state, kind, findings, subjects)
    except (AupctlError, sqlite3.Error) as exc:
        warn(f"this {kind} was not kept for the termly report (the state store: {exc})")


def dry_run_option(f: Callable) -> Callable:
    return click.option("--dry-run", is_flag=True, help="Show the exact plan and change nothing.")(f)


def yes_option(f: Callable) -> Callable:
    return click.option("--yes", "-y", is_flag=True, help="Apply without asking (for scripts and cron).")(f)


def changing(f: Callable | None = None, *, when: Callable[[dict[str, Any]], bool] | None = None) -> Callable:
    """--dry-run and --yes, for every command that changes something. A trust's school refuses other
    technicians before anything is read (run_plan checks again); `when` says whether this run changes
    anything (`access review` only with --fix); a dry run never does."""
    if f is None:
        return lambda g: changing(g, when=when)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("dry_run") and (when is None or when(kwargs)):
            ctx = click.get_current_context().find_object(Ctx)
            if ctx is not None:
                ctx.may_change()
        return f(*args, **kwargs)

    return dry_run_option(yes_option(wrapper))


BULK_LEASE = "bulk-changes"  # one name for every bulk run: they change the same people and groups


def bulk(what: str, when: Callable[[dict[str, Any]], bool] | None = None) -> Callable:
    """For bulk changing commands: --no-wait, and a lease in the state store held from before the plan is
    built until the command ends, so a second bulk run waits (saying for whom) instead of building its
    plan from a directory the first is changing. No lease for --dry-run, or when `when` says no."""

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def wrapper(*args: Any, no_wait: bool, **kwargs: Any) -> Any:
            if kwargs.get("dry_run") or (when is not None and not when(kwargs)):
                return f(*args, **kwargs)
            ctx = click.get_current_context().find_object(Ctx)
            assert ctx is not None
            ctx.may_change()  # before the lease and the plan: a bulk run another school's technicians own
            state = ctx.state

            def waiting(holder: dict[str, Any]) -> None:
                message(
                    f"waiting for {holder['what']} by {holder['holder']} (since {holder['since']}) to finish; "
                    "--no-wait refuses instead"
                )

            state.lease(BULK_LEASE, what, wait=not no_wait, on_wait=waiting)
            try:
                return f(*args, **kwargs)
            finally:
                try:
                    state.release_lease(BULK_LEASE)
                except sqlite3.Error:
                    pass  # it lapses by itself: the holder is gone once this process ends

        return click.option(
            "--no-wait",
            is_flag=True,
            help="If another bulk run is changing the directory, stop at once (exit 3) instead of waiting for it.",
        )(wrapper)

    return decorate


def plan_json(plan: Plan) -> dict[str, Any]:
    """A plan as --format json shows it, the envelope's "plan" (the one place that shape is written)."""
    return {"title": plan.title, "changes": plan.rows(), "notes": plan.notes, "summary": plan.summary}


def show_plan(ctx: Ctx, plan: Plan) -> None:
    if ctx.fmt == "json":
        set_json(ctx, plan=plan_json(plan))
        return
    if ctx.fmt == "csv":
        from aupctl.errors import InputError

        raise InputError(
            f"--format csv has no rows for a plan ({plan.title}); nothing was changed",
            hint="use --format json (the plan as one object) or the default table",
        )
    out = sys.stdout if ctx.fmt == "table" else sys.stderr
    click.echo(shown(f"Plan: {plan.title}"), file=out)
    for i, change in enumerate(plan.changes, 1):
        click.echo(shown(f"  {i:>3}. {change.description}"), file=out)
    for note in plan.notes:
        click.echo(shown(f"  - {note}", newlines=True), file=out)
    if plan.empty:
        click.echo("  nothing to do", file=out)


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired(
            f"{question} — no terminal to ask and no --yes given; nothing was changed",
            hint="review the plan with --dry-run, then re-run with --yes",
        )
    if not click.confirm(question, default=False, err=True):
        message("not applied: nothing was changed")
        sys.exit(EXIT_DECLINED)


def run_plan(
    ctx: Ctx, plan: Plan, *, dry_run: bool, yes: bool, show: bool = True, done: str | None = None
) -> ApplyResult | None:
    """Show the plan; stop for --dry-run; confirm unless --yes; apply with a progress bar on stderr.
    done: what the summary line counts (people and things, e.g. "40 account(s) created") when a change is
    a batch of them, instead of the changes."""
    if not dry_run:  # the one road of every change: a trust's school refuses other technicians here
        ctx.may_change()
    if show:
        show_plan(ctx, plan)
    if dry_run:
        message("dry run: nothing was changed")
        return None
    if plan.empty:
        return ApplyResult("", [], [])
    confirm(f"Apply these {len(plan.changes)} change(s)?", yes)
    reconcile_open(ctx, keep_going=True)
    bar_needed = len(plan.changes) >= 10 and sys.stderr.isatty()
    if bar_needed:
        with click.progressbar(length=len(plan.changes), label="applying", file=sys.stderr) as bar:

            def progress(i: int, total: int, change: Change) -> None:
                bar.update(1)

            result = apply(plan, ctx.state, progress)
    else:
        result = apply(plan, ctx.state)
    message(f"done: {done or f'{len(result.done)} change(s) applied'} and recorded in the audit log")
    return result


def reconcile_open(ctx: Ctx, *, keep_going: bool) -> list[Reconciled]:
    """Record the changes an earlier, stopped run made but did not record (checked in the directory,
    which is opened only if one needs it), saying so on stderr."""
    from aupctl.checks import checker

    done = reconcile(ctx.state, checker(lambda: ctx.directory), keep_going=keep_going)
    for r in done:
        text = f"an earlier run's change, begun {r.intended_at}, is now recorded: {r.description}: {r.outcome}"
        if r.outcome == UNKNOWN:
            warn(f"{text} ({r.why})")
        elif keep_going:
            message(text)
    if keep_going and ctx.state.open_intents():
        warn("some changes of an earlier run could not be checked yet: run `aupctl log repair`")
    return done


def _no_length() -> Iterator[int]:
    yield from ()


@contextlib.contextmanager
def progress(ctx: Ctx, label: str, length: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, only when a person watches it (a terminal, --format table). Yields a
    function taking how many are done so far; length None: a count with no end known (a stream)."""
    if not (sys.stderr.isatty() and for_people(ctx)):
        yield lambda done: None
        return
    items = None if length is not None else _no_length()  # click then shows a count, no percentage
    with click.progressbar(items, length=length, label=label, show_pos=True, file=sys.stderr) as bar:
        yield lambda done: bar.update(max(0, done - bar.pos))


def exit_with(code: int) -> None:
    if code:
        sys.exit(code)


def exit_for_findings(found: object) -> None:
    """Exit 1 (EXIT_FINDINGS) if anything was found; return for a clean run (exit 0)."""
    exit_with(EXIT_FINDINGS if found else EXIT_OK)
