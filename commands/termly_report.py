"""aupctl report: the termly report for the head teacher and governors (HTML, and PDF). (Not report.py: that
name would shadow the package's report() error handler once imported.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aupctl.errors import AupctlError

from .context import Ctx, pass_ctx
from .output import for_people, message, render, set_json, warn
from .schools import all_schools_option, refuse_school_too


@click.command("report")
@click.option("--term", metavar="TERM", help="autumn-2026, spring-2027 or summer-2027 (default: this term).")
@click.option("--from", "start", metavar="DATE", help="Start of a period other than a term (with --to).")
@click.option("--to", "end", metavar="DATE", help="End of the period, inclusive (with --from).")
@click.option(
    "--out",
    metavar="PATH",
    help="Where the HTML goes (default: aupctl-report-TERM.html here; with --format json, only if given).",
)
@click.option("--pdf", metavar="PATH", help="Also print the report to this PDF (headless Chromium).")
@click.option("--no-directory", is_flag=True, help="Do not read the directory: figures about staff now are left out.")
@all_schools_option
@pass_ctx
def cli(
    ctx: Ctx,
    term: str | None,
    start: str | None,
    end: str | None,
    out: str | None,
    pdf: str | None,
    no_directory: bool,
    all_schools: bool,
) -> None:
    """The termly report for the head teacher and governors: one self-contained HTML page (and a PDF).

    \b
    Sections, each citing its AUP clauses and DfE cyber security standard:
      at a glance (a red/amber/green row per standard, the three most important actions),
      people and access, joiners/movers/leavers, passwords and admin accounts, equipment, evidence.

    Built from the state store: the counts each access review, password audit and laptop audit keeps
    (so the term's trend needs no re-reading), the records (approvals, leavers, tasks, laptops) and
    `aupctl evidence`; the directory is read once for the staff list, admin groups and leavers. Terms:
    autumn 1 Sep-31 Dec, spring 1 Jan-31 Mar, summer 1 Apr-31 Aug. A part with no data says "not run
    this term". With --all-schools (a trust's config): the trust's roll-up, a row per school, then each
    school's pages; --school KEY: one school's. --format json gives the report's data. Needs matplotlib (pip install 'aupctl[report]')
    and, for --pdf, Chromium ([report] chromium); exit 2 when missing.
    """
    import datetime as dt

    from aupctl.report import data

    if all_schools:
        refuse_school_too(ctx)
    today = dt.date.today()
    period = data.period_of(term, start, end, today)
    report = data.build(_schools(ctx, period, today, no_directory, all_schools), period, today=today)
    if out is None and pdf is None and for_people(ctx):
        out = f"aupctl-report-{period.term or period.lo + '-' + period.end.isoformat()}.html"
    if out or pdf:
        _write(ctx, report, out, pdf)
    if not for_people(ctx):
        if ctx.fmt == "json":
            set_json(ctx, data=report)
        else:
            render(ctx, _glance_rows(report))
        return
    columns = (
        ["school", "standard", "rag", "evidence"] if len(report["schools"]) > 1 else ["standard", "rag", "evidence"]
    )
    render(ctx, _glance_rows(report), columns, wrap={"evidence": 60})


def _schools(ctx: Ctx, period: Any, today: Any, no_directory: bool, all_schools: bool) -> list[dict]:
    """Each school's part of the report, from its own store (and directory): this school's, or with
    --all-schools every school's of the trust (data.build() then adds the roll-up)."""
    from aupctl.report import data

    if not all_schools:
        cfg, state = ctx.config, ctx.state
        now = data.NOT_READ if no_directory else data.read_now(cfg, ctx.directory, state)
        return [data.build_school(cfg, state, now, period, today=today, key=cfg.school_key or None)]
    parts = []
    keys: list[str | None] = list(ctx.trust.keys) or [None]
    for key in keys:
        sub = ctx.for_school(key)
        try:
            now = data.NOT_READ
            if not no_directory:
                try:
                    now = data.read_now(sub.config, sub.directory, sub.state)
                except AupctlError as exc:  # that school's figures about staff now are left out; the rest stands
                    warn(f"school {key}: its directory was not read ({exc.message}): staff figures are left out")
            parts.append(data.build_school(sub.config, sub.state, now, period, today=today, key=key))
        finally:
            sub.close()
    return parts


def _glance_rows(report: dict) -> list[dict]:
    return [
        {"school": s["name"], "standard": r["standard"], "rag": r["rag"], "evidence": r["evidence"], "date": r["date"]}
        for s in report["schools"]
        for r in s["glance"]["standards"]
    ]


def _write(ctx: Ctx, report: dict, out: str | None, pdf: str | None) -> None:
    import tempfile

    from aupctl.report import render as rendering

    browser = rendering.find_browser(ctx.config.report.chromium or None) if pdf else None  # before the work
    page = rendering.html(report)
    if out:
        path = Path(out)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
        message(f"report written to {path.resolve()}")
    if pdf:
        assert browser is not None
        with tempfile.TemporaryDirectory(prefix="aupctl-report-") as d:
            src = Path(out) if out else Path(d) / "report.html"
            if not out:
                src.write_text(page, encoding="utf-8")
            try:
                rendering.print_pdf(src, Path(pdf), browser=browser, timeout=ctx.config.report.pdf_timeout)
            except Exception:
                if not out:
                    warn("the PDF was not printed and no --out was given: no HTML was kept either")
                raise
        message(f"PDF written to {Path(pdf).resolve()}")
