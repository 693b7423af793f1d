"""bench/fleet: 100 laptops audited by aupctl, beside Ansible and beside a bare paramiko pool (the floor).

All three run in one go against the same simulated laptops, at the same parallelism, through a
delay proxy that adds a round-trip time (default 50 ms: 25 ms each way, per chunk; this kernel has
no netem). The laptops are ONE asyncssh server process listening on 100 loopback addresses, which
replays the Linux probe's output (computed once, on this machine, before timing): 100 forked sshd
sessions running real apt/dpkg would measure the simulation, not the client.

    python3 bench/fleet.py [--laptops 100] [--parallel 32] [--rtt-ms 50] [--rounds 3]

Bench-only dependencies (not aupctl's): `pip install asyncssh ansible-core`.
What each does:
  aupctl  `aupctl --format json laptop audit --parallel N`: a fresh process; connects with pinned host
          keys, runs the probe, parses it, checks it, records every result in the state store.
  floor   a fresh Python process: a paramiko thread pool of N, per laptop one connect (TCP_NODELAY,
          key auth, host key checked) + the same probe command with the same stdin, output read.
  ansible `ansible all -f N -m raw -a <the probe script>` with host key checking on (aupctl's
          known_hosts), ControlMaster off.
Targets (issue 7): aupctl within 1.5x of the floor, and at least 3x faster than Ansible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_NET = "127.77.0."  # the laptops
PROXY_NET = "127.77.1."  # what clients connect to (the delay proxy in front of each laptop)
USER = "bench"


# ---------------------------------------------------------------- the simulated laptops (asyncssh)
def serve(workdir: Path, count: int, port: int) -> None:
    import asyncssh

    replay = (workdir / "probe-output.txt").read_bytes()
    client_pub = asyncssh.read_public_key(str(workdir / "client_key.pub"))

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return username == USER and key.public_data == client_pub.public_data

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        cmd = (process.command or "").strip()
        if cmd == "uname -s":
            process.stdout.write(b"Linux\n")
        else:
            if cmd.endswith("sh -s"):  # aupctl and the floor send the script on stdin
                await process.stdin.read()
            process.stdout.write(replay)
        process.exit(0)

    async def main() -> None:
        for i in range(1, count + 1):
            await asyncssh.create_server(
                Server,
                f"{SERVER_NET}{i}",
                port,
                server_host_keys=[str(workdir / "host_key")],
                process_factory=handle,
                encoding=None,
                line_editor=False,
            )
        (workdir / "server.ready").write_text("ok")
        await asyncio.Event().wait()

    asyncio.run(main())


# ---------------------------------------------------------------- the delay proxy
def proxy(count: int, port: int, one_way: float) -> None:
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            try:
                writer.write_eof()
            except OSError:
                pass

        task = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + one_way, data or None))
                if not data:
                    break
        except OSError:
            queue.put_nowait((loop.time(), None))
        await task

    def handler(target: str):
        async def on_client(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            import socket

            cw.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sr, sw = await asyncio.open_connection(target, port)
            except OSError:
                cw.close()
                return
            sw.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(pump(cr, sw), pump(sr, cw), return_exceptions=True)
            cw.close()
            sw.close()

        return on_client

    async def main() -> None:
        for i in range(1, count + 1):
            await asyncio.start_server(handler(f"{SERVER_NET}{i}"), f"{PROXY_NET}{i}", port, backlog=256)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ---------------------------------------------------------------- the floor: a bare paramiko pool
def floor(workdir: Path, count: int, port: int, parallel: int) -> None:
    import base64
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(str(workdir / "client_key"))
    kind, b64 = (workdir / "host_key.pub").read_text().split()[:2]
    host_key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64))
    script = (ROOT / "aupctl" / "laptops" / "probes" / "linux.sh").read_text()

    def one(i: int) -> int:
        host = f"{PROXY_NET}{i}"
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[{host}]:{port}", kind, host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(host, port, USER, pkey=key, sock=sock, allow_agent=False, look_for_keys=False)
        chan = client.get_transport().open_session()
        chan.exec_command("/bin/sh -s")
        chan.sendall(script.encode())
        chan.shutdown_write()
        out = bytearray()
        while data := chan.recv(65536):
            out += data
        chan.recv_exit_status()
        client.close()
        return len(out)

    with ThreadPoolExecutor(parallel) as pool:
        sizes = list(pool.map(one, range(1, count + 1)))
    print(json.dumps({"ok": sum(1 for s in sizes if s > 1000)}))


# ---------------------------------------------------------------- setup and timing
def setup(workdir: Path, count: int, port: int, parallel: int) -> dict:
    import asyncssh

    from aupctl.config import load
    from aupctl.laptops import inventory
    from aupctl.laptops.probes import script
    from aupctl.state import State

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(workdir / "host_key"))
    host_key.write_public_key(str(workdir / "host_key.pub"))
    client = asyncssh.generate_private_key("ssh-ed25519")
    client.write_private_key(str(workdir / "client_key"), format_name="openssh")
    client.write_public_key(str(workdir / "client_key.pub"))
    os.chmod(workdir / "client_key", 0o600)
    # The probe's real output on this machine, computed once.
    out = subprocess.run(["/bin/sh", "-s"], input=script("linux"), capture_output=True, text=True, check=True)
    (workdir / "probe-output.txt").write_text(out.stdout)

    cfg_path = workdir / "aupctl.toml"
    cfg_path.write_text(
        f"""[school]
