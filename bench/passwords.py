"""bench/passwords: `password audit` of 10,000 accounts on a fresh OpenLDAP sandbox, beside its anchors.

    python3 bench/passwords.py [--accounts 10000] [--workers N]

One run prints, for the same attributes of the same 10,000 people:
  - ldapsearch -x -LLL -E pr=1000/noprompt (C, the floor),
  - a bare ldap3 paged search (the anchor: target audit --no-hash-check within 1.5x of it),
  - the audit's directory checks (`--no-hash-check`), with the peak memory (ru_maxrss) of its process
    (target under 150 MB),
  - the full audit with the deny-list test of every {SSHA} hash on all cores: its hash rate, its time
    (target within a minute), and how many deny-list candidates per account that allows.
Each measured run is its own Python process, so ru_maxrss is that job's own peak.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from aupctl import sandbox  # noqa: E402
from aupctl.sandbox.school import OPENLDAP_BASE_DN  # noqa: E402

WEAK = ["Welcome2024", "Password123", "Hollybank2024!", "letmein2019", "Summer2025!"]


def ldif(n: int) -> str:
    """n people under ou=Teachers,ou=Staff: {SSHA} passwords, one in 500 on the deny list."""
    out = []
    for i in range(n):
        uid = f"bench{i:05d}"
        pw = WEAK[i % len(WEAK)] if i % 500 == 0 else f"Quiet-Lantern-{i:05d}-Orbit-Cactus"
        salt = os.urandom(8)
        ssha = "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()
        out.append(
            f"dn: uid={uid},ou=Teachers,ou=Staff,{OPENLDAP_BASE_DN}\n"
            "objectClass: inetOrgPerson\n"
            f"uid: {uid}\ncn: Bench Person {i}\ngivenName: Bench\nsn: Person{i}\n"
            f"displayName: Bench Person {i}\nmail: {uid}@hollybank.test\nemployeeNumber: B{i:05d}\n"
            f"userPassword: {ssha}\n"
        )
    return "\n".join(out)


def child(code: str, env: dict[str, str]) -> dict:
    """Run one measured job in its own process; it prints a JSON line with its figures."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"measured job failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


PRELUDE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from aupctl.config import load
cfg = load({config!r})
"""

BARE_LDAP3 = """
import ssl, ldap3
from aupctl.directory import OpenLDAP
fl = OpenLDAP(cfg)
t0 = time.perf_counter()
tls = ldap3.Tls(ca_certs_file=cfg.directory.ca_file, validate=ssl.CERT_REQUIRED)
server = ldap3.Server(cfg.directory.url[0], use_ssl=True, tls=tls, get_info=ldap3.NONE)
conn = ldap3.Connection(server, cfg.directory.bind_dn, {password!r}, auto_bind=True)
n = 0
for item in conn.extend.standard.paged_search(cfg.directory.base_dn, fl.person_filter,
        attributes=fl.password_attributes(), paged_size=1000, generator=True):
    if item.get("type") == "searchResEntry":
        n += 1
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "entries": n, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""

