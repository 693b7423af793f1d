"""--all-schools: a read-only job run for every school of a trust's config, as one result with a school
column (docs/trust.md). The exit code is the worst of the schools'; a school that fails (its directory
unreachable, its table in the config wrong) is a row of its own and the others still run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from aupctl.errors import EXIT_FINDINGS, EXIT_OK, AupctlError
from aupctl.findings import Finding, sort_findings

from .context import Ctx
from .output import exit_with, keep_snapshot, note, render, set_json, wants_json, warn

# Read-only jobs that take --all-schools: access review, password audit, laptop audit, estate audit,
# domain audit.

COLUMNS = ["school", "severity", "subject", "system", "check", "clause", "detail"]


def all_schools_option(f: Callable) -> Callable:
    return click.option(
        "--all-schools",
        is_flag=True,
        help="Every school of the trust's config ([schools.KEY]): one result with a school column; the exit "
        "code is the worst of them; a school that cannot be reached is a row and the others still run.",
    )(f)


@dataclass
class SchoolRun:
    school: str
    name: str
    exit_code: int = EXIT_OK
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None


def _school_given_too(ctx: Ctx) -> bool:
    root = click.get_current_context().find_root()
    source = root.get_parameter_source("school")
    return ctx.school is not None and source == click.core.ParameterSource.COMMANDLINE


def refuse_school_too(ctx: Ctx) -> None:
    """--all-schools with --school KEY on the command line: a usage error (exit 2), whatever the job."""
    if _school_given_too(ctx):
        raise click.UsageError("give --school KEY or --all-schools, not both")


def run_all_schools(
    ctx: Ctx,
    job: Callable[[Ctx], list[Finding] | tuple[list[Finding], int]],
    *,
    clean: str = "no findings",
    snapshot: str | None = None,
) -> None:
    """Run job(school's Ctx) -> findings (or (findings, subjects looked at)) for each school in turn; render
    them as one table / envelope; exit with the worst code. A config of one school is run as its one school.
    snapshot: the run's kind, kept in each school's own store for its termly report, as a single run is."""
    refuse_school_too(ctx)
    keys: list[str | None] = list(ctx.trust.keys) or [None]
    runs: list[SchoolRun] = []
    for key in keys:
        sub = ctx.for_school(key)
        run = SchoolRun(key or "", key or "")
        try:
            run.name = sub.config.school.name
            if key is None:
                run.school = run.name
            got = job(sub)
            run.findings, subjects = got if isinstance(got, tuple) else (got, 0)
            if snapshot:
                keep_snapshot(sub, snapshot, run.findings, subjects)
            run.exit_code = EXIT_FINDINGS if run.findings else EXIT_OK
        except AupctlError as exc:  # this school's failure; the others still run
            run.exit_code, run.error = exc.exit_code, exc.message
            warn(f"school {run.school}: {exc.message}")
        finally:
            sub.close()
        runs.append(run)
    _render(ctx, runs, clean)
    exit_with(max(r.exit_code for r in runs))


def _render(ctx: Ctx, runs: list[SchoolRun], clean: str) -> None:
    rows: list[dict[str, Any]] = []
    for run in runs:
        rows += [{"school": run.school, **f.as_row()} for f in sort_findings(run.findings)]
        if run.error is not None:
            check = "school-unreachable" if run.exit_code == 3 else "school-failed"
            rows.append(
                {
                    "school": run.school,
                    "severity": "error",
                    "subject": run.school,
                    "system": None,
                    "check": check,
                    "clause": "",
                    "detail": run.error,
                }
            )
    summary = [
        {"school": r.school, "name": r.name, "exit_code": r.exit_code, "findings": len(r.findings), "error": r.error}
        for r in runs
    ]
    if wants_json(ctx):  # findings carry their school; data.schools says how each school's run ended
        findings = [
            {
                "school": r["school"],
                **{c: r.get(c) for c in ("subject", "system", "check", "clause", "severity")},
                "detail": r["detail"],
            }
            for r in rows
            if r["severity"] != "error"
        ]
        set_json(ctx, findings=findings, data={"schools": summary})
        return
    columns = COLUMNS if any(r.get("system") for r in rows) else [c for c in COLUMNS if c != "system"]
    render(ctx, rows, columns, empty=f"{clean} (in any of {len(runs)} school(s))")
    for s in summary:
        state = f"failed (exit {s['exit_code']})" if s["error"] else f"{s['findings']} finding(s)"
        note(ctx, f"school {s['school']}: {state}")
