"""bench/leavers: the July wave (100 leavers from a CSV) beside ldapmodify doing the same directory writes.

Two fresh OpenLDAP sandboxes with the same seeded school, the same 100 people:

- anchor: one `ldapmodify -c` of a hand-written LDIF with the writes a withdrawal makes (lock,
  password, description, out of each group, moved to ou=Leavers): no reads, no snapshot, no audit log;
- aupctl: `withdraw --from-csv` in this process (read the CSV, find everyone, build the plan, apply it
  with the snapshot, journal, audit log and tasks), and the plan alone (a --dry-run's cost).

Run by hand:  python3 bench/leavers.py [--people 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def people(count: int) -> list:
    from aupctl.sandbox import school as hb

    chosen = [p for p in hb.school().staff if not p.leaver][:count]
    if len(chosen) < count:
        sys.exit(f"the sandbox school has only {len(chosen)} staff")
    return chosen


def anchor_ldif(info, chosen, groups: dict[str, list[str]], today: dt.date) -> str:
    base = info.base_dn
    out: list[str] = []
    for p in chosen:
        dn = f"uid={p.username},{p.ou},{base}"
        out += [
            f"dn: {dn}",
            "changetype: modify",
            "replace: pwdAccountLockedTime",
            "pwdAccountLockedTime: 000001010000Z",
            "-",
            "replace: userPassword",
            f"userPassword: {secrets.token_urlsafe(48)}",
            "-",
            "replace: description",
            f"description: Left {today}: July",
            "",
        ]
        for g in groups.get(dn.lower(), []):
            out += [f"dn: {g}", "changetype: modify", "delete: member", f"member: {dn}", ""]
        out += [
            f"dn: {dn}",
            "changetype: modrdn",
            f"newrdn: uid={p.username}",
            "deleteoldrdn: 1",
            f"newsuperior: ou=Leavers,{base}",
            "",
        ]
    return "\n".join(out) + "\n"


def memberships(info) -> dict[str, list[str]]:
    from aupctl import config as config_mod
    from aupctl.directory import open_directory

    cfg = config_mod.load(str(info.config_path))
    d = open_directory(cfg)
    out: dict[str, list[str]] = {}
    for gdn, attrs in d.search(info.base_dn, "(objectClass=groupOfNames)", ["member"]):
        for m in attrs.get("member", []):
            out.setdefault(m.lower(), []).append(gdn)
    d.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=100)
    args = ap.parse_args()
    if not shutil.which("ldapmodify"):
        sys.exit("ldapmodify is not installed (apt-get install ldap-utils)")
    from aupctl import config as config_mod
    from aupctl import sandbox as sb
    from aupctl.directory import open_directory
    from aupctl.leavers.schedule import read_wave, withdraw
    from aupctl.plan import apply
    from aupctl.state import State

    today = dt.date.today()
    chosen = people(args.people)
    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-leavers-"))
    a = sb.start("openldap", tmp / "anchor", detach=False)
    b = sb.start("openldap", tmp / "aupctl", detach=False)
    try:
        ldif = tmp / "wave.ldif"
        ldif.write_text(anchor_ldif(a, chosen, memberships(a), today), encoding="utf-8")
        pw = tmp / "admin.pw"
        pw.touch(mode=0o600)
        pw.write_text(a.admin_password)
        env = {**os.environ, "LDAPTLS_CACERT": str(a.ca_file), "LDAPTLS_REQCERT": "demand"}
        cmd = ["ldapmodify", "-c", "-x", "-H", a.urls[0], "-D", a.admin_dn, "-y", str(pw), "-f", str(ldif)]
        start = time.perf_counter()
        res = subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        anchor = time.perf_counter() - start
        failed = res.stderr.count("ldap_") + res.stderr.count("ldapmodify:")  # one line per refused operation
        if os.environ.get("BENCH_DEBUG"):
            print(res.stderr[:2000])
        moved = sum(
            1
            for _ in open_directory(config_mod.load(str(a.config_path))).search(
                f"ou=Leavers,{a.base_dn}", "(uid=*)", ["uid"]
            )
        )

        csv = tmp / "july.csv"
        csv.write_text(
            "username,leaving_date,reason\n" + "".join(f"{p.username},{today},July\n" for p in chosen), encoding="utf-8"
        )
        cfg = config_mod.load(str(b.config_path))
        start = time.perf_counter()
        d = open_directory(cfg)
        st = State(cfg.state.path)
        plan = withdraw(cfg, d, st, read_wave(str(csv), cfg), today=today)
        planned = time.perf_counter() - start
        apply(plan, st)
        ours = time.perf_counter() - start
        left = withdraw(cfg, d, st, read_wave(str(csv), cfg), today=today)
        assert left.empty, f"left after the wave: {[c.description for c in left.changes]}"
        st.close()
        d.close()
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"July wave of {args.people} leavers, {len(plan.changes)} changes (OpenLDAP sandbox, fsync on)")
    print(f"  {'ldapmodify -c (the writes only)':<44} {anchor:7.2f} s   ({failed} refused, {moved} in ou=Leavers)")
    print(f"  {'aupctl withdraw --from-csv: plan only':<44} {planned:7.2f} s")
    print(f"  {'aupctl withdraw --from-csv: plan + apply':<44} {ours:7.2f} s   ({ours / anchor:.1f}x the anchor)")
    print(f"  peak RSS of this process: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