AUDIT = """
from aupctl.directory import open_directory
from aupctl.passwords.audit import audit
t0 = time.perf_counter()
d = open_directory(cfg)
r = audit(cfg, d, hash_check={hash_check}, workers={workers})
dt = time.perf_counter() - t0
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"seconds": dt, "accounts": r.accounts, "findings": len(r.findings),
    "guessed": sum(1 for f in r.findings if f.check == "easily-guessed-password"),
    "hashes_tested": r.hashes_tested, "computations": r.hash_computations, "common": r.candidates_common,
    "maxrss_kb": own, "children_maxrss_kb": kids}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=None, help="hash-test processes (default: every core)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="aupctl-bench-pw-") as tmp:
        info = sandbox.start("openldap", Path(tmp) / "sb", detach=False, seed=False)
        try:
            run(info, Path(tmp), args)
        finally:
            info.stop()


def run(info: sandbox.SandboxInfo, tmp: Path, args: argparse.Namespace) -> None:
    from aupctl.config import load
    from aupctl.directory import OpenLDAP
    from aupctl.passwords.denylist import personal_candidates

    cfg = load(str(info.config_path))
    env = {"LDAPTLS_CACERT": str(info.ca_file), "AUPCTL_BIND_PASSWORD": info.bind_password}
    pwfile = tmp / "admin.pw"
    pwfile.write_text(info.admin_password)
    pwfile.chmod(0o600)
    svcfile = tmp / "svc.pw"
    svcfile.write_text(info.bind_password)
    svcfile.chmod(0o600)
    data = tmp / "people.ldif"
    data.write_text(ldif(args.accounts))
    t0 = time.perf_counter()
    subprocess.run(
        ["ldapadd", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pwfile), "-f", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    print(f"loaded {args.accounts} accounts with ldapadd in {time.perf_counter() - t0:.2f} s")

    fl = OpenLDAP(cfg)
    t0 = time.perf_counter()
    out = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-E", "pr=1000/noprompt", "-H", info.urls[0], "-D", info.bind_dn,
         "-y", str(svcfile), "-b", cfg.directory.base_dn, fl.person_filter, *fl.password_attributes()],
        check=True, capture_output=True, env={**os.environ, **env},
    )  # fmt: skip
    t_ldapsearch = time.perf_counter() - t0
    n_ldapsearch = out.stdout.count(b"\ndn: ") + out.stdout.startswith(b"dn: ")

    prelude = PRELUDE.format(root=str(HERE.parent), config=str(info.config_path))
    bare = child(prelude + BARE_LDAP3.format(password=info.bind_password), env)
    quick = child(prelude + AUDIT.format(hash_check=False, workers=args.workers), env)
    full = child(prelude + AUDIT.format(hash_check=True, workers=args.workers), env)

    ratio = quick["seconds"] / bare["seconds"]
    mem_mb = quick["maxrss_kb"] / 1024
    print()
    print(f"{'job':<44} {'seconds':>8} {'entries':>8} {'peak MB':>8}")
    print(f"{'ldapsearch -E pr=1000/noprompt':<44} {t_ldapsearch:>8.3f} {n_ldapsearch:>8}")
    print(f"{'bare ldap3 paged search (anchor)':<44} {bare['seconds']:>8.3f} {bare['entries']:>8} "
          f"{bare['maxrss_kb'] / 1024:>8.1f}")  # fmt: skip
    print(f"{'aupctl password audit --no-hash-check':<44} {quick['seconds']:>8.3f} {quick['accounts']:>8} "
          f"{mem_mb:>8.1f}")  # fmt: skip
    print(f"{'aupctl password audit (hash check)':<44} {full['seconds']:>8.3f} {full['accounts']:>8} "
          f"{full['maxrss_kb'] / 1024:>8.1f}  (workers' peak {full['children_maxrss_kb'] / 1024:.1f})")  # fmt: skip
    print()
    print(f"audit --no-hash-check / bare ldap3: {ratio:.2f}x (target <= 1.5x): {'OK' if ratio <= 1.5 else 'MISSED'}")
    print(f"audit --no-hash-check peak memory: {mem_mb:.1f} MB (target < 150 MB): {'OK' if mem_mb < 150 else 'MISSED'}")
    hash_seconds = max(full["seconds"] - quick["seconds"], 1e-9)
    rate = full["computations"] / hash_seconds
    personal = len(personal_candidates("Bench", "Person1234", "bench01234", __import__("datetime").date.today()))
    per_account = full["common"] + personal
    allowed = int(rate * max(60 - quick["seconds"], 0) / max(full["accounts"], 1))
    print(f"hash test: {full['computations']:,} hash computations in {hash_seconds:.1f} s = {rate:,.0f}/s "
          f"on {args.workers or len(os.sched_getaffinity(0))} process(es)")  # fmt: skip
    print(f"deny-list candidates per account: {full['common']:,} common + ~{personal:,} from their own names "
          f"= {per_account:,}; a minute for {full['accounts']:,} accounts allows ~{allowed:,} per account at this rate")  # fmt: skip
    print(f"full audit with hash test: {full['seconds']:.1f} s (target within 60 s): "
          f"{'OK' if full['seconds'] <= 60 else 'MISSED'}; guessed {full['guessed']} planted weak passwords "
          f"(expected {len(range(0, args.accounts, 500))})")  # fmt: skip


if __name__ == "__main__":
    main()
