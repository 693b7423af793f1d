"""bench/report: the termly report of a 300-staff school with a term of history, in under 3 s.

A temp state store is filled with a term's worth of records: approvals for four systems, a daily access
review, password audit and laptop audit (snapshots), 25 joiners, 20 leavers, 120 laptops with check-ins,
by-hand tasks and evidence. What the directory holds now (the staff list and their AUP signatures) is made
up as the report's `Now` (no directory is read: the report's directory part is one paged search, timed by
bench/review.py). Timed: the data (every figure) and the HTML with its charts (matplotlib imported
inside, as in the command); the PDF is printed too when Chromium is present, and timed apart.

Run by hand:  python3 bench/report.py [--staff 300] [--budget 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = """
[school]
name = "Bench Academy"
aup_version = "2026-09"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:6360"
bind_dn = "cn=admin,dc=bench,dc=test"
base_dn = "dc=bench,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
privileged_groups = ["Domain Admins"]

[roles.teacher]
[roles.ta]
[roles.office]
[roles.slt]

[systems.sims]
name = "SIMS"
group = "SIMS Users"
approvers = ["Head"]
[systems.raise]
name = "RAISE Online"
group = "RAISE Users"
approvers = ["Head"]
[systems.sap]
name = "SAP"
approvers = ["Head"]
[systems.tt]
name = "Target Tracker"
group = "TT Users"
approvers = ["Head"]

