"""bench/review: `access review` of 5 systems x 2,000 members, beside ldapsearch, measured in one run.

A fresh OpenLDAP sandbox gets 10,000 more teachers and five system groups of 2,000 members each
(ldapadd as the rootdn). Every member is adopted and has signed, and a handful of problems are
planted so the review has findings. Then, against the same server:

- anchor: `ldapsearch` fetching the same five groups (member) and the same people (the staff and
  leavers OUs, the attributes aupctl reads), paged like aupctl;
- aupctl: the review in this process (config, connect, read, compare), and `aupctl access review`
  as a command (Python start-up included, its bytecode compiled beforehand as `pip install` does;
  also without, when PYTHONDONTWRITEBYTECODE is set);
- for scale: the same searches through aupctl's connection as the review makes them (raw, entries
  decoded by directory/entries.py), and as plain ldap3 makes them (formatted values).

With --schema posixGroup the system groups are posixGroups (members by username in memberUid, RFC
2307), which the review resolves to DNs from the people it reads anyway (the staff OUs are read first);
ldapsearch fetches the groups' memberUid and the same people.

Target: the in-process review within 3x of ldapsearch. Run by hand:

    python3 bench/review.py [--members 2000] [--systems 5] [--schema groupOfNames|posixGroup]
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


def populate(info, systems: int, per_group: int, schema: str = "groupOfNames") -> list[str]:
    """systems x per_group teachers (no passwords) and the system groups, loaded with ldapadd over TLS;
    returns the group cns."""
    base = info.base_dn
    ou = f"ou=Teachers,ou=Staff,{base}"
    lines: list[str] = []
    dns: list[str] = []
    for i in range(systems * per_group):
        uid = f"bench{i:05d}"
        dn = f"uid={uid},{ou}"
        dns.append(dn)
        lines += [
            f"dn: {dn}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: Bench Teacher {i}",
            f"sn: Teacher {i}",
            "givenName: Bench",
            f"displayName: Bench Teacher {i}",
            f"employeeNumber: B{i:05d}",
            "",
        ]
    groups = []
    for g in range(systems):
        cn = f"Bench System {g + 1} Users"
        groups.append(cn)
        lines += [f"dn: cn={cn},ou=Groups,{base}", f"objectClass: {schema}", f"cn: {cn}"]
        these = dns[g * per_group : (g + 1) * per_group]
        if schema == "posixGroup":
            lines.append(f"gidNumber: {6000 + g}")
            lines += [f"memberUid: {m.split(',', 1)[0][4:]}" for m in these]
        else:
            lines += [f"member: {m}" for m in these]
        lines.append("")
    ldif = info.dir / "bench.ldif"
    ldif.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pw = info.dir / "admin.pw"
    pw.touch(mode=0o600)
    pw.write_text(info.admin_password)  # -y reads the file as is (no trailing newline)
    env = {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}
    subprocess.run(
        ["ldapadd", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pw), "-f", str(ldif)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return groups


def write_config(info, groups: list[str], path: Path) -> None:
    keys = [f"bench{g + 1}" for g in range(len(groups))]
    systems = "\n".join(
        f'[systems.{k}]\nname = "Bench system {i + 1}"\ngroup = "{cn}"\napprovers = ["Mrs A Patel (Headteacher)"]\n'
        for i, (k, cn) in enumerate(zip(keys, groups, strict=True))
    )
    path.write_text(
        f"""[school]
name = "Bench School"
aup_version = "2024-09"

[directory]
flavour = "openldap"
url = "{info.urls[0]}"
ca_file = "{info.ca_file}"
bind_dn = "{info.bind_dn}"
bind_password_file = "{info.dir / "bind.pw"}"
base_dn = "{info.base_dn}"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"

[roles.teacher]
ou = "ou=Teachers,ou=Staff"
systems = {keys!r}

[roles.ta]
ou = "ou=Support,ou=Staff"
systems = []

