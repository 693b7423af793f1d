"""bench/estate: `estate audit --no-probe` of 5,000 computer entries, beside ldapsearch, measured in one run.

A fresh OpenLDAP sandbox gets N `device` entries (ldapadd as the rootdn) with a mix of operating systems
(Windows 10 and 11 releases, Server 2012 R2 and 2022, macOS) in their description and a serial number.
Then, against the same server:

- anchor: `ldapsearch` fetching the same entries and attributes, paged like aupctl (pr=1000);
- aupctl: the audit in this process (config, connect, schema check for LAPS, read, OS table, findings),
  and `aupctl estate audit --no-probe` as a command (Python start-up included, bytecode compiled first).

Each is run --repeat times (default 5), alternating, and the best of each is compared: the machine is
shared, and a single run of either swings by 2x with what else runs.

Target: the in-process audit within 3x of ldapsearch. Run by hand:

    python3 bench/estate.py [--computers 5000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OSES = [
    "Windows 10 Pro 10.0 (19045)",
    "Windows 11 Education 10.0 (22631)",
    "Windows 11 Education 10.0 (26100)",
    "Windows 11 Education 10.0 (26200)",
    "Windows Server 2012 R2 Standard 6.3 (9600)",
    "Windows Server 2022 Standard 10.0 (20348)",
    "macOS 14.3.1",
    "macOS 26.1",
]


def populate(info, n: int) -> None:
    base = info.base_dn
    lines = [f"dn: ou=Devices,{base}", "objectClass: organizationalUnit", "ou: Devices", ""]
    for i in range(n):
        lines += [
            f"dn: cn=HB-PC-{i:05d},ou=Devices,{base}",
            "objectClass: device",
            f"cn: HB-PC-{i:05d}",
            f"description: {OSES[i % len(OSES)]}",
            f"serialNumber: SN{i:08d}",
            "",
        ]
    ldif = info.dir / "estate.ldif"
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


def ldapsearch_anchor(info, attrs: list[str]) -> float:
    env = {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}
    pw = info.dir / "bind-nonl.pw"
    pw.touch(mode=0o600)
    pw.write_text((info.dir / "bind.pw").read_text().strip())
    cmd = [
        "ldapsearch", "-LLL", "-x", "-H", info.urls[0], "-D", info.bind_dn, "-y", str(pw),
        "-E", "pr=1000/noprompt", "-b", info.base_dn, "(&(objectClass=device)(!(objectClass=pwdPolicy)))", *attrs,
    ]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    if not getattr(ldapsearch_anchor, "told", False):
        print(f"  ldapsearch: {out.stdout.count(b'dn: ')} entries, {len(out.stdout) / 1e6:.1f} MB of LDIF")
        ldapsearch_anchor.told = True  # type: ignore[attr-defined]
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--computers", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("ldapsearch"):
        sys.exit("ldapsearch is not installed (apt-get install ldap-utils)")
    from aupctl import sandbox as sb

    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-estate-"))
    info = sb.start("openldap", tmp / "sandbox", detach=False)
    try:
        t0 = time.perf_counter()
        populate(info, args.computers)
        print(f"setup: {args.computers} device entries in {time.perf_counter() - t0:.1f} s")
        from aupctl.config import load
        from aupctl.directory import open_directory
        from aupctl.estate.audit import audit
        from aupctl.estate.computers import attributes
        from aupctl.state import State

        cfg_path = info.config_path
        attrs = attributes(load(str(cfg_path)), [])

        def in_process():
            start = time.perf_counter()
            cfg = load(str(cfg_path))
            d = open_directory(cfg)
            st = State(cfg.state.path)
            report = audit(cfg, d, st)
            elapsed = time.perf_counter() - start
            d.close()
            st.close()
            return elapsed, report

        anchors, runs = [], []
        for _ in range(args.repeat):
            anchors.append(ldapsearch_anchor(info, attrs))
            elapsed, report = in_process()
            runs.append(elapsed)
        anchor, ours = min(anchors), min(runs)

        def command(env: dict[str, str]) -> float:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "aupctl.commands", "--format", "json", "estate", "audit", "--no-probe"],
                env={**env, "AUPCTL_CONFIG": str(cfg_path)},
                capture_output=True,
                cwd=ROOT,
            )
            if proc.returncode not in (0, 1):
                sys.exit(f"aupctl estate audit failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
            return time.perf_counter() - start

        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        command(cached)
        cli = command(cached)

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"computers audited: {len(report.computers)}, findings: {len(report.findings)}")
        print(
            f"best of {args.repeat} runs each (all runs: ldapsearch {', '.join(f'{a:.3f}' for a in anchors)}; "
            f"aupctl {', '.join(f'{r:.3f}' for r in runs)})"
        )
        print(f"{'':34}{'seconds':>10}{'x anchor':>10}")
        print(f"{'ldapsearch (same entries)':34}{anchor:>10.3f}{1:>10.2f}")
        print(f"{'aupctl estate audit (in process)':34}{ours:>10.3f}{ours / anchor:>10.2f}")
        print(f"{'aupctl estate audit (command)':34}{cli:>10.3f}{cli / anchor:>10.2f}")
        print(f"peak RSS of this process: {rss:.0f} MiB; target: in-process audit within 3x of ldapsearch")
    finally:
        info.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
