"""Helpers shared by test modules: the real CLI entry point under CliRunner, and a bind as a user."""

from __future__ import annotations

import ssl

import ldap3
from click.testing import CliRunner


def run_main(*args: str, config=None, input: str | None = None) -> tuple[int, str, str]:
    """The real entry point (main: AupctlError -> message and exit code) under CliRunner's isolation."""
    from aupctl.commands import main

    runner = CliRunner()
    env = {"AUPCTL_CONFIG": str(config)} if config else {}
    with runner.isolation(input=input, env=env) as (out, err, _):
        try:
            returned = main(list(args))  # a handled error may come back as the exit code (standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    # an internal error (exit 70) is a bug whatever the test asserts: it fails here
    assert code != 70 and "internal error:" not in stderr, f"aupctl met an internal error:\n{stderr}"
    return code, stdout, stderr


def user_bind(cfg, dn: str, password: str) -> ldap3.Connection:
    """A simple bind as someone (not the service account), over the config's verified TLS; check .bound."""
    url = cfg.directory.url[0]
    tls = ldap3.Tls(ca_certs_file=cfg.directory.ca_file, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(url, use_ssl=url.startswith("ldaps://"), tls=tls, connect_timeout=5)
    conn = ldap3.Connection(server, dn, password, raise_exceptions=False)
    conn.open()
    if cfg.directory.start_tls and not url.startswith("ldaps://"):
        conn.start_tls()
    conn.bind()
    return conn


def run_tty(*args: str, config=None, timeout: float = 120) -> tuple[int, str, str]:
    """The real `aupctl` in a subprocess whose stdout is a terminal (a pseudo-terminal), for what is only
    written to a terminal (`password reset --show`). stdin is not a terminal, stderr is a pipe."""
    return run_on_tty(*args, config=config, timeout=timeout, tty="stdout")


def run_on_tty(
    *args: str, config=None, timeout: float = 120, tty: str = "stdout", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """The real `aupctl` in a subprocess with one stream (`tty`: "stdout" or "stderr") a pseudo-terminal
    and the other a pipe; stdin is not a terminal. Returns (exit code, stdout, stderr)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    env = {**os.environ, **({"AUPCTL_CONFIG": str(config)} if config else {}), **(env or {})}
    leader, follower = pty.openpty()
    on_tty = {"stdout": follower, "stderr": subprocess.PIPE} if tty == "stdout" else {"stdout": subprocess.PIPE, "stderr": follower}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aupctl.commands", *args], stdin=subprocess.DEVNULL, env=env, **on_tty
    )
    os.close(follower)
    seen = bytearray()
    piped = proc.stderr if tty == "stdout" else proc.stdout
    assert piped is not None
    other_bytes = bytearray()
    open_fds = {leader, piped.fileno()}
    deadline = time.monotonic() + timeout
    try:
        # drain both: a pipe left unread fills at 64 KB and the child blocks writing its table
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                elif fd == leader:
                    seen += chunk
                else:
                    other_bytes += chunk
            if not ready and proc.poll() is not None and leader in open_fds:
                open_fds.discard(leader)  # a terminal may not report EOF; the pipe still drains
        other_bytes += piped.read()
        other = other_bytes.decode()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shown = seen.decode(errors="replace").replace("\r\n", "\n") if tty == "stdout" else seen.decode(errors="replace")
    return (code, shown, other) if tty == "stdout" else (code, other, shown)


def payload(text: str):
    """The JSON a command printed (its --format json envelope, docs/output.md), as the test reads it: the
    envelope's data, findings or plan; findings with data or a plan as one object holding both."""
    import json

    doc = json.loads(text)
    if not (isinstance(doc, dict) and "version" in doc and "exit_code" in doc):
        return doc
    parts = {k: doc[k] for k in ("data", "findings", "plan") if k in doc}
    if "findings" in parts and len(parts) > 1:
        data = parts.pop("data", None)
        return {**(data or {}), **parts}
    if len(parts) == 1:
        return next(iter(parts.values()))
    return parts or None