[[licences]]
product = "Office"
match = ["Microsoft Office*"]
seats = 150
expires = "2027-02-28"
"""

ROLES = ["teacher"] * 5 + ["ta"] * 3 + ["office", "slt"]
REVIEW_CHECKS = ["no-approval", "aup-unsigned", "overdue", "disabled-member", "role-not-eligible"]
PASSWORD_CHECKS = ["stale-account", "easily-guessed-password", "privileged-staff-account", "shared-account"]
LAPTOP_CHECKS = ["antivirus-off", "not-encrypted", "pending-updates", "checkin-overdue", "signatures-old"]


def fill(state, cfg, staff: int, period, rng: random.Random) -> None:
    """A term of history in the store (records through the records API where there is one)."""
    from aupctl.findings import Finding
    from aupctl.records import approvals, evidence, snapshots

    users = [f"user{i:03d}" for i in range(staff)]
    for i, u in enumerate(users):
        for key in rng.sample(list(cfg.systems), k=1 + i % 2):
            approvals.record(state, username=u, system=key, approver="Head", reason="bench")
    day = period.start
    while day <= min(period.end, dt.date.today()):
        for kind, checks, subjects in (
            ("access-review", REVIEW_CHECKS, staff),
            ("password-audit", PASSWORD_CHECKS, staff),
            ("laptop-audit", LAPTOP_CHECKS, 120),
        ):
            found = [Finding(f"s{n}", rng.choice(checks), "1.3", rng.choice(["high", "medium", "low"]), "x")
                     for n in range(rng.randint(0, 30))]  # fmt: skip
            snapshots.record_snapshot(state, kind, found, subjects, at=f"{day.isoformat()}T12:00:00+00:00")
        day += dt.timedelta(days=1)
    at = f"{period.start.isoformat()}T09:00:00+00:00"
    with state.transaction() as db:  # bulk rows the jobs would have written over the term
        for n in range(25):
            db.execute(
                "INSERT INTO provisioned (username, dn, created_at, run_id, status, role) VALUES (?,?,?,?,?,?)",
                (f"new{n:02d}", f"uid=new{n:02d},ou=Staff", at, "bench", "done", "teacher"),
            )
        for n in range(20):
            leave = period.start + dt.timedelta(days=rng.randint(0, 60))
            done = leave + dt.timedelta(days=rng.randint(0, 3))
            db.execute(
                "INSERT INTO leavers (username, dn, status, leave_on, scheduled_at, scheduled_by, done_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (users[n], f"uid={users[n]},ou=Leavers", "done", leave.isoformat(), at, "bench",
                 f"{done.isoformat()}T08:00:00+00:00"),
            )  # fmt: skip
        for n in range(120):
            tag = f"LT{n:03d}"
            db.execute(
                "INSERT INTO devices (tag, host, os, host_key_type, host_key, fingerprint, enrolled_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (tag, f"127.0.1.{n}", "windows", "ssh-ed25519", "AAAA", "SHA256:x", at),
            )
            for k in range(3):
                when = period.start + dt.timedelta(days=rng.randint(0, 80))
                db.execute(
                    "INSERT INTO checkins (tag, at, kind, ok, facts, findings) VALUES (?,?,?,?,?,?)",
                    (tag, f"{when.isoformat()}T10:00:00+00:00", "audit", int(k > 0), "{}", "[]"),
                )
        for n in range(40):
            db.execute(
                "INSERT INTO tasks (username, kind, text, opened_at, opened_by) VALUES (?,?,?,?,?)",
                (users[n], "revoke", f"remove {users[n]} from SAP", at, "bench"),
            )
    for kind in ("backup-tested", "cyber-training", "risk-assessment", "incident", "response-plan"):
        evidence.record(state, kind=kind, on=period.start.isoformat(), note="bench", file_path=None, file_sha256=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, default=300)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds the report may take (exit 1 if over)")
    args = parser.parse_args()

    from aupctl import config as config_mod
    from aupctl.report import data
    from aupctl.state import State

    rng = random.Random(18)
    today = dt.date.today()
    period = data.period_of(None, None, None, today)
    with tempfile.TemporaryDirectory(prefix="aupctl-bench-report-") as tmp:
        cfg = config_mod.parse(CONFIG, "bench.toml")
        state = State(Path(tmp) / "state.db")
        t0 = time.perf_counter()
        fill(state, cfg, args.staff, period, rng)
        filled = time.perf_counter() - t0
        snaps = state.query("SELECT count(*) AS n FROM snapshots")[0]["n"]
        appr = state.query("SELECT count(*) AS n FROM approvals")[0]["n"]
        now = data.Now(
            staff=[
                {
                    "username": f"user{i:03d}",
                    "name": f"Person {i}",
                    "role": ROLES[i % len(ROLES)],
                    "signed": rng.random() < 0.9,
                }
                for i in range(args.staff)
            ],  # fmt: skip
            privileged={"Domain Admins": 3},
            names={f"user{i:03d}": f"Person {i}" for i in range(args.staff)},
        )
        t0 = time.perf_counter()
        school = data.build_school(cfg, state, now, period, today=today)
        report = data.build([school], period, today=today)
        built = time.perf_counter() - t0
        t1 = time.perf_counter()
        from aupctl.report import render

        page = render.html(report)
        drawn = time.perf_counter() - t1
        total = built + drawn
        out = Path(tmp) / "report.html"
        out.write_text(page, encoding="utf-8")
        pdf_note = "no Chromium: PDF not timed"
        try:
            browser = render.find_browser(None)
        except Exception:  # noqa: BLE001 - the PDF is optional here
            browser = None
        if browser:
            t2 = time.perf_counter()
            render.print_pdf(out, Path(tmp) / "report.pdf", browser=browser, timeout=60)
            pdf_note = f"PDF (headless Chromium, apart) {time.perf_counter() - t2:.2f} s"
        print(
            json.dumps(
                {
                    "staff": args.staff,
                    "period": period.label,
                    "snapshots": snaps,
                    "approvals": appr,
                    "store_filled_s": round(filled, 2),
                    "data_s": round(built, 3),
                    "html_and_charts_s": round(drawn, 3),
                    "report_s": round(total, 3),
                    "html_kb": round(len(page.encode()) / 1024),
                }
            )
        )
        print(f"report of a {args.staff}-staff school with a term of history: {total:.2f} s "
              f"(data {built:.2f} s, HTML and charts {drawn:.2f} s; budget {args.budget:g} s); {pdf_note}")  # fmt: skip
        state.close()
    if total > args.budget:
        sys.exit(1)


if __name__ == "__main__":
    main()
