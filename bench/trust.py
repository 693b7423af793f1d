"""bench/trust: a trust-wide `access review --all-schools` of 20 schools x 300 staff, beside ldapsearch.

One fresh OpenLDAP sandbox holds the trust: an OU per school (`ou=School NN`, each with its own Staff
(Teachers, Support, Office), Leavers and Groups OUs), 300 staff per school (6,000 people), three leavers,
and four system groups per school with their members (SIMS, Target Tracker, RAISE, Schoolcomms),
loaded with ldapadd as the rootdn. The config is a trust's: trust-wide defaults (directory, roles,
systems) and 20 `[schools.sNN]` tables, each with only its `[schools.sNN.directory] base_dn`. Each
school's store is a SQLite file (the default: `[state] path` with `-sNN`), or with --postgresql a schema
per school in a throwaway PostgreSQL cluster (`[state] url`, TLS). Before timing, every member is
adopted and has signed in each school's store, and problems are planted per school (a leaver still in
SIMS, a TA in RAISE, three unsigned, two approvals ended) so the review has findings.

Timed, against the same server and stores, best of --runs (medians printed):

- anchor: `ldapsearch` fetching the same groups and people for all 20 schools, one process per school
  (one TLS connection and bind each, as aupctl opens one connection per school): its searches are
  given with -f, one line each: the school's four groups (member) and its people (the staff and leavers
  OUs' entries, the attributes aupctl reads), paged like aupctl. Also, for scale, one process per search
  (as bench/review.py's anchor).
- aupctl in process: `aupctl --format json access review --all-schools` through the click command
  (CliRunner; config, every school's store and directory, the review, each school's snapshot kept);
- aupctl as a command (a new Python process each run, start-up included; bytecode compiled first, as
  `pip install` does).

Target: aupctl within 3x of the ldapsearch anchor. Run by hand:

    python3 bench/trust.py [--schools 20] [--staff 300] [--runs 3] [--postgresql]

BENCH_PROFILE=1 prints a cProfile of one in-process run (BENCH_PROFILE=FILE.prof also keeps it in FILE.prof).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPROVER = "Mrs A Patel (Headteacher)"
# system key -> (name, group cn); roles: key -> (OU under Staff, systems)
SYSTEMS = {
    "sims": ("SIMS", "SIMS Users"),
    "target_tracker": ("Target Tracker", "Target Tracker Users"),
    "raise": ("RAISE Online", "RAISE Online Users"),
    "schoolcomms": ("Schoolcomms", "Schoolcomms Users"),
}
ROLES = {
    "teacher": ("Teachers", ["sims", "target_tracker", "raise"]),
    "ta": ("Support", ["target_tracker"]),
    "office": ("Office", ["sims", "schoolcomms"]),
}


def school_ou(n: int) -> str:
    return f"ou=School {n:02d}"


def school_ldif(base: str, n: int, staff: int) -> list[str]:
    """One school's OUs, staff (2/3 teachers, the rest TAs and office), leavers and system groups."""
    sb = f"{school_ou(n)},{base}"
    lines: list[str] = []

    def entry(dn: str, *attrs: str) -> None:
        lines.extend([f"dn: {dn}", *attrs, ""])

    entry(sb, "objectClass: organizationalUnit", f"ou: School {n:02d}")
    for ou in ("ou=Staff", "ou=Leavers", "ou=Groups"):
        entry(f"{ou},{sb}", "objectClass: organizationalUnit", f"ou: {ou[3:]}")
    for ou, _ in ROLES.values():
        entry(f"ou={ou},ou=Staff,{sb}", "objectClass: organizationalUnit", f"ou: {ou}")
    people: dict[str, list[str]] = {role: [] for role in ROLES}

    def person(uid: str, i: int, parent: str) -> str:
        dn = f"uid={uid},{parent}"
        entry(
            dn,
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: Staff {n:02d}-{i}",
            f"sn: Member {i}",
            "givenName: Staff",
            f"displayName: Staff {n:02d}-{i}",
            f"employeeNumber: S{n:02d}{i:04d}",
            f"mail: {uid}@trust.test",
        )
        return dn

    teachers, tas = staff * 2 // 3, staff * 9 // 10
    for i in range(staff):
        role = "teacher" if i < teachers else "ta" if i < tas else "office"
        people[role].append(person(f"s{n:02d}u{i:04d}", i, f"ou={ROLES[role][0]},ou=Staff,{sb}"))
    leavers = [person(f"s{n:02d}x{j}", 9000 + j, f"ou=Leavers,{sb}") for j in range(3)]
    members = {
        "sims": people["teacher"] + people["office"] + leavers[:1],  # planted: a leaver still in SIMS
        "target_tracker": people["teacher"] + people["ta"],
        "raise": people["teacher"] + people["ta"][:1],  # planted: a TA, whose role is not eligible
        "schoolcomms": people["office"],
    }
    for key, (_, cn) in SYSTEMS.items():
        entry(
            f"cn={cn},ou=Groups,{sb}", "objectClass: groupOfNames", f"cn: {cn}", *[f"member: {m}" for m in members[key]]
        )
    return lines


