"""bench/state: audit-log appends per second with 1, 4 and 8 concurrent writer processes, on PostgreSQL
(a throwaway local cluster, TLS, fsync=off) and on SQLite (WAL, a file in /tmp), beside a bare anchor.

Each writer is its own process appending N keyed entries through State.audit (one short transaction each:
the store's write lock, the chain head read, the HMAC, the insert). The anchor does the same shape of
work without aupctl: psycopg (or sqlite3) inserting the same rows, one transaction each, serialised the
same way (an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite) and reading the head first, so the
difference is aupctl's own cost. Afterwards every store's chain is verified.

Run by hand:  python3 bench/state.py [--entries 300]
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

WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from aupctl.state import State
kind, target, n, name = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
st = State(url=target, namespace="bench", ca_file=sys.argv[6]) if kind == "postgresql" else State(target)
st.audit_key(create=True)
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    st.audit("access-grant", f"{name}-{i}", {"system": "sims", "n": i})
st.close()
"""

ANCHOR = """
import sys, json, hashlib, time, sqlite3
kind, target, n, name = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
if kind == "postgresql":
    import psycopg
    db = psycopg.connect(target, sslmode="verify-full", sslrootcert=sys.argv[6], autocommit=True)
    begin = lambda: (db.execute("BEGIN"), db.execute("SELECT pg_advisory_xact_lock(42)"))
    q = "%s"
else:
    db = sqlite3.connect(target, isolation_level=None, timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    begin = lambda: db.execute("BEGIN IMMEDIATE")
    q = "?"
print("ready", flush=True)
sys.stdin.readline()
ins = f"INSERT INTO anchor (id, at, actor, action, target, details, prev_hash, hash) VALUES ({','.join([q] * 8)})"
for i in range(n):
    begin()
    row = db.execute("SELECT id, hash FROM anchor ORDER BY id DESC LIMIT 1").fetchone()
    prev = row[1] if row else "0" * 64
    body = json.dumps({"system": "sims", "n": i})
    digest = hashlib.sha256((prev + body).encode()).hexdigest()
    db.execute(ins, ((row[0] + 1) if row else 1, "2026-11-30T00:00:00+00:00", "bench", "access-grant",
                     f"{name}-{i}", body, prev, digest))
    db.execute("COMMIT")
db.close()
"""

ANCHOR_TABLE = (
    "CREATE TABLE anchor (id BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
    "target TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
)


def run_writers(script: str, kind: str, target: str, ca: str, writers: int, n: int, env: dict[str, str]) -> float:
    """Start the writers, wait until each is connected, then release them together; appends per second."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(ROOT), kind, target, str(n), f"w{w}", ca],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        for w in range(writers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise SystemExit(f"a {kind} writer failed")
    return writers * n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=300, help="appends per writer (default 300)")
    args = ap.parse_args()
    from aupctl.sandbox.postgres import start_cluster
    from aupctl.state import State

    work = Path(tempfile.mkdtemp(prefix="aupctl-bench-state-"))
    env = dict(os.environ, XDG_CONFIG_HOME=str(work / "xdg"))
    cluster = start_cluster()
    env["AUPCTL_STATE_PASSWORD"] = cluster.password
    os.environ.update(env)
    rows: list[tuple[str, int, float, float]] = []
    try:
        for writers in (1, 4, 8):
            # PostgreSQL: a fresh database each round
            db = f"bench{writers}"
            with cluster.admin() as conn:
                conn.execute(f"CREATE DATABASE {db}")
            url = cluster.url.rsplit("/", 1)[0] + f"/{db}"
            State(url=url, namespace="bench", ca_file=str(cluster.ca_file)).close()
            with cluster.admin(db) as conn:
                conn.execute(ANCHOR_TABLE)
            pg = run_writers(WRITER, "postgresql", url, str(cluster.ca_file), writers, args.entries, env)
            anchor_url = f"host=127.0.0.1 port={cluster.port} user=aupctl dbname={db} password={cluster.password}"
            pg_anchor = run_writers(ANCHOR, "postgresql", anchor_url, str(cluster.ca_file), writers, args.entries, env)
            st = State(url=url, namespace="bench", ca_file=str(cluster.ca_file))
            assert st.verify_audit() == (writers * args.entries, None), "the PostgreSQL chain broke"
            st.close()
            rows.append(("postgresql", writers, pg, pg_anchor))
            # SQLite
            path = work / f"state{writers}.db"
            State(path).close()
            import sqlite3

            a = sqlite3.connect(work / f"anchor{writers}.db")
            a.execute(ANCHOR_TABLE)
            a.close()
            sq = run_writers(WRITER, "sqlite", str(path), "-", writers, args.entries, env)
            sq_anchor = run_writers(ANCHOR, "sqlite", str(work / f"anchor{writers}.db"), "-", writers, args.entries, env)
            st = State(path)
            assert st.verify_audit() == (writers * args.entries, None), "the SQLite chain broke"
            st.close()
            rows.append(("sqlite", writers, sq, sq_anchor))
    finally:
        cluster.destroy()
    print(f"audit-log appends per second ({args.entries} per writer; PostgreSQL local, TLS, fsync=off; SQLite WAL)")
    print(f"{'backend':<11} {'writers':>7} {'aupctl/s':>9} {'anchor/s':>9} {'ratio':>6}")
    for backend, writers, ours, anchor in rows:
        print(f"{backend:<11} {writers:>7} {ours:>9.0f} {anchor:>9.0f} {anchor / ours:>5.1f}x")
    print("every chain verified after the run")


if __name__ == "__main__":
    main()