{systems}
[state]
path = "{info.dir / "bench-state.db"}"
""".replace("'", '"')
    )


def prepare_state(cfg) -> None:
    """Everyone adopted and signed (one transaction each), then a few problems planted."""
    from aupctl.access.adopt import adopt_plan
    from aupctl.directory import open_directory
    from aupctl.plan import apply
    from aupctl.state import State, now_iso

    d = open_directory(cfg)
    st = State(cfg.state.path)
    apply(adopt_plan(cfg, d, st, "Mrs A Patel (Headteacher)"), st)
    users = [r["username"] for r in st.query("SELECT DISTINCT username FROM approvals")]
    with st.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO signatures (username, version, signed_on, recorded_by, recorded_at) VALUES (?,?,?,?,?)",
            [(u, "2024-09", "2024-09-02", "bench", now_iso()) for u in users[10:]],  # 10 unsigned
        )
        db.execute("UPDATE approvals SET status='ended' WHERE id IN (SELECT id FROM approvals LIMIT 5 OFFSET 100)")
    st.close()
    d.close()


def ldapsearch_anchor(info, groups: list[str], attrs: list[str], member_attr: str = "member") -> float:
    env = {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}
    pw = info.dir / "bind-nonl.pw"  # ldapsearch -y takes the whole file, a trailing newline included
    pw.touch(mode=0o600)
    pw.write_text((info.dir / "bind.pw").read_text().strip())
    common = ["ldapsearch", "-LLL", "-x", "-H", info.urls[0], "-D", info.bind_dn, "-y", str(pw)]
    person = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
    cmds = [
        [*common, "-s", "base", "-b", f"cn={g},ou=Groups,{info.base_dn}", "(objectClass=*)", member_attr]
        for g in groups
    ]
    for ou in ("ou=Staff", "ou=Leavers"):
        cmds.append([*common, "-E", "pr=1000/noprompt", "-b", f"{ou},{info.base_dn}", person, *attrs])
    start = time.perf_counter()
    size = 0
    for cmd in cmds:
        out = subprocess.run(cmd, env=env, capture_output=True, check=True)
        size += len(out.stdout)
    elapsed = time.perf_counter() - start
    print(f"  ldapsearch: {len(cmds)} searches, {size / 1e6:.1f} MB of LDIF")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=2000)
    ap.add_argument("--systems", type=int, default=5)
    ap.add_argument("--schema", choices=["groupOfNames", "posixGroup"], default="groupOfNames")
    args = ap.parse_args()
    if not shutil.which("ldapsearch"):
        sys.exit("ldapsearch is not installed (apt-get install ldap-utils)")
    from aupctl import sandbox as sb

    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-review-"))
    info = sb.start("openldap", tmp / "sandbox", detach=False)
    try:
        t0 = time.perf_counter()
        groups = populate(info, args.systems, args.members, args.schema)
        cfg_path = tmp / "bench.toml"
        write_config(info, groups, cfg_path)
        from aupctl.config import load

        cfg = load(str(cfg_path))
        prepare_state(cfg)
        print(
            f"setup: {args.systems} {args.schema} systems x {args.members} members in {time.perf_counter() - t0:.1f} s"
        )

        from aupctl.access.review import review
        from aupctl.directory import OpenLDAP, open_directory
        from aupctl.state import State

        member_attr = "memberUid" if args.schema == "posixGroup" else "member"
        anchor = ldapsearch_anchor(info, groups, OpenLDAP.brief_attributes, member_attr)

        start = time.perf_counter()
        cfg = load(str(cfg_path))
        d = open_directory(cfg)
        st = State(cfg.state.path)
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            result = prof.runcall(review, cfg, d, st)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        else:
            result = review(cfg, d, st)
        ours = time.perf_counter() - start
        d.close()
        st.close()
        checked = sum(result.checked.values())

        # where the time goes: the same searches through aupctl's connection, nothing else done; raw as
        # the review reads them, and formatted as plain ldap3 reads them
        def searches(raw: bool) -> float:
            start = time.perf_counter()
            d = open_directory(cfg)
            fl = d.flavour
            for g in groups:
                for _ in d.search(cfg.group_dn(g), "(objectClass=*)", [member_attr], "BASE", raw=raw):
                    pass
            for ou in ("ou=Staff", "ou=Leavers"):
                for _ in d.search(cfg.dn(ou), fl.person_filter, fl.brief_attributes, raw=raw):
                    pass
            d.close()
            return time.perf_counter() - start

        lean, bare = searches(True), searches(False)

        # The command as installed: bytecode compiled (pip does it at install; this shell may forbid writing it
        # beside the source, so it goes to a cache of its own, filled by an untimed first run). Also as this
        # shell runs it, when PYTHONDONTWRITEBYTECODE makes every run compile aupctl's modules again.
        def command(env: dict[str, str]) -> float:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "aupctl.commands", "--format", "json", "access", "review"],
                env={**env, "AUPCTL_CONFIG": str(cfg_path)},
                capture_output=True,
                cwd=ROOT,
            )
            if proc.returncode not in (0, 1):
                sys.exit(f"aupctl access review failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
            return time.perf_counter() - start

        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        command(cached)
        cli = command(cached)
        as_is = command(dict(os.environ)) if os.environ.get("PYTHONDONTWRITEBYTECODE") else None

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"members checked: {checked}, findings: {len(result.findings)}")
        print(f"{'':34}{'seconds':>10}{'x anchor':>10}")
        print(f"{'ldapsearch (same groups + people)':34}{anchor:>10.3f}{1:>10.2f}")
        print(f"{'aupctl searches alone (raw)':34}{lean:>10.3f}{lean / anchor:>10.2f}")
        print(f"{'ldap3 searches alone (formatted)':34}{bare:>10.3f}{bare / anchor:>10.2f}")
        print(f"{'aupctl review (in process)':34}{ours:>10.3f}{ours / anchor:>10.2f}")
        print(f"{'aupctl access review (command)':34}{cli:>10.3f}{cli / anchor:>10.2f}")
        if as_is is not None:
            print(f"{'  not byte-compiled (this shell)':34}{as_is:>10.3f}{as_is / anchor:>10.2f}")
        print(f"peak RSS of this process: {rss:.0f} MiB; target: in-process review within 3x of ldapsearch")
    finally:
        info.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
