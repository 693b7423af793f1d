"""aupctl state init | verify [FILE] | backup FILE | migrate --to URL [--namespace KEY] [--from FILE]"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aupctl.errors import EXIT_FINDINGS

from .context import Ctx, pass_ctx
from .output import message, set_json, wants_json


@click.group("state")
def cli() -> None:
    """The state store: approvals, signatures, tasks, laptops, leaver snapshots and the audit log."""


@cli.command("init")
@pass_ctx
def init(ctx: Ctx) -> None:
    """Make a new, empty state store at [state] path.

    Only where no file exists, or the file there is empty (zero-length): a store holding anything is
    never overwritten (exit 2). Every other command refuses an empty or foreign file at that path
    instead of silently starting a new store, so a lost store is noticed. (A PostgreSQL store, [state]
    url, is made by the first command that uses it.)
    """
    from aupctl.state import default_state_path, init_store

    path = Path(ctx.config.state.path) if ctx.config.state.path else default_state_path()
    message(init_store(path))


@cli.command("verify")
@click.argument("file", required=False, type=click.Path(dir_okay=False, exists=True))
@pass_ctx
def verify(ctx: Ctx, file: str | None) -> None:
    """Check the store: its schema version, its integrity and the audit log's hash chain.

    Without FILE, the configured store (SQLite or PostgreSQL), with its signed checkpoints as `log verify`
    checks them. With FILE, a SQLite store or backup (`state backup`), checked with the configured audit
    key. Exit 1 naming what was found.
    """
    from aupctl import auditlog
    from aupctl.state import State
    from aupctl.storecopy import check_store

    if file:
        st = auditlog.attach(State(file), ctx.config)
        try:
            result = check_store(st)
        finally:
            st.close()
    else:
        st = ctx.state
        full = auditlog.verify(st, auditlog.checkpoints_path(ctx.config, st))
        result = check_store(st, full.problems, full.entries)
    if wants_json(ctx):
        set_json(ctx, data=result.as_json())
    for line in result.lines():
        message(line)
    if not result.sound:
        sys.exit(EXIT_FINDINGS)


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_ctx
def backup(ctx: Ctx, file: str) -> None:
    """Copy the whole store into FILE, a new SQLite file (owner-only), and verify the copy's audit chain.

    A SQLite store is copied with SQLite's backup API (safe while others write); a PostgreSQL store row
    for row. A log that does not verify is still copied as it is (the evidence), with exit 1 naming the break. `state verify FILE` checks a backup; `state migrate --from
    FILE --to URL` restores one to a server. Keep the audit key's backup apart from it.
    """
    from aupctl.storecopy import backup as take

    result = take(ctx.state, Path(file))
    broken = result.broken
    if wants_json(ctx):
        set_json(ctx, data={"file": file, "entries": result.entries, "head": result.head,
                            "broken": None if broken is None else {"entry": broken.id, "reason": broken.reason}})  # fmt: skip
    if broken is not None:  # kept as it is: the copy is the evidence
        message(f"backed up {ctx.state.path} to {file}, but its audit log is BROKEN at entry {broken.id}: {broken.reason}")
        sys.exit(EXIT_FINDINGS)
    message(f"backed up {ctx.state.path} to {file}: audit log of {result.entries} entries verified in the copy")


@cli.command("migrate")
@click.option("--to", "url", required=True, metavar="URL", help="The PostgreSQL store: postgresql://USER@HOST:PORT/DB "
              "(no password: AUPCTL_STATE_PASSWORD, state.password_file or the keyring).")  # fmt: skip
@click.option("--namespace", metavar="KEY", help="Its schema on the server (default: the --school's key, _ for -; else aupctl).")
@click.option("--from", "source", metavar="FILE", type=click.Path(dir_okay=False, exists=True),
              help="Copy this SQLite store or backup instead of [state] path.")  # fmt: skip
@pass_ctx
def migrate(ctx: Ctx, url: str, namespace: str | None, source: str | None) -> None:
    """Copy a school's SQLite store to a PostgreSQL server, every table, then verify the audit chain on both.

    Refuses (exit 2) when the target already holds records for that namespace: nothing is merged. TLS as
    [state] ca_file / allow_insecure say. Then set [state] url (and keep [state] checkpoints pointing at
    the same checkpoints file) so every command uses the server.
    """
    from aupctl import auditlog
    from aupctl.credentials import state_password
    from aupctl.pgstore import check_url, redact
    from aupctl.schools import namespace_of
    from aupctl.state import State, default_state_path
    from aupctl.storecopy import copy_store

    cfg = ctx.config
    check_url(url, "--to")
    namespace = namespace or namespace_of(cfg.school_key)  # a trust's school goes to its own schema
    path = Path(source or cfg.state.path or default_state_path())
    if not path.exists():
        from aupctl.errors import ConfigError

        raise ConfigError(f"there is no SQLite store at {path} to copy", hint="name one with --from")
    src = auditlog.attach(State(path, busy_timeout=cfg.state.busy_timeout), cfg)
    try:
        dst = auditlog.attach(
            State(
                url=url, namespace=namespace, ca_file=cfg.state.ca_file, allow_insecure=cfg.state.allow_insecure,
                password=state_password(redact(url), cfg.state.password_file), busy_timeout=cfg.state.busy_timeout,
            ),
            cfg,
        )  # fmt: skip
        try:
            result = copy_store(src, dst)
            checkpoints = auditlog.checkpoints_path(cfg, src)
            dst.audit("state-migrate", namespace or "aupctl", {"from": str(path), "entries": result.entries,
                                                             "head": result.head, "rows": result.rows})  # fmt: skip
        finally:
            dst.close()
    finally:
        src.close()
    total = sum(result.rows.values())
    if wants_json(ctx):
        set_json(ctx, data={"from": str(path), "to": redact(url), "namespace": namespace, "rows": result.rows,
                            "entries": result.entries, "head": result.head, "checkpoints": str(checkpoints)})  # fmt: skip
    message(
        f"copied {path} to {redact(url)} (schema {namespace or 'aupctl'}): {total} rows in {len(result.rows)} tables; "
        f"audit log of {result.entries} entries verified on both sides, same head {result.head[:16]}"
    )
    message(
        f'next: set [state] url = "{redact(url)}" and [state] checkpoints = "{checkpoints}" (the same signed '
        "checkpoints file), then run `aupctl state verify`"
    )
