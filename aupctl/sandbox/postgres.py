"""A throwaway PostgreSQL cluster on loopback, with TLS, for tests, benchmarks and demos.

Debian's postgresql (15): initdb and pg_ctl refuse to run as root, so they run as the `postgres` user in
a folder it owns (docs: /work/shared/notes/real-servers.md). fsync=off: for tests and benchmarks only,
never for a school's server.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from .tls import _make_tls  # noqa: E402 - after the platform assert, like the rest of the sandbox

ROLE = "aupctl"
DATABASE = "aupctl"


def bindir() -> Path | None:
    """Where initdb and pg_ctl are (Debian keeps them out of PATH), newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    if found:
        return Path(found[0]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def unavailable() -> str | None:
    """Why a throwaway cluster cannot start here, or None."""
    if bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "there is no postgres user to run initdb as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'aupctl[postgresql]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    dir: Path
    port: int
    password: str
    ca_file: Path
    bindir: Path

    @property
    def url(self) -> str:
        """postgresql://aupctl@127.0.0.1:PORT/aupctl (no password: that is AUPCTL_STATE_PASSWORD's)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c ssl=on "
            f"-c ssl_cert_file={self.dir}/server.pem -c ssl_key_file={self.dir}/server.key -c fsync=off "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        proc = self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "start", "-o", opts,
                         check=False)  # fmt: skip
        if proc.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace")[-2000:] if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr.strip()} {log}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def admin(self, dbname: str = DATABASE):  # noqa: ANN201 - psycopg.Connection, imported lazily
        """A psycopg connection as the cluster's superuser (aupctl), autocommit, verified TLS."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=ROLE, dbname=dbname, password=self.password,
            sslmode="verify-full", sslrootcert=str(self.ca_file), autocommit=True,
        )  # fmt: skip

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def start_cluster(parent: Path | None = None) -> Cluster:
    """initdb (scram-sha-256, superuser `aupctl`), a TLS cert for 127.0.0.1, pg_ctl start on a free loopback
    port, and a database `aupctl`. About 1 s."""
    why = unavailable()
    if why:
        raise RuntimeError(why)
    bdir = bindir()
    assert bdir is not None
    d = Path(tempfile.mkdtemp(prefix="aupctl-pg-", dir=parent))
    os.chmod(d, 0o755)
    password = secrets.token_urlsafe(18)
    (d / "pw").write_text(password + "\n")
    _make_tls(d, "127.0.0.1")
    if os.geteuid() == 0:
        import pwd

        pg = pwd.getpwnam("postgres")
        for p in (d, d / "pw", d / "server.key", d / "server.pem", d / "ca.pem"):
            os.chown(p, pg.pw_uid, pg.pw_gid)
    os.chmod(d / "server.key", 0o600)
    cluster = Cluster(d, _free_port(), password, d / "ca.pem", bdir)
    init = cluster._run("initdb", "-D", str(d / "data"), "-A", "scram-sha-256", f"--pwfile={d / 'pw'}", "-U", ROLE,
                        "-N", "--no-instructions", check=False)  # fmt: skip
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
    (d / "pw").unlink()
    hba = d / "data" / "pg_hba.conf"
    hba.write_text("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    cluster.start()
    with cluster.admin("postgres") as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return cluster
