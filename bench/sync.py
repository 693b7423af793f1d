"""bench/sync: `staff sync` of a 5,000-person MIS export against a 5,000-person directory, 2 % changed,
beside ldapsearch fetching the same people, measured in one run (Python timers only).

A fresh OpenLDAP sandbox gets N more teachers (ldapadd as the rootdn), each holding an MIS id
(employeeType) as an earlier sync leaves them. The export (SIMS profile) holds all N with 2 % changed:
name changes (a marriage), teachers who become TAs, end dates next month, and new joiners. Then:

- anchor: `ldapsearch` fetching the same people (the person filter, the attributes sync reads), paged;
- aupctl: read_export + plan_sync (the plan a --dry-run shows), then plan.apply; then the same export
  again (must be nothing to do).

The anchor and the plan are each the best of RUNS (5) runs (the machine is shared; a plan changes nothing, so it
can be repeated); apply runs once. Target: the plan within 3x of ldapsearch. Run by hand:  python3 bench/sync.py [--people 5000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5  # the anchor and the plan: the best of this many (the machine is shared)
sys.path.insert(0, str(ROOT))


def populate(info, n: int) -> None:
    ou = f"ou=Teachers,ou=Staff,{info.base_dn}"
    lines: list[str] = []
    for i in range(n):
        uid = f"bench{i:05d}"
        lines += [
            f"dn: uid={uid},{ou}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: Bench Teacher{i}",
            f"sn: Teacher{i}",
            "givenName: Bench",
            f"displayName: Bench Teacher{i}",
            f"employeeNumber: B{i:05d}",
            f"employeeType: M{i:05d}",
            f"mail: {uid}@bench.test",
            "",
        ]
    ldif = info.dir / "bench.ldif"
    ldif.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pw = info.dir / "admin.pw"
    pw.touch(mode=0o600)
    pw.write_text(info.admin_password)
    env = {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}
    subprocess.run(
        ["ldapadd", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pw), "-f", str(ldif)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def write_export(path: Path, n: int, changed: int) -> dict[str, int]:
    from aupctl.staff.sync import PROFILES

    h = PROFILES["sims"]
    today = dt.date.today()
    kinds = {"marriage": 0, "role": 0, "leaver": 0, "joiner": 0}
    per = max(changed // 4, 1)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(h.values()))
        w.writeheader()
        for i in range(n):
            r = {
                h["person_id"]: f"M{i:05d}",
                h["legal_first"]: "Bench",
                h["legal_last"]: f"Teacher{i}",
                h["staff_code"]: f"B{i:05d}",
                h["email"]: f"bench{i:05d}@bench.test",
                h["role"]: "teacher",
            }
            if i < per:
                r[h["legal_last"]] = f"Married{i}"
                r[h["email"]] = f"bench{i:05d}.married@bench.test"
                kinds["marriage"] += 1
            elif i < 2 * per:
                r[h["role"]] = "ta"
                kinds["role"] += 1
            elif i < 3 * per:
                r[h["end_date"]] = (today + dt.timedelta(days=30)).isoformat()
                kinds["leaver"] += 1
            w.writerow(r)
        for j in range(changed - 3 * per):
            w.writerow(
                {
                    h["person_id"]: f"J{j:05d}",
                    h["legal_first"]: "Newly",
                    h["legal_last"]: f"Joined{j}",
                    h["role"]: "teacher",
                    h["start_date"]: today.isoformat(),
                }
            )
            kinds["joiner"] += 1
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--changed", type=float, default=0.02)
    args = ap.parse_args()
    if not shutil.which("ldapsearch"):
        sys.exit("ldapsearch is not installed (apt-get install ldap-utils)")
    from aupctl import config as config_mod
    from aupctl import sandbox as sb
    from aupctl.directory import open_directory
    from aupctl.plan import apply
    from aupctl.staff.sync import plan_sync, read_export
    from aupctl.staff.sync.engine import id_attribute
    from aupctl.state import State

    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-sync-"))
    info = sb.start("openldap", tmp / "sandbox", detach=False)
    try:
        populate(info, args.people)
        with info.config_path.open("a", encoding="utf-8") as fh:
            fh.write('\n[mis]\nmax_leavers = 0.10\nignore = ["*"]\n')
        export = tmp / "staff.csv"
        kinds = write_export(export, args.people, int(args.people * args.changed))
        cfg = config_mod.load(str(info.config_path))
        d = open_directory(cfg)
        fl = d.flavour
        attrs = [*fl.user_attributes, id_attribute(cfg)]
        env = {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}
        bind_pw = tmp / "bind.pw"  # -y reads the file as is: without the trailing newline
        bind_pw.touch(mode=0o600)
        bind_pw.write_text(info.bind_password)
        cmd = [
            "ldapsearch",
            "-x",
            "-LLL",
            "-H",
            info.urls[0],
            "-D",
            info.bind_dn,
            "-y",
            str(bind_pw),
            "-b",
            info.base_dn,
            "-E",
            "pr=1000/noprompt",
            fl.person_filter,
            *attrs,
        ]
        anchor = float("inf")
        for _ in range(RUNS):  # best of RUNS, as for the plan below: the machine is shared, so take the quietest
            start = time.perf_counter()
            res = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
            anchor = min(anchor, time.perf_counter() - start)
        fetched = res.stdout.count("\ndn: ") + res.stdout.startswith("dn: ")
        st = State(cfg.state.path)
        today = dt.date.today()
        creds = tmp / "creds.csv"
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            cProfile.runctx(
                "plan_sync(cfg, d, st, read_export(cfg, str(export)), today=today)",
                globals(),
                locals(),
                str(tmp / "prof"),
            )
            pstats.Stats(str(tmp / "prof")).sort_stats("cumulative").print_stats(25)
        planned = float("inf")
        for _ in range(RUNS - 1):  # a plan changes nothing: the quietest of RUNS (the last one is applied)
            start = time.perf_counter()
            plan_sync(cfg, d, st, read_export(cfg, str(export)), today=today).close()
            planned = min(planned, time.perf_counter() - start)
        start = time.perf_counter()
        s = plan_sync(cfg, d, st, read_export(cfg, str(export)), today=today, credentials_out=str(creds))
        planned = min(planned, time.perf_counter() - start)
        mid = time.perf_counter()
        s.intake.check_ready()
        apply(s.plan, st)
        s.close()
        applied = time.perf_counter() - mid
        start = time.perf_counter()
        again = plan_sync(cfg, d, st, read_export(cfg, str(export)), today=today)
        rerun = time.perf_counter() - start
        assert again.plan.empty, [c.description for c in again.plan.changes][:5]
        again.close()
        st.close()
        d.close()
    finally:
        info.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"staff sync: {args.people} in the export and the directory, changed: {kinds} (OpenLDAP sandbox)")
    print(f"  {'ldapsearch, the same people (paged)':<40} {anchor:7.2f} s   ({fetched} entries)")
    print(f"  {'aupctl: read + plan (a --dry-run)':<40} {planned:7.2f} s   ({planned / anchor:.1f}x the anchor)")
    print(
        f"  {'aupctl: read + plan + apply':<40} {planned + applied:7.2f} s   "
        f"({len(s.plan.changes)} changes; {(planned + applied) / anchor:.1f}x the anchor)"
    )
    print(f"  {'aupctl: the same export again':<40} {rerun:7.2f} s   (nothing to do)")


if __name__ == "__main__":
    main()