name = "Bench"
aup_version = "1"
[directory]
flavour = "openldap"
url = "ldap://127.0.0.1:9"
bind_dn = "cn=x"
base_dn = "dc=bench"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[laptops]
ssh_user = "{USER}"
ssh_key = "client_key"
known_hosts = "known_hosts"
parallel = {parallel}
connect_timeout = 30
approved_software = ["*"]
[state]
path = "state.db"
"""
    )
    cfg = load(str(cfg_path))
    state = State(cfg.state.path)
    kind, b64 = (workdir / "host_key.pub").read_text().split()[:2]
    import base64

    from aupctl.laptops.ssh import fingerprint

    fp = fingerprint(base64.b64decode(b64))
    for i in range(1, count + 1):
        inventory.add(
            state,
            cfg,
            tag=f"LT-{i:03d}",
            host=f"{PROXY_NET}{i}",
            port=port,
            os_name="linux",
            key_type=kind,
            key_b64=b64,
            fp=fp,
        )
    state.close()
    inv = workdir / "inventory.ini"
    inv.write_text("[laptops]\n" + "".join(f"{PROXY_NET}{i} ansible_port={port}\n" for i in range(1, count + 1)))
    return {"config": cfg_path, "inventory": inv, "known_hosts": workdir / "known_hosts"}


def timed(
    cmd: list[str], env: dict | None = None, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    return time.perf_counter() - t0, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--laptops", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=22022)
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--role", choices=["serve", "proxy", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role in ("serve", "proxy"):  # stopped with SIGTERM at the end of a run: leave without asyncio's noise
        import signal

        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        import logging

        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # a client hanging up mid-stream is normal here
    if a.role == "serve":
        serve(Path(a.workdir), a.laptops, a.port)
        return 0
    if a.role == "proxy":
        proxy(a.laptops, a.port, a.rtt_ms / 2000.0)
        return 0
    if a.role == "floor":
        floor(Path(a.workdir), a.laptops, a.port, a.parallel)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="aupctl-bench-fleet-"))
    procs: list[subprocess.Popen] = []
    try:
        paths = setup(workdir, a.laptops, a.port, a.parallel)
        me = [sys.executable, str(Path(__file__).resolve()), "--laptops", str(a.laptops), "--port", str(a.port)]
        procs.append(subprocess.Popen([*me, "--role", "serve", "--workdir", str(workdir)]))
        px = subprocess.Popen([*me, "--role", "proxy", "--rtt-ms", str(a.rtt_ms)], stdout=subprocess.PIPE, text=True)
        procs.append(px)
        assert px.stdout is not None and px.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not (workdir / "server.ready").exists():
            if time.monotonic() > deadline:
                raise SystemExit("the simulated laptops did not start")
            time.sleep(0.05)

        aupctl = shutil.which("aupctl") or "aupctl"
        env_a = {**os.environ, "AUPCTL_CONFIG": str(paths["config"])}
        env_x = {
            **os.environ,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_ARGS": f"-o ControlMaster=no -o ControlPersist=no -o UserKnownHostsFile={paths['known_hosts']}",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        }
        probe_script = (ROOT / "aupctl" / "laptops" / "probes" / "linux.sh").read_text()
        runs = {
            "aupctl": ([aupctl, "--format", "json", "laptop", "audit", "--parallel", str(a.parallel)], env_a),
            "floor (bare paramiko pool)": (
                [*me, "--role", "floor", "--workdir", str(workdir), "--parallel", str(a.parallel)],
                None,
            ),
        }
        if not a.no_ansible:
            runs["ansible -m raw"] = (
                [
                    "ansible",
                    "all",
                    "-i",
                    str(paths["inventory"]),
                    "-f",
                    str(a.parallel),
                    "-u",
                    USER,
                    "--private-key",
                    str(workdir / "client_key"),
                    "-m",
                    "raw",
                    "-a",
                    probe_script,
                ],
                env_x,
            )
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(a.rounds):
            for name, (cmd, env) in runs.items():
                took, res = timed(cmd, env=env, cwd=workdir)
                ok = _count_ok(name, res)
                if ok != a.laptops:
                    print(f"{name}: only {ok}/{a.laptops} laptops answered\n{res.stdout[-800:]}\n{res.stderr[-800:]}")
                    return 1
                times[name].append(took)
        best = {k: min(v) for k, v in times.items()}
        floor_t = best["floor (bare paramiko pool)"]
        print(
            f"\n{a.laptops} laptops, parallelism {a.parallel}, RTT {a.rtt_ms:g} ms (asyncio delay proxy), "
            f"best of {a.rounds} (median in brackets), each a fresh process"
        )
        print(f"{'tool':<28} {'seconds':>8} {'median':>8}  {'vs floor':>8}")
        for name, t in best.items():
            print(f"{name:<28} {t:8.2f} {statistics.median(times[name]):8.2f}  {t / floor_t:7.2f}x")
        if "ansible -m raw" in best:
            print(
                f"\naupctl vs floor: {best['aupctl'] / floor_t:.2f}x (target <= 1.5x); "
                f"Ansible vs aupctl: {best['ansible -m raw'] / best['aupctl']:.2f}x (target >= 3x)"
            )
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _count_ok(name: str, res: subprocess.CompletedProcess) -> int:
    if name == "aupctl":
        try:
            return sum(1 for r in json.loads(res.stdout)["laptops"] if r["status"] == "ok")
        except (ValueError, KeyError):
            return 0
    if name.startswith("floor"):
        try:
            return json.loads(res.stdout.strip().splitlines()[-1])["ok"]
        except (ValueError, IndexError, KeyError):
            return 0
    return sum(1 for line in res.stdout.splitlines() if " | CHANGED | rc=0" in line or " | SUCCESS | rc=0" in line)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
