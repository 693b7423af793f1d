"""aupctl report: the termly report for the head teacher and governors (HTML, and PDF). (Not report.py: that
name would shadow the package's report() error handler once imported.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .context import Ctx, pass_ctx
from .output import for_people, message, render, set_json, warn


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
@pass_ctx
def cli(
    ctx: Ctx, term: str | None, start: str | None, end: str | None, out: str | None, pdf: str | None, no_directory: bool
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
    this term". --format json gives the report's data. Needs matplotlib (pip install 'aupctl[report]')
    and, for --pdf, Chromium ([report] chromium); exit 2 when missing.
    """
    import datetime as dt

    from aupctl.report import data

    today = dt.date.today()
    period = data.period_of(term, start, end, today)
    report = data.build(_schools(ctx, period, today, no_directory), period, today=today)
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


def _schools(ctx: Ctx, period: Any, today: Any, no_directory: bool) -> list[dict]:
    """Each school's part of the report, from its own store (and directory). One school today: the
    multi-school config's --school KEY / --all-schools makes this a loop over each school's (key, config,
    store, directory), calling data.build_school(..., key=KEY) for each; data.build() adds the roll-up."""
    from aupctl.report import data

    cfg, state = ctx.config, ctx.state
    now = data.NOT_READ if no_directory else data.read_now(cfg, ctx.directory, state)
    return [data.build_school(cfg, state, now, period, today=today)]


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
