"""`aupctl report` and `aupctl evidence` on the OpenLDAP sandbox school, after the demo's kind of jobs (AUP
signatures, adopt, a grant, a review, a password audit, a leaver, evidence): every figure of the report
equals the same figure in the JSON of the command it comes from; the page rendered and printed by the real
headless Chromium: no console errors (a hostile name's <script> would log one), no external requests (the
browser's net log), a screenshot kept, the PDF's page count and text; bad input (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import ldap3
import pytest
from cli_helpers import run_main

from aupctl import config as config_mod
from aupctl.directory import open_directory
from aupctl.report import render

pytestmark = [pytest.mark.openldap]

TODAY = dt.date.today()
HOSTILE_NAME = '<script>console.error("hostile-name-ran")</script> Zoë "Q" O\'Brien'
HOSTILE_NOTE = '<img src=x onerror=console.error("hostile-note-ran")> "restored" & <b>tested</b>'
# the browser's own background services (not the page's requests), as Chromium 156 calls them
BROWSER_OWN = {
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "clientservices.googleapis.com",
    "redirector.gvt1.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
}


def cli(config: Path, *args: str) -> tuple[int, Any, str]:
    code, out, err = run_main(*args, config=config)
    body = json.loads(out) if "--format" in args else out
    return code, body, err


@pytest.fixture(scope="module")
def school(openldap_sandbox, tmp_path_factory) -> dict[str, Any]:
    """The sandbox after a term's jobs; the JSON of each command whose figures the report shows."""
    conf = openldap_sandbox.config_path
    cfg = config_mod.load(str(conf))
    tmp = tmp_path_factory.mktemp("report")
    j: dict[str, Any] = {}
    assert cli(conf, "aup", "import", str(openldap_sandbox.dir / "aup-signatures.csv"), "--yes")[0] == 0
    # a hostile display name on someone who holds a restricted system
    code, adopted, _ = cli(conf, "access", "adopt", "--approved-by", "Mrs A Patel (Headteacher)", "--yes")
    assert code == 0, adopted
    code, listed, _ = cli(conf, "access", "list", "sims", "--format", "json")
    victim = listed["data"][0]["username"]
    d = open_directory(cfg)
    try:
        acct = d.flavour.find_user(d, victim)
        d.conn.modify(acct.dn, {"displayName": [(ldap3.MODIFY_REPLACE, [HOSTILE_NAME])]})
        assert d.conn.result["result"] == 0, d.conn.result
    finally:
        d.close()
    code, out, err = cli(conf, "access", "grant", "zclarke", "raise", "--approved-by", "Mrs A Patel", "--yes")
    assert code == 0, err
    code, j["review"], _ = cli(conf, "access", "review", "--format", "json")
    assert code in (0, 1)
    code, j["passwords"], _ = cli(conf, "password", "audit", "--no-hash-check", "--format", "json")
    assert code in (0, 1)
    code, j["laptops"], _ = cli(conf, "laptop", "audit", "--no-probe", "--format", "json")
    assert code in (0, 1)
    code, j["review_sims"], _ = cli(conf, "access", "review", "sims", "--format", "json")  # one system: no snapshot
    assert code in (0, 1)
    code, out, err = cli(conf, "leaver", "withdraw", "skhan", "--reason", "left", "--yes")
    assert code == 0, err
    proof = tmp / "restore-test.txt"
    proof.write_text("restore of the SIMS database tested\n")
    code, j["evidence_new"], err = cli(
        conf, "evidence", "record", "backup-tested", "--on", TODAY.isoformat(), "--note", HOSTILE_NOTE,
        "--file", str(proof), "--yes", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert cli(conf, "evidence", "record", "incident", "--on", TODAY.isoformat(), "--note", "phishing", "--yes")[0] == 0
    for name, args in {
        "aup": ("aup", "status"),
        "access": ("access", "list"),
        "leavers": ("leaver", "list"),
        "tasks": ("tasks", "list", "--open"),
        "evidence": ("evidence", "list"),
    }.items():
        code, j[name], err = cli(conf, *args, "--format", "json")
        assert code == 0, (name, err)
    html, pdf = tmp / "report.html", tmp / "report.pdf"
    code, rep, err = cli(conf, "report", "--out", str(html), "--pdf", str(pdf), "--format", "json")
    assert code == 0, err
    assert rep["ok"] and rep["command"] == "report"
    return {"json": j, "report": rep["data"], "school": rep["data"]["schools"][0], "html": html, "pdf": pdf,
            "tmp": tmp, "config": conf, "proof": proof, "victim": victim}  # fmt: skip


def test_review_and_password_figures_equal_the_commands_json(school) -> None:
    s = school["school"]["sections"]
    for part, key in ((s["people"]["review"], "review"), (s["passwords"], "passwords")):
        findings = school["json"][key]["findings"]
        assert part["run"] is True
        assert part["latest"]["total"] == len(findings) > 0
        assert part["latest"]["by_check"] == dict(Counter(f["check"] for f in findings))
        assert part["latest"]["by_severity"] == dict(Counter(f["severity"] for f in findings))
        assert part["trend"][-1]["total"] == len(findings)
    stale = sum(1 for f in school["json"]["passwords"]["findings"] if f["check"] == "stale-account")
    assert s["passwords"]["stale"] == stale
    laptops = school["json"]["laptops"]["findings"]
    assert s["equipment"]["run"] is True and s["equipment"]["latest"]["total"] == len(laptops)
    assert s["equipment"]["latest"]["subjects"] == len(school["json"]["laptops"]["data"]["laptops"])
    assert s["people"]["review"]["runs"] == 1  # `access review sims` (one system) is no point on the trend
    assert s["extra"]["estate-audit"]["run"] is False and s["extra"]["domain-audit"]["run"] is False
    rows = {r["key"]: r for r in school["school"]["glance"]["standards"]}
    assert rows["network"]["evidence"].endswith("not run this term") and rows["network"]["rag"] == "amber"
    assert not school["json"]["laptops"]["data"]["laptops"]  # the sandbox enrols none: a clean audit of
    assert rows["devices"]["rag"] == "amber" and "found nothing to check" in rows["devices"]["evidence"]  # none


def test_people_and_access_figures_equal_the_commands_json(school) -> None:
    aup = school["school"]["sections"]["people"]["aup"]
    rows = school["json"]["aup"]["data"]
    assert aup["staff"] == len(rows) and aup["signed"] == sum(1 for r in rows if r["signed"]) > 0
    by_role = Counter(r["role"] or "no role" for r in rows)
    assert {k: v["staff"] for k, v in aup["by_role"].items()} == dict(by_role)
    held = Counter(r["system"] for r in school["json"]["access"]["data"])
    systems = {x["system"]: x for x in school["school"]["sections"]["people"]["systems"]}
    assert {k: v["count"] for k, v in systems.items() if v["count"]} == dict(held)
    assert any(h["username"] == "zclarke" for h in systems["raise"]["holders"])  # the grant
    assert any(h["name"] == HOSTILE_NAME for h in systems["sims"]["holders"])
    assert school["school"]["sections"]["people"]["approvals"]["granted"] >= len(school["json"]["access"]["data"])
    assert school["school"]["sections"]["people"]["recertification"] is None  # not run: said so in the page


def test_leavers_tasks_and_evidence_equal_the_commands_json(school) -> None:
    jml = school["school"]["sections"]["jml"]
    done = [r for r in school["json"]["leavers"]["data"] if r["status"] == "done"]
    assert jml["leavers"] == len(done) == 1
    assert jml["leavers_still_enabled"] == 0
    assert jml["days_to_withdraw"] == {"median": 0, "worst": 0, "count": 1}
    assert jml["open_tasks"] == len(school["json"]["tasks"]["data"]) > 0
    ev = {e["kind"]: e for e in school["school"]["sections"]["evidence"]["kinds"]}
    listed = school["json"]["evidence"]["data"]
    assert len(listed) == 2
    backup = next(r for r in listed if r["kind"] == "backup-tested")
    assert ev["backup-tested"]["status"] == "current" and ev["backup-tested"]["note"] == backup["note"] == HOSTILE_NOTE
    assert backup["file"] == str(school["proof"].resolve()) and len(backup["sha256"]) == 64
    assert ev["incident"]["status"] == "recorded" and ev["incident"]["entries"][0]["note"] == "phishing"
    assert ev["risk-assessment"]["status"] == "missing" and ev["cyberalarm"]["status"] == "missing"
    glance = school["school"]["glance"]
    assert len(glance["actions"]) == 3 and all(a["who"] and a["by"] >= TODAY.isoformat() for a in glance["actions"])
    assert {r["rag"] for r in glance["standards"]} <= {"red", "amber", "green"}


def test_evidence_is_audit_logged_and_bad_input_records_nothing(school) -> None:
    conf = school["config"]
    code, log, _ = cli(conf, "log", "--format", "json")
    assert code == 0
    entries = [e for e in log["data"] if e["action"] == "evidence-record"]
    assert len(entries) == 2 and entries[0]["target"] in ("backup-tested", "incident")
    for args, words in [
        (("evidence", "record", "backup-tsted", "--on", "2026-09-01"), "did you mean backup-tested"),
        (("evidence", "record", "incident", "--on", "31/02/2026"), "no such day"),
        (("evidence", "record", "incident", "--on", (TODAY + dt.timedelta(days=2)).isoformat()), "future"),
        (("evidence", "record", "incident", "--on", "2026-09-01", "--file", "/nonexistent/x"), "--file"),
        (("evidence", "record", "incident", "--on", "2026-09-01", "--note", "a\x1b[2Jb"), "--note"),
        (("report", "--term", "winter-2026"), "not a term"),
        (("report", "--from", "2026-09-01"), "go together"),
        (("report", "--from", "2026-10-01", "--to", "2026-09-01"), "before"),
    ]:
        code, out, err = run_main(*args, "--yes" if args[0] == "evidence" else "--no-directory", config=conf)
        assert code == 2, (args, out, err)
        assert words in err, (args, err)
    assert len(cli(conf, "evidence", "list", "--format", "json")[1]["data"]) == 2


def test_the_html_is_self_contained_and_escapes_names_and_notes(school) -> None:
    page = school["html"].read_text(encoding="utf-8")
    assert not re.search(r"https?://", page), re.findall(r".{40}https?://.{40}", page)[:3]
    tags_fetching = re.findall(r"""<[a-z][^>]*\s(?:src|href)\s*=\s*["']?(?!#)[^"'\s>]""", page, re.I)
    assert tags_fetching == []  # nothing the page would fetch (glyphs are <use> of #ids in the same file)
    assert "<script" not in page.lower().replace("&lt;script", "")  # no script at all, ours or theirs
    assert "&lt;script&gt;console.error(&#34;hostile-name-ran&#34;)&lt;/script&gt; Zoë &#34;Q&#34; O&#39;Brien" in page
    assert "&lt;img src=x onerror=" in page and "&lt;b&gt;tested&lt;/b&gt;" in page
    assert page.count("<svg ") >= 3  # AUP by role, review trend, password trend/checks
    assert "@page" in page and "A4" in page
    for title in ("At a glance", "People and access", "Joiners, movers and leavers", "Passwords and admin accounts",
                  "Equipment", "Evidence", "AUP clauses: 1.3", "DfE cyber security standard"):  # fmt: skip
        assert title in page, title
    assert "Recertification of access: not run this term" in page


def _chromium(page: Path, tmp: Path, *extra: str) -> tuple[str, list[str]]:
    """Load the page in the real headless Chromium; (its log on stderr, the hosts the page asked for)."""
    browser = render.find_browser(None)
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    netlog = profile.with_suffix(".netlog.json")
    args = [*render.browser_args(browser, str(profile)), "--enable-logging=stderr", "--v=0",
            f"--log-net-log={netlog}", *extra, page.resolve().as_uri()]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    urls = set(re.findall(r'"url":"([a-z]+://[^"]*)"', netlog.read_text(errors="replace")))
    hosts = [u for u in urls if not u.startswith("file:") and re.sub(r"^\w+://([^/:]+).*", r"\1", u) not in BROWSER_OWN]
    return done.stderr, hosts


def test_the_browser_check_catches_console_errors_and_requests(tmp_path: Path) -> None:
    """The checks below can fail: a page with a console error and an image by URL is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<p>x</p><img src="http://127.0.0.1:9/canary.png"><script>console.error("canary")</script>')
    log, requests = _chromium(bad, tmp_path, f"--screenshot={tmp_path / 'bad.png'}")
    assert "INFO:CONSOLE" in log and "canary" in log
    assert requests == ["http://127.0.0.1:9/canary.png"]


def test_rendered_in_chromium_without_console_errors_or_requests(school) -> None:
    shot = school["tmp"] / "report.png"  # for a person to look at
    log, requests = _chromium(school["html"], school["tmp"], f"--screenshot={shot}", "--window-size=1000,3000",
                              "--hide-scrollbars")  # fmt: skip
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert requests == [], requests
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pdf_prints_to_a4_pages_and_reads_as_text(school) -> None:
    pdf = school["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert 3 <= pages <= 12, info
    assert re.search(r"Page size:.*pts \(A4\)", info), info
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for words in ("Cyber security and acceptable use", "At a glance", "The three most important actions",
                  "Joiners, movers and leavers", "not run this term", "Hollybank"):  # fmt: skip
        assert words in flat, words
    assert '<script>console.error("hostile-name-ran")</script>' in flat  # the hostile name, as text
    aup = school["school"]["sections"]["people"]["aup"]
    assert f"{aup['signed']} / {aup['staff']}" in flat


def test_report_without_matplotlib_or_browser_says_how_to_install(school, monkeypatch, tmp_path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    code, out, err = run_main("report", "--no-directory", "--out", str(tmp_path / "r.html"), config=school["config"])
    assert code == 2 and "matplotlib" in err and "aupctl[report]" in err
    assert not (tmp_path / "r.html").exists()
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH
    code, out, err = run_main("report", "--no-directory", "--pdf", str(tmp_path / "r.pdf"), config=school["config"])
    assert code == 2 and "Chromium" in err and not (tmp_path / "r.pdf").exists()
    assert shutil.which("chromium") is None


def test_terms_and_periods() -> None:
    from aupctl.report.data import period_of

    assert period_of("autumn-2026", None, None, TODAY).start == dt.date(2026, 9, 1)
    assert period_of("autumn-2026", None, None, TODAY).end == dt.date(2026, 12, 31)
    assert period_of("spring-2027", None, None, TODAY).end == dt.date(2027, 3, 31)
    assert period_of("summer-2027", None, None, TODAY).start == dt.date(2027, 4, 1)
    assert period_of(None, None, None, dt.date(2027, 8, 31)).term == "summer-2027"
    custom = period_of(None, "01/10/2026", "2026-10-31", TODAY)
    assert (custom.lo, custom.hi, custom.term) == ("2026-10-01", "2026-11-01", None)


def test_an_audit_whose_snapshot_cannot_be_kept_still_reports(school, tmp_path) -> None:
    """A store another process holds locked (as a read-only or full one, it cannot be written): the audit
    still prints its findings and exit code; a warning says the run is missing from the report's trend."""
    import sqlite3

    conf = school["config"].parent / "locked-store.toml"  # beside it: its relative paths mean the same
    text = school["config"].read_text()
    assert "\n[state]\n" in text
    conf.write_text(text.replace("\n[state]\n", "\n[state]\nbusy_timeout = 0.2\n"))
    store = config_mod.load(str(conf)).state.path
    assert store == config_mod.load(str(school["config"])).state.path
    count = "SELECT count(*) FROM snapshots WHERE kind = 'password-audit'"
    holder = sqlite3.connect(store, isolation_level=None)
    try:
        before = holder.execute(count).fetchone()[0]
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held
        code, out, err = run_main("--format", "json", "password", "audit", "--no-hash-check", config=conf)
        holder.execute("ROLLBACK")
        assert code == 1, err
        assert json.loads(out)["findings"] == school["json"]["passwords"]["findings"]
        assert "was not kept for the termly report" in err and "locked" in err
        assert holder.execute(count).fetchone()[0] == before
    finally:
        holder.close()
        conf.unlink()


def test_help_imports_neither_matplotlib_nor_jinja2() -> None:
    """`aupctl --help` and `aupctl report --help` stay quick: the report's libraries load only to draw."""
    import sys

    code = (
        "import sys; from aupctl.commands import main\n"
        "for args in (['--help'], ['report', '--help'], ['evidence', 'record', '--help']):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('matplotlib', 'jinja2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]
    assert "--term TERM" in done.stdout and "backup-tested" in done.stdout
