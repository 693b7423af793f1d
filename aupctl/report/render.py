"""The report's data as one self-contained HTML page, and that page printed to PDF by headless Chromium.

HTML: jinja2 with autoescaping (every name, note and detail from the directory or a person is text, never
markup); styles inline with A4 print rules; charts drawn by matplotlib (Agg, SVG) and put inline, with
nothing that points outside the file (no fonts, scripts or images by URL). matplotlib is imported here
only, so the CLI stays quick; a missing one is a clear message (the `report` extra).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RAG_COLOURS = {"red": "#c0392b", "amber": "#d68910", "green": "#1e8449"}
SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#d68910", "low": "#2874a6", "info": "#7f8c8d"}

# AUP clauses each section cites (shared/policy: the staff acceptable use policy), in plain words
CLAUSES = {
    "1.1": "access to school systems is given by the school",
    "1.3": "restricted systems only for nominated staff",
    "1.4": "school equipment returned when staff leave",
    "4.2": "access withdrawn when it is no longer needed",
    "6.0": "security and confidentiality",
    "6.2": "passwords kept confidential and hard to guess",
    "6.7": "antivirus and updates on school equipment",
    "6.8": "school data encrypted",
    "8.1": "concerns reported to the headteacher (or the chair of governors)",
    "9.1": "every member of staff signs the declaration",
    "9.2": "a breach may lead to access being withdrawn",
}


class MissingPart(ConfigError):
    """matplotlib or the browser is not installed (exit 2, with how to install it)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingPart(
            "aupctl report draws its charts with matplotlib, which is not installed",
            hint="pip install 'aupctl[report]' (or: apt-get install python3-matplotlib)",
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "aupctl", "font.size": 9, "axes.spines.top": False})
    plt.rcParams["axes.spines.right"] = False
    return plt