def populate(info, schools: int, staff: int) -> None:
    lines: list[str] = []
    for n in range(1, schools + 1):
        lines += school_ldif(info.base_dn, n, staff)
    ldif = info.dir / "trust.ldif"
    ldif.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pw = info.dir / "admin.pw"
    pw.touch(mode=0o600)
    pw.write_text(info.admin_password)  # -y reads the file as is (no trailing newline)
    subprocess.run(
        ["ldapadd", "-x", "-H", info.urls[0], "-D", info.admin_dn, "-y", str(pw), "-f", str(ldif)],
        env=ldap_env(info),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ldap_env(info) -> dict[str, str]:
    return {**os.environ, "LDAPTLS_CACERT": str(info.ca_file), "LDAPTLS_REQCERT": "demand"}


def write_config(info, schools: int, path: Path, work: Path, pg_url: str | None, pg_ca: str | None) -> None:
    roles = "\n".join(
        f'[roles.{k}]\nou = "ou={ou},ou=Staff"\nsystems = {systems!r}\n'.replace("'", '"')
        for k, (ou, systems) in ROLES.items()
    )
    systems = "\n".join(
        f'[systems.{k}]\nname = "{name}"\ngroup = "{cn}"\napprovers = ["{APPROVER}"]\n'
        for k, (name, cn) in SYSTEMS.items()
    )
    state = f'url = "{pg_url}"\nca_file = "{pg_ca}"' if pg_url else f'path = "{work / "state.db"}"'
    tables = "\n".join(
        f'[schools.s{n:02d}]\nname = "School {n:02d}"\n[schools.s{n:02d}.directory]\n'
        f'base_dn = "{school_ou(n)},{info.base_dn}"\n'
        for n in range(1, schools + 1)
    )
    path.write_text(
        f"""[school]
name = "Bench Trust"
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
timeout = 10

{roles}
{systems}
[state]
{state}
checkpoints = "{work / "checkpoints.jsonl"}"
audit_key_file = "{work / "audit.key"}"

{tables}"""
    )


def prepare_state(cfg_path: Path) -> int:
    """In each school's store: everyone adopted and signed (bar three), two approvals ended. Returns the
    number of approvals recorded across the trust."""
    from aupctl.access.adopt import adopt_plan
    from aupctl.config import load_trust
    from aupctl.directory import open_directory
    from aupctl.plan import apply
    from aupctl.schools import store_for
    from aupctl.state import now_iso

    trust = load_trust(str(cfg_path))
    total = 0
    for key in trust.keys:
        cfg = trust.config(key)
        d = open_directory(cfg)
        st = store_for(cfg)
        apply(adopt_plan(cfg, d, st, APPROVER), st)
        users = sorted({r["username"] for r in st.query("SELECT username FROM approvals")})
        with st.transaction() as db:
            db.executemany(
                "INSERT INTO signatures (username, version, signed_on, recorded_by, recorded_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(username, version) DO NOTHING",
                [(u, "2024-09", "2024-09-02", "bench", now_iso()) for u in users[3:]],  # three unsigned
            )
            db.execute(
                "UPDATE approvals SET status='ended' WHERE id IN (SELECT id FROM approvals ORDER BY id LIMIT 2 OFFSET 50)"
            )
        total += st.query("SELECT count(*) AS n FROM approvals")[0]["n"]
        st.close()
        d.close()
    return total


def anchor_commands(info, schools: int, attrs: list[str], per_search: bool) -> tuple[list[list[str]], int]:
    """The ldapsearch processes fetching every school's groups (member) and people (paged like aupctl);
    per_search: one process per search, else one per school with its searches as -f lines."""
    pw = info.dir / "bind-nonl.pw"  # ldapsearch -y takes the whole file, a trailing newline included
    pw.touch(mode=0o600)
    pw.write_text((info.dir / "bind.pw").read_text().strip())
    common = ["ldapsearch", "-LLL", "-x", "-H", info.urls[0], "-D", info.bind_dn, "-y", str(pw)]
    person = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
    cmds: list[list[str]] = []
    searches = 0
    for n in range(1, schools + 1):
        sb = f"{school_ou(n)},{info.base_dn}"
        if per_search:
            for _, cn in SYSTEMS.values():
                cmds.append([*common, "-s", "base", "-b", f"cn={cn},ou=Groups,{sb}", "(objectClass=*)", "member"])
            for ou in ("ou=Staff", "ou=Leavers"):
                cmds.append([*common, "-E", "pr=1000/noprompt", "-b", f"{ou},{sb}", person, *attrs])
            searches += len(SYSTEMS) + 2
        else:
            # -f: one search per line, the line being the whole filter (the pattern is "%s"); the base is the
            # school's OU, so the person filter finds its staff and leavers OUs' people (nothing else there)
            lines = [f"(&(objectClass=groupOfNames)(cn={cn}))" for _, cn in SYSTEMS.values()] + [person]
            f = info.dir / f"searches-{n:02d}.txt"
            f.write_text("\n".join(lines) + "\n")
            cmds.append([*common, "-E", "pr=1000/noprompt", "-b", sb, "-f", str(f), "%s", "member", *attrs])
            searches += len(lines)
    return cmds, searches


def run_anchor(info, cmds: list[list[str]]) -> tuple[float, int]:
    env = ldap_env(info)
    start = time.perf_counter()
    size = 0
    for cmd in cmds:
        size += len(subprocess.run(cmd, env=env, capture_output=True, check=True).stdout)
    return time.perf_counter() - start, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", type=int, default=20, help="schools in the trust (default 20)")
    ap.add_argument("--staff", type=int, default=300, help="staff per school (default 300)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3; the median is compared)")
    ap.add_argument("--postgresql", action="store_true", help="each school's store a schema in a throwaway PostgreSQL")
    args = ap.parse_args()
    if not shutil.which("ldapsearch"):
        sys.exit("ldapsearch is not installed (apt-get install ldap-utils)")
    from aupctl import sandbox as sb

    tmp = Path(tempfile.mkdtemp(prefix="aupctl-bench-trust-"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "xdg")  # nothing of the user's (a keyring, a config) is read
    os.environ.pop("AUPCTL_SCHOOL", None)
    info = sb.start("openldap", tmp / "sandbox", detach=False, seed=False)
    cluster = None
    try:
        t0 = time.perf_counter()
        pg_url = pg_ca = None
        if args.postgresql:
            from aupctl.sandbox.postgres import start_cluster

            cluster = start_cluster()  # in a folder of its own, which the postgres user owns
            os.environ["AUPCTL_STATE_PASSWORD"] = cluster.password
            pg_url, pg_ca = cluster.url, str(cluster.ca_file)
        populate(info, args.schools, args.staff)
        cfg_path = tmp / "trust.toml"
        write_config(info, args.schools, cfg_path, tmp, pg_url, pg_ca)
        approvals = prepare_state(cfg_path)
        backend = "PostgreSQL (a schema per school, TLS, local)" if args.postgresql else "SQLite (a file per school)"
        print(
            f"setup: {args.schools} schools x {args.staff} staff, {len(SYSTEMS)} systems each, {approvals} approvals; "
            f"stores: {backend}; {time.perf_counter() - t0:.1f} s"
        )

        from click.testing import CliRunner

        from aupctl.commands import main as aupctl_main
        from aupctl.directory import OpenLDAP

        argv = ["--format", "json", "access", "review", "--all-schools"]
        env = {"AUPCTL_CONFIG": str(cfg_path)}

        def in_process() -> tuple[float, str]:
            runner = CliRunner()
            start = time.perf_counter()
            with runner.isolation(env=env) as (out, err, _):
                try:
                    code = aupctl_main(list(argv))
                except SystemExit as exc:
                    code = exc.code
                elapsed = time.perf_counter() - start
                if code not in (0, 1, None):
                    sys.exit(f"aupctl access review --all-schools failed ({code}): {err.getvalue().decode()[-800:]}")
                return elapsed, out.getvalue().decode()

        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached.update(env, PYTHONPYCACHEPREFIX=str(tmp / "pycache"))

        def command() -> float:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "aupctl.commands", *argv], env=cached, capture_output=True, cwd=ROOT
            )
            elapsed = time.perf_counter() - start
            if proc.returncode not in (0, 1):
                sys.exit(
                    f"aupctl access review --all-schools failed ({proc.returncode}): {proc.stderr.decode()[-800:]}"
                )
            return elapsed

        per_school, searches = anchor_commands(info, args.schools, OpenLDAP.brief_attributes, per_search=False)
        per_search, _ = anchor_commands(info, args.schools, OpenLDAP.brief_attributes, per_search=True)
        # untimed warm-ups: slapd's caches, aupctl's imports, the command's bytecode
        run_anchor(info, per_school)
        _, out = in_process()
        command()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(in_process)
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(20)
            if os.environ["BENCH_PROFILE"].endswith(".prof"):
                stats.dump_stats(os.environ["BENCH_PROFILE"])  # for pstats / snakeviz

        import json

        doc = json.loads(out)
        findings = doc.get("findings") or []
        schools_seen = {s["school"] for s in doc["data"]["schools"] if s["error"] is None}
        times: dict[str, list[float]] = {"per_school": [], "per_search": [], "in_process": [], "command": []}
        size = 0
        for _ in range(args.runs):  # interleaved, so a busy moment on the machine falls on all of them alike
            t, size = run_anchor(info, per_school)
            times["per_school"].append(t)
            times["per_search"].append(run_anchor(info, per_search)[0])
            times["in_process"].append(in_process()[0])
            times["command"].append(command())
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        anchor = med["per_school"]
        print(
            f"schools reviewed: {len(schools_seen)} of {args.schools}, findings: {len(findings)}; "
            f"ldapsearch: {searches} searches, {size / 1e6:.1f} MB of LDIF per run"
        )
        print(f"{'median of ' + str(args.runs) + ' runs':44}{'seconds':>9}{'best':>9}{'x anchor':>10}")
        rows = [
            ("ldapsearch, a process per school (anchor)", "per_school"),
            ("ldapsearch, a process per search", "per_search"),
            ("aupctl review --all-schools (in process)", "in_process"),
            ("aupctl access review --all-schools (command)", "command"),
        ]
        for label, k in rows:
            print(f"{label:44}{med[k]:>9.3f}{best[k]:>9.3f}{med[k] / anchor:>10.2f}")
        print("target: aupctl within 3x of the anchor (ldapsearch, a process per school)")
    finally:
        if cluster is not None:
            cluster.destroy()
        info.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
