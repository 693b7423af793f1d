"""bench/discover: `aupctl config discover` on a 10,000-person directory, beside ldapsearch, in one run.

A fresh OpenLDAP sandbox gets 10,000 more people (spread over four staff OUs, a pupils OU and a flat
ou=People, so the guessing has work to do) and a few large groups (ldapadd as the rootdn). Then, against
the same server:

- anchor: `ldapsearch` making the same searches discover makes (OUs, people with their username and
  mail, groups with their members, the password policy), paged like aupctl;
- aupctl: discover() in this process (connect, read, guess, build the file), best of three.

Target: under 5 s. Run by hand (Python timers only):

    python3 bench/discover.py [--people 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUS = ["ou=Teachers,ou=Staff", "ou=Support,ou=Staff", "ou=Office,ou=Staff", "ou=Site,ou=Staff"]


def populate(info, people: int) -> None:
    base = info.base_dn
    lines: list[str] = ["dn: ou=Pupils," + base, "objectClass: organizationalUnit", "ou: Pupils", ""]
    by_ou: dict[str, list[str]] = {}
    for i in range(people):
        ou = "ou=Pupils" if i % 5 == 4 else OUS[i % 4]
        uid = f"bench{i:05d}"
        dn = f"uid={uid},{ou},{base}"
        by_ou.setdefault(ou, []).append(dn)
        lines += [
            f"dn: {dn}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: Bench Person {i}",
            f"sn: Person {i}",
            "givenName: Bench",
            f"mail: {uid}@hollybank.test",
            "",
        ]
    staff = [dn for ou in OUS for dn in by_ou.get(ou, [])]
    for cn, members in (
        ("Bench All Staff", staff),
        ("Bench Teachers", by_ou.get(OUS[0], [])),
        ("Bench SIMS Users", staff[::3]),
        ("Bench Finance", staff[::50]),
    ):
        lines += [f"dn: cn={cn},ou=Groups,{base}", "objectClass: groupOfNames", f"cn: {cn}"]
        lines += [f"member: {m}" for m in members] + [""]
    ldif = info.dir / "bench.ldif"
    ldif.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pw = info.dir / "admin.pw"
    pw.touch(mode=0o600)
    pw.write_text(info.admin_password)
    subprocess.run(
        ["ldapadd", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pw), "-f", str(ldif)],
        env=_tls_env(info),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _tls_env(info) -> dict[str, str]:
    return {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}


def anchor(info) -> float:
    """ldapsearch making discover's searches, paged at 1,000 like aupctl."""
    from aupctl.discover import CONTAINERS, GROUPS, PEOPLE

    pw = info.dir / "bind.pw.raw"
    pw.touch(mode=0o600)
    pw.write_text(info.bind_password)
    common = [
        "ldapsearch",
        "-x",
        "-LLL",
        "-E",
        "pr=1000/noprompt",
        "-H",
        info.urls[0],
        "-D",
        info.bind_dn,
        "-y",
        str(pw),
    ]
    searches = [
        ["-b", "", "-s", "base", "(objectClass=*)", "namingContexts", "supportedCapabilities"],
        ["-b", info.base_dn, CONTAINERS, "1.1"],
        ["-b", info.base_dn, PEOPLE["openldap"], "uid", "mail", "objectClass"],
        ["-b", info.base_dn, GROUPS, "objectClass", "member", "uniqueMember", "memberUid"],
        ["-b", info.base_dn, "(objectClass=pwdPolicy)", "pwdMinLength", "pwdMaxAge", "pwdMaxFailure", "pwdLockout"],
    ]
    t0 = time.perf_counter()
    for s in searches:
        subprocess.run(common + s, env=_tls_env(info), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=10_000)
    args = ap.parse_args()

    from aupctl import sandbox as sb
    from aupctl.discover import discover

    with tempfile.TemporaryDirectory() as tmp:
        info = sb.start("openldap", Path(tmp) / "sandbox", detach=False)
        try:
            t0 = time.perf_counter()
            populate(info, args.people)
            print(f"seeded {args.people:,} people with ldapadd in {time.perf_counter() - t0:.2f} s")
            ldapsearch = min(anchor(info) for _ in range(3))
            runs = []
            found = None
            for _ in range(3):
                t0 = time.perf_counter()
                found = discover(info.urls[0], info.bind_dn, info.bind_password, ca_file=str(info.ca_file))
                runs.append(time.perf_counter() - t0)
            assert found is not None
            best = min(runs)
            print(f"ldapsearch, the same 5 searches (5 processes):  {ldapsearch:.2f} s")
            print(f"aupctl config discover (in process, best of 3):  {best:.2f} s   ({best / ldapsearch:.1f}x)")
            print(f"target: under 5 s -> {'met' if best < 5 else 'NOT met'}")
            staff = next(line for line in found.text.splitlines() if line.startswith("staff_ou"))
            print(f"it guessed: {staff}; {len(found.guessed)} guesses, {len(found.decide)} decisions")
        finally:
            info.stop()


if __name__ == "__main__":
    main()