_STRIP = [
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*"),
    re.compile(r"<metadata>.*?</metadata>\s*", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
]


def _svg(fig: Any, plt: Any, label: str) -> str:
    """A figure as inline SVG markup: no XML prolog, DTD, metadata or namespace URLs (inline SVG in HTML
    needs none), and a role and label for screen readers."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    for pattern in _STRIP:
        text = pattern.sub("", text)
    from markupsafe import escape

    return text.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)


def _bar_by_role(plt: Any, by_role: dict[str, dict[str, int]]) -> str | None:
    if not by_role:
        return None
    roles = list(by_role)
    signed = [by_role[r]["signed"] for r in roles]
    unsigned = [by_role[r]["staff"] - by_role[r]["signed"] for r in roles]
    fig, ax = plt.subplots(figsize=(6.2, 0.35 * len(roles) + 0.9))
    ax.barh(roles, signed, color=RAG_COLOURS["green"], label="signed")
    ax.barh(roles, unsigned, left=signed, color="#d5d8dc", label="not signed")
    for i, (s, u) in enumerate(zip(signed, unsigned, strict=True)):
        ax.text(s + u + 0.3, i, f"{s}/{s + u}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("staff")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=8)
    return _svg(fig, plt, "AUP declarations signed, by role")


def _trend(plt: Any, trend: list[dict[str, Any]], title: str) -> str | None:
    if not trend:
        return None
    import datetime as dt

    days = [dt.datetime.fromisoformat(t["at"]) for t in trend]
    fig, ax = plt.subplots(figsize=(6.2, 2.2))
    bottom = [0] * len(trend)
    for sev in ("high", "medium", "low", "info"):
        values = [t["by_severity"].get(sev, 0) for t in trend]
        if any(values):
            ax.plot(
                days,
                [b + v for b, v in zip(bottom, values, strict=True)],
                marker="o",
                ms=3,
                color=SEVERITY_COLOURS[sev],
                label=sev,
            )
            ax.fill_between(
                days,
                bottom,
                [b + v for b, v in zip(bottom, values, strict=True)],
                color=SEVERITY_COLOURS[sev],
                alpha=0.25,
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if not any(bottom):  # a clean term is a line at nought, not an empty chart (and no empty legend)
        ax.plot(days, bottom, marker="o", ms=3, color="#2e7d32", label="no findings")
    ax.set_ylabel("findings")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, fontsize=8)
    fig.autofmt_xdate()
    return _svg(fig, plt, title)


def _bar_by_check(plt: Any, by_check: dict[str, int], title: str) -> str | None:
    if not by_check:
        return None
    checks = sorted(by_check, key=lambda k: -by_check[k])
    fig, ax = plt.subplots(figsize=(6.2, 0.3 * len(checks) + 0.8))
    ax.barh(checks, [by_check[c] for c in checks], color="#2874a6")
    ax.invert_yaxis()
    ax.set_xlabel("findings")
    return _svg(fig, plt, title)


def charts(report: dict[str, Any]) -> dict[str, dict[str, str | None]]:
    """Each school's charts as inline SVG, by school index and name."""
    plt = _pyplot()
    out: dict[str, dict[str, str | None]] = {}
    for i, school in enumerate(report["schools"]):
        s = school["sections"]
        latest_laptops = (s["equipment"]["latest"] or {}).get("by_check", {})
        latest_passwords = (s["passwords"]["latest"] or {}).get("by_check", {})
        mine = {
            "aup_by_role": _bar_by_role(plt, s["people"]["aup"]["by_role"]),
            "review_trend": _trend(plt, s["people"]["review"]["trend"], "access review findings over the term"),
            "password_trend": _trend(plt, s["passwords"]["trend"], "password findings over the term"),
            "password_checks": _bar_by_check(plt, latest_passwords, "password findings by kind"),
            "laptop_checks": _bar_by_check(plt, latest_laptops, "laptop findings by check"),
        }
        for kind, part in s["extra"].items():
            mine[f"trend:{kind}"] = _trend(plt, part["trend"], f"{part['title']} findings over the term")
        out[str(i)] = mine
    return out


def html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML document."""
    import jinja2
    from markupsafe import Markup

    from ..text import shown

    def visible(value: Any) -> Any:
        # names, notes and OS strings come from the directory and people: a control or bidi character
        # (ESC, U+202E) is written as an escape, as on the terminal, so it cannot reorder what a governor reads
        return shown(value, newlines=True) if isinstance(value, str) and not isinstance(value, Markup) else value

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("aupctl.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=visible,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.0f} %"
    env.filters["day"] = _day
    svgs = {k: {n: Markup(v) if v else None for n, v in c.items()} for k, c in charts(report).items()}
    return env.get_template("report.html.j2").render(
        report=report, charts=svgs, clauses=CLAUSES, rag_colours=RAG_COLOURS
    )


def _day(value: str | None) -> str:
    """2026-11-30 (or an ISO timestamp) as 30 Nov 2026."""
    if not value:
        return "—"
    import datetime as dt

    try:
        return dt.date.fromisoformat(value[:10]).strftime("%-d %b %Y")
    except ValueError:
        return value


def find_browser(configured: str | None) -> str:
    """The headless browser: [report] chromium, else the first of BROWSERS on PATH; MissingPart if none."""
    if configured:
        found = shutil.which(configured)
        if not found:
            raise MissingPart(
                f"[report] chromium = {configured!r}: no such program", hint='fix the path, or set it to ""'
            )
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise MissingPart(
        f"--pdf needs a headless Chromium to print the page, and none is on PATH ({', '.join(BROWSERS)})",
        hint="apt-get install chromium (or set [report] chromium); the HTML report needs no browser",
    )


def browser_args(browser: str, profile: str) -> list[str]:
    """Headless Chromium that reaches no network by itself (docs: real-servers.md)."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        f"--user-data-dir={profile}",
    ]


def print_pdf(html_path: Path, pdf_path: Path, *, browser: str, timeout: float) -> None:
    """Print the HTML page to a PDF with headless Chromium (A4 from the page's @page rule)."""
    pdf_path = pdf_path.resolve()
    tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory(prefix="aupctl-chromium-") as profile:
        args = [
            *browser_args(browser, profile),
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            html_path.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise ConfigError(
                f"{browser} did not print the PDF within {timeout:g} s; the HTML report is at {html_path}",
                hint="raise [report] pdf_timeout, or print the HTML from a browser",
            ) from None
        except OSError as exc:
            raise MissingPart(f"cannot run {browser}: {exc}", hint="check [report] chromium") from None
    try:
        ok = done.returncode == 0 and tmp.read_bytes()[:5] == b"%PDF-"
    except OSError:
        ok = False
    if not ok:
        tmp.unlink(missing_ok=True)
        last = (done.stderr or "").strip().splitlines()[-3:]
        raise ConfigError(
            f"{browser} could not print the PDF (exit {done.returncode}): {' / '.join(last)}",
            hint=f"the HTML report is at {html_path}; print it from a browser",
        )
    os.replace(tmp, pdf_path)
