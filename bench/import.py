"""bench/import: the September intake's speed, beside its anchors, measured in one run.

OpenLDAP (default): 1,000 new staff imported by aupctl (read + check the file, plan, apply: accounts,
passwords, change-at-first-logon, enable, groups, state store, credentials file) into a fresh
sandbox, beside `ldapadd` loading the same entries (pre-hashed passwords) and group memberships from
an LDIF into another fresh sandbox. Target: aupctl within 2x.

Samba AD (--flavour ad, as root, under the AD lock): 200 new staff imported by aupctl beside a bare
ldap3 loop creating the same accounts with passwords (add, unicodePwd, enable) in a fresh sandbox.
The server's password hashing (~21 ms each) is the floor. Target: within 1.3x.

    python3 bench/import.py [--flavour openldap|ad] [--count N]
    flock /tmp/aupctl-ad.lock python3 bench/import.py --flavour ad
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import fcntl
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FIRST = [
    "Amelia",
    "Oliver",
    "Isla",
    "Jack",
    "Zoë",
    "Łukasz",
    "Siobhán",
    "Mohammed",
    "Aarav",
    "Niamh",
    "Søren",
    "Chloé",
    "Dafydd",
    "Freya",
    "Kofi",
    "Beatriz",
    "Tomás",
    "Ingrid",
    "Rhys",
    "Małgorzata",
]
LAST = [
    "Smith",
    "Jones",
    "O'Brien",
    "Smith-Jones",
    "Müller",
    "Nowak",
    "García",
    "Ní Bhriain",
    "Davies",
    "Evans",
    "Kowalski",
    "Andersson",
    "Byrne",
    "Patel",
    "Khan",
    "Jensen",
    "Öztürk",
    "Walsh",
    "Hughes",
    "Ward",
]
ROLES = ["teacher", "ta", "office", "site"]


def write_intake(path: Path, count: int) -> None:
    rng = random.Random(2026)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role", "staff_code", "department", "start_date"])
        for i in range(count):
            w.writerow([rng.choice(FIRST), rng.choice(LAST), rng.choice(ROLES), f"BN{i:05d}", "Bench", "2026-09-01"])


def ssha(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def ldif_value(name: str, value: str) -> str:
    if value and (value[0] in " :<" or value[-1] == " " or not value.isascii() or "\n" in value):
        return f"{name}:: {base64.b64encode(value.encode()).decode()}"
    return f"{name}: {value}"


def build_plan(cfg_path: Path, intake_csv: Path, creds: Path | None):
    from aupctl import config
    from aupctl.directory import open_directory
    from aupctl.staff import intake
    from aupctl.state import State

    cfg = config.load(str(cfg_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    people = intake.read_intake(cfg, intake_csv)
    plan = intake.build(cfg, d, st, people, credentials_out=str(creds) if creds else None, source=str(intake_csv))
    return cfg, d, st, plan


def run_aupctl(cfg_path: Path, intake_csv: Path, creds: Path) -> float:
    from aupctl.plan import apply

    t0 = time.perf_counter()
    cfg, d, st, plan = build_plan(cfg_path, intake_csv, creds)
    plan.check_ready()
    apply(plan.plan, st)
    plan.close()
    elapsed = time.perf_counter() - t0
    d.close()
    made = sum(1 for e in plan.entries if e.action == "create")
    assert made == len(plan.entries), f"only {made} of {len(plan.entries)} were new"
    return elapsed


def run_ldapadd(info, entries, tmp: Path) -> float:
    """The same entries (passwords pre-hashed, as an LDIF would carry them) and memberships, by ldapadd."""
    lines: list[str] = []
    members: dict[str, list[str]] = {}
    for e in entries:
        classes, attrs = e.new_entry
        lines.append(ldif_value("dn", e.dn))
        lines += [f"objectClass: {c}" for c in classes]
        for k, v in attrs.items():
            if k == "pwdAccountLockedTime":
                continue  # ldapadd loads them ready to use
            for one in v if isinstance(v, list) else [v]:
                lines.append(ldif_value(k, str(one)))
        lines.append(f"userPassword: {ssha('Bench-' + e.username + '-Pass-2026')}")
        lines.append("")
        for g in e.groups:
            members.setdefault(g, []).append(e.dn)
    for g, dns in members.items():
        lines += [ldif_value("dn", g), "changetype: modify", "add: member"] + [ldif_value("member", m) for m in dns]
        lines += ["-", ""]
    ldif = tmp / "bench.ldif"
    ldif.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pw = tmp / "admin.pw"
    pw.write_text(info.admin_password)
    pw.chmod(0o600)
    env = dict(os.environ, LDAPTLS_CACERT=str(info.ca_file), LDAPTLS_REQCERT="demand")
    argv = ["ldapmodify", "-a", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pw), "-f", str(ldif)]
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"ldapadd failed: {out.stderr.strip()[-500:]}")
    return elapsed


def run_ldap3_adds(info, entries) -> float:
    """For scale on OpenLDAP: the same entries (pre-hashed passwords) and memberships by a bare ldap3 loop,
    one add per person and one modify per group: what ldap3 itself costs, with nothing else done."""
    import ldap3

    conn = info.connect()
    members: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for e in entries:
        classes, attrs = e.new_entry
        attrs = {k: v for k, v in attrs.items() if k != "pwdAccountLockedTime"}
        attrs["userPassword"] = ssha("Bench-" + e.username + "-Pass-2026")
        if not conn.add(e.dn, classes, attrs):
            sys.exit(f"ldap3 add failed: {conn.result}")
        for g in e.groups:
            members.setdefault(g, []).append(e.dn)
    for g, dns in members.items():
        conn.modify(g, {"member": [(ldap3.MODIFY_ADD, dns)]})
    elapsed = time.perf_counter() - t0
    conn.unbind()
    return elapsed


def run_ldap3_loop(info, entries) -> float:
    """A bare ldap3 loop: add each account disabled, set its password over TLS, enable it."""
    import ldap3

    conn = info.connect()
    t0 = time.perf_counter()
    for e in entries:
        classes, attrs = e.new_entry
        if not conn.add(e.dn, classes, attrs):
            sys.exit(f"ldap3 add failed: {conn.result}")
        pw = f'"Bench-{e.username}-Pass-2026"'.encode("utf-16-le")
        if not conn.modify(e.dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [pw])]}):
            sys.exit(f"ldap3 password failed: {conn.result}")
        conn.modify(e.dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
    elapsed = time.perf_counter() - t0
    conn.unbind()
    return elapsed


@contextlib.contextmanager
def ad_slot(flavour: str) -> Iterator[None]:
    """AD's ports are fixed: hold the same lock as the test fixtures (and wait for any other DC to go)."""
    if flavour != "ad":
        yield
        return
    from aupctl import sandbox

    with open("/tmp/aupctl-ad-fixture.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            while sandbox.ad_ports_busy():
                time.sleep(0.2)
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flavour", choices=["openldap", "ad"], default="openldap")
    ap.add_argument("--count", type=int, default=None, help="new staff (default 1,000 OpenLDAP, 200 AD)")
    args = ap.parse_args()
    count = args.count or (1000 if args.flavour == "openldap" else 200)
    target = 2.0 if args.flavour == "openldap" else 1.3

    from aupctl import sandbox

    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-import-"))
    intake_csv = tmp / "intake.csv"
    write_intake(intake_csv, count)
    try:
        with ad_slot(args.flavour):
            # The anchor first, in its own fresh sandbox; the entries come from aupctl's own (dry) plan.
            a = sandbox.start(args.flavour, tmp / "anchor", detach=False)
            try:
                _, d, _, dry = build_plan(a.config_path, intake_csv, None)
                d.close()
                if args.flavour == "openldap":
                    anchor_name = "ldapadd (LDIF: entries + memberships)"
                    anchor = run_ldapadd(a, dry.entries, tmp)
                else:
                    anchor_name = "bare ldap3 loop (add, password, enable)"
                    anchor = run_ldap3_loop(a, dry.entries)
            finally:
                a.stop()
            floor = None
            if args.flavour == "openldap":
                c = sandbox.start(args.flavour, tmp / "ldap3", detach=False)
                try:
                    floor = run_ldap3_adds(c, dry.entries)
                finally:
                    c.stop()
            b = sandbox.start(args.flavour, tmp / "aupctl", detach=False)
            try:
                ru0 = resource.getrusage(resource.RUSAGE_SELF)
                ours = run_aupctl(b.config_path, intake_csv, tmp / "credentials.csv")
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
            finally:
                b.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    ratio = ours / anchor
    print(f"import {count} new staff into {args.flavour}")
    print(f"  {'aupctl staff import':<40} {ours:7.2f} s  ({count / ours:6.0f}/s, client CPU {cpu:.2f} s)")
    print(f"  {anchor_name:<40} {anchor:7.2f} s  ({count / anchor:6.0f}/s)")
    print(f"  {'ratio':<40} {ratio:7.2f}x  (target {target}x: {'met' if ratio <= target else 'NOT met'})")
    if floor is not None:
        print(f"  for scale: {'bare ldap3 adds + memberships':<29} {floor:7.2f} s  ({floor / anchor:.2f}x ldapadd)")


if __name__ == "__main__":
    main()
