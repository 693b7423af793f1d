"""aupctl doctor"""

from __future__ import annotations

import textwrap
from typing import Any

import click

from .context import Ctx, pass_ctx
from .output import Styled, exit_with, render

_STYLE = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red"), "info": ("info", "cyan")}


@click.command("doctor")
@pass_ctx
def cli(ctx: Ctx) -> None:
    """Check config, keyring, credentials, state store, reachability, TLS, bind, the OUs and groups the
    config names, read access, and the bind account's rights per job.

    Each check is ok, warn (listed, does not fail: e.g. an empty staff OU), FAIL, or info. Exit 0 when
    nothing failed (warnings included); 2 for a config, credentials or state-store problem, or an OU or
    group the config names that the directory does not hold; 3 when the directory cannot be reached or
    refuses the bind.
    """
    from aupctl import doctor

    checks = doctor.run(ctx.config_path, ctx.school)
    rows: list[dict[str, Any]] = [
        {"check": c.check, "ok": c.ok, "status": c.status, "detail": c.detail}
        | ({"job": c.job, "right": c.right, "target": c.target} if c.section == "rights" else {})
        for c in checks
    ]
    columns = ["check", "ok", "status", "detail", "job", "right", "target"]
    render(ctx, rows, columns, table=lambda: _table(ctx, rows, checks))
    exit_with(doctor.exit_code(checks))


def _table(ctx: Ctx, rows: list[dict[str, Any]], checks: list[Any]) -> None:
    """The checks for a person: coloured status, details wrapped, then the bind account's rights per job."""
    for r in rows:
        label, colour = _STYLE.get(r["status"], (r["status"], None))
        r["ok"] = Styled(label, colour)
    # tables fit 120 columns: long details wrap inside their cell
    render(ctx, [r for r in rows if "job" not in r], ["check", "ok", "detail"], wrap={"detail": 96})
    rights = [r for r in rows if "job" in r]
    if rights:
        click.echo("\nrights of the bind account, per job (`--format json` for the detail of each):")
        for r in rights:
            r["on"] = _short(r["target"], ctx)
            r["ok"] = {"ok": "yes", "warn": Styled("NO", "yellow"), "info": "try"}.get(r["status"], r["ok"])
        render(ctx, rights, ["job", "right", "on", "ok"], headers={"ok": "can"})
        notes = dict.fromkeys(_note(c) for c in checks if c.section == "rights" and c.status != "ok")
        for note in filter(None, notes):
            click.echo(textwrap.fill(note, 118, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False))


def _short(dn: str, ctx: Ctx) -> str:
    """A DN without the base_dn tail, so the table fits."""
    try:
        base = ctx.config.directory.base_dn
    except Exception:  # noqa: BLE001 - doctor already reported a config it could not load
        return dn
    if dn.lower().endswith("," + base.lower()):
        return dn[: -len(base) - 1]
    return dn


def _note(c: object) -> str:
    detail = getattr(c, "detail", "")
    if "slapacl" in detail:
        return (
            "OpenLDAP shows no write rights: on the server, `slapacl -D BIND_DN -b DN 'member/write'` (or "
            "children/write, userPassword/write) answers without changing anything; or run the job on a test "
            "account and group (docs/your-directory.md)."
        )
    if getattr(c, "status", "") == "info":
        return f"{getattr(c, 'right', '')}: {detail}"
    return ""
