"""A recertification campaign: who was asked about whom, `start`, the approvers' files and letters.

A campaign keeps, per system, the member list it started from (normalised member DNs, or user:NAME for a
system managed by hand) and its fingerprint, so `apply` can tell that the group changed under the
approvers' feet. The files are made from the store, so letters() gives the mail layer the same bytes
`start` wrote, whenever it asks.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import Config
from ...dates import parse_date
from ...directory import Account, Directory, group_name, normalise_dn
from ...errors import ConfigError, NotFoundError, RefusedError
from ...plan import Change, Plan
from ...records import approvals
from ...records import recertify as rec
from ...records.signatures import signed_users
from ...state import State, today
from ...text import csv_cell, shown
from ..members import read_memberships, read_people, read_staff, roles_for

CLAUSE = "1.3"
TEMPLATE = "recertify-start"
CSV_COLUMNS = [
    "campaign",
    "system",
    "system_name",
    "username",
    "name",
    "role",
    "access",
    "via",
    "approved_on",
    "approved_by",
    "last_logon",
    "aup_signed",
    "approver",
    "decision",
    "note",
]
DECISIONS = ("keep", "remove")
_ACCESS = {"adopt": "adopted", "grant": "granted", "recertify": "kept in a recertification"}


@dataclass
class Campaign:
    """One campaign as the store keeps it, with its items and the decision that stands for each."""

    id: int
    code: str
    status: str
    due: str
    opened_at: str
    opened_by: str
    closed_at: str | None
    out_dir: str
    systems: dict[str, dict[str, Any]]  # key -> name, approvers, group, members, fingerprint
    items: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)  # item id -> standing decision

    @property
    def label(self) -> str:
        return f"campaign {self.id} ({self.code})"

    def item(self, system: str, username: str) -> dict[str, Any] | None:
        key = username.strip().lower()
        # a hand-made account's odd username comes back from the decisions file as csv_cell wrote it
        return next(
            (i for i in self.items if i["system"] == system and key in (i["user_key"], shown(i["user_key"]))), None
        )

    def approvers(self) -> dict[str, list[str]]:
        """approver (as the config spelt it at the start) -> their systems, in config order."""
        out: dict[str, list[str]] = {}
        for key, meta in self.systems.items():
            for a in meta["approvers"]:
                out.setdefault(a, []).append(key)
        return out


def load_campaign(state: State, ref: int | str | None = None, *, system: str | None = None) -> Campaign:
    """A campaign by id or code; without one, the open campaign (covering `system`, if given), else the newest."""
    if ref is not None and str(ref).strip():
        row = rec.campaign(state, ref)
        if row is None:
            raise NotFoundError(
                f"no recertification campaign {ref!r}", hint="`aupctl access recertify status` lists it"
            )
    else:
        rows = rec.campaigns(state, open_only=True)
        if system is not None:
            rows = [r for r in rows if system in r["systems"]]
        row = rows[0] if rows else None
        if row is None and system is None:
            every = rec.campaigns(state)
            row = every[0] if every else None
        if row is None:
            what = f"for {system}" if system else "yet"
            raise NotFoundError(
                f"no open recertification campaign {what}", hint="start one: aupctl access recertify start"
            )
    return _hydrate(state, row)


def _hydrate(state: State, row: dict[str, Any]) -> Campaign:
    return Campaign(
        id=int(row["id"]),
        code=row["code"],
        status=row["status"],
        due=row["due"],
        opened_at=row["opened_at"],
        opened_by=row["opened_by"],
        closed_at=row["closed_at"],
        out_dir=row["out_dir"] or "",
        systems=row["systems"],
        items=rec.items(state, int(row["id"])),
        decisions=rec.current_decisions(state, int(row["id"])),
    )


# -- who holds each system now --


def _access(appr: dict[str, Any] | None) -> str:
    if appr is None:
        return "no record"
    if appr["status"] == "waiting":
        return "waiting for the AUP signature"
    return _ACCESS.get(appr["source"], appr["source"])


def _last_logon(acct: Account | None, lag: int) -> str:
    """The last logon as the directory records it; on AD it may be up to `lag` days later than shown."""
    if acct is None:
        return "no account"
    if acct.last_logon is None:
        return "none recorded"
    day = acct.last_logon.date().isoformat()
    return f"{day} (or up to {lag} days later)" if lag else day


def fingerprint(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def current_members(cfg: Config, directory: Directory, state: State, keys: list[str]) -> dict[str, set[str] | None]:
    """system key -> member keys now (normalised DNs; user:NAME by hand); None when the group has gone."""
    out: dict[str, set[str] | None] = {}
    memberships = read_memberships(cfg, directory, [k for k in keys if k in cfg.systems and cfg.systems[k].group])
    for key in keys:
        system = cfg.systems.get(key)
        if system is None:
            out[key] = None
        elif system.group:
            members = memberships.get(key)
            out[key] = None if members is None else {normalise_dn(dn) for dn in members}
        else:
            out[key] = {f"user:{r['username'].lower()}" for r in approvals.live(state, system=key, status=("active",))}
    return out


def member_label(key: str) -> str:
    return key[5:] if key.startswith("user:") else group_name(key)


def survey(
    cfg: Config, directory: Directory, state: State, keys: list[str]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(systems, items, notes): each system's members as the directory shows them, with how they got access,
    their role, last logon and AUP signature (each account read once, as access review reads them)."""
    staff = read_staff(cfg, directory, full=True)  # full: the last logon too
    group_keys = [k for k in keys if cfg.systems[k].group]
    memberships = read_memberships(cfg, directory, group_keys, staff)
    live = [r for r in approvals.live(state) if r["system"] in keys]
    member_dns = {dn for m in memberships.values() if m for dn in m}
    people = read_people(cfg, directory, member_dns, {r["username"] for r in live}, staff, state)
    roles = roles_for(cfg, directory, state, people)
    signed = signed_users(state, cfg.school.aup_version)
    lag = directory.flavour.logon_lag_days
    approved: dict[str, dict[str, dict[str, Any]]] = {}
    for r in live:
        approved.setdefault(r["system"], {})[r["username"].lower()] = r
    systems: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    notes: list[str] = []

    def item(key: str, user: str, acct: Account | None, member_key: str, dn: str | None, via: str | None) -> None:
        appr = approved.get(key, {}).get(user)
        role = roles.get(user)
        items.append(
            {
                "system": key,
                "username": acct.username if acct else (appr["username"] if appr else user),
                "user_key": user,
                "member_key": member_key,
                "member_dn": dn,
                "via": via,
                "name": acct.name if acct else (appr["username"] if appr else user),
                "role": role.role if role else None,
                "access": _access(appr),
                "approval_id": appr["id"] if appr else None,
                "approved_on": appr["granted_at"][:10] if appr else None,
                "approved_by": appr["approver"] if appr else None,
                "last_logon": _last_logon(acct, lag),
                "aup_signed": 1 if user in signed else 0,
            }
        )

    for key in keys:
        system = cfg.systems[key]
        if not system.approvers:
            notes.append(f"{system.name}: systems.{key}.approvers is empty, so nobody is asked about its members")
        member_keys: list[str] = []
        seen: set[str] = set()
        if system.group:
            members = memberships.get(key)
            if members is None:
                notes.append(f"{system.name}: the group {cfg.group_dn(system.group)} does not exist; left out")
                continue
            for dn, via in sorted(members.items(), key=lambda kv: kv[0].lower()):
                member_keys.append(normalise_dn(dn))
                acct = people.find(dn)
                if acct is None:
                    notes.append(f"{system.name}: {dn} is not a person account: not asked about (access review)")
                    continue
                user = acct.username.lower()
                if user not in seen:
                    seen.add(user)
                    item(key, user, acct, normalise_dn(dn), dn, via)
        else:
            for user, appr in sorted(approved.get(key, {}).items()):
                if appr["status"] != "active":
                    continue  # waiting for a signature: access not given yet
                member_keys.append(f"user:{user}")
                item(key, user, people.by_user.get(user), f"user:{user}", None, None)
        systems[key] = {
            "name": system.name,
            "approvers": list(system.approvers),
            "group": cfg.group_dn(system.group) if system.group else None,
            "members": sorted(member_keys),
            "fingerprint": fingerprint(member_keys),
        }
    return systems, items, notes


# -- start --


def out_folder(cfg: Config, state: State, out_dir: str | None) -> Path:
    """--out, else [access] recertify_dir, else a folder beside the state store."""
    if out_dir:
        return Path(out_dir).expanduser()
    if cfg.access.recertify_dir:
        return Path(cfg.access.recertify_dir)
    return Path(state.path).parent / "recertify"


def start_plan(
    cfg: Config,
    directory: Directory,
    state: State,
    systems: list[str] | None = None,
    due: str | dt.date | None = None,
    out_dir: str | None = None,
) -> Plan:
    """Open a campaign over `systems` (every configured one by default) and write one decisions file per
    approver. Refused while another open campaign covers one of them."""
    keys = list(dict.fromkeys(cfg.system_key(k) for k in systems)) if systems else list(cfg.systems)
    if not keys:
        raise ConfigError(f"{cfg.source}: no [systems.*] tables: nothing to recertify")
    day = parse_date(due, "--due", future=True) if due else today() + dt.timedelta(days=cfg.access.recertify_days)
    busy = [(c, k) for c in rec.campaigns(state, open_only=True) for k in keys if k in c["systems"]]
    if busy:
        listed = "; ".join(f"{k} in campaign {c['id']} ({c['code']}, due {c['due']})" for c, k in busy)
        raise RefusedError(
            f"a recertification is still open for {listed}; nothing was changed",
            hint="close it first (aupctl access recertify close --campaign ID), or start one for other systems",
        )
    folder = out_folder(cfg, state, out_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} (access.recertify_dir or --out) is not a folder")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write into {folder} (access.recertify_dir or --out); nothing was changed")
    meta, items, notes = survey(cfg, directory, state, keys)
    code = f"{today():%Y%m%d}-{secrets.token_hex(2).upper()}"
    names = ", ".join(m["name"] for m in meta.values()) or "no systems"
    plan = Plan(f"start recertification {code} of {names}, due {day.isoformat()} (policy {CLAUSE})")
    plan.notes.extend(notes)
    if not meta:
        return plan
    plan.add(
        Change(
            "recertify-start",
            code,
            f"open campaign {code}: {len(items)} member(s) of {len(meta)} system(s), decisions due {day.isoformat()}",
            run=lambda: {
                "campaign": rec.create(
                    state, code=code, due=day.isoformat(), systems=meta, out_dir=str(folder), items=items
                )
            },
            details={"campaign": code, "due": day.isoformat(), "systems": list(meta), "members": len(items)},
            local=True,
        )
    )
    counts: dict[str, int] = {}
    for i in items:
        counts[i["system"]] = counts.get(i["system"], 0) + 1
    files = file_names(code, _approvers_of(meta))
    for approver, their in _approvers_of(meta).items():
        path = folder / files[approver]
        listed = ", ".join(f"{meta[k]['name']} ({counts.get(k, 0)})" for k in their)
        plan.add(
            Change(
                "recertify-file",
                approver,
                f"write {path} for {approver}: {listed}",
                run=_writer(state, code, approver, path),
                details={"campaign": code, "file": str(path), "systems": their},
            )
        )
    plan.summary = {"members": len(items), "systems": len(meta), "files": len(plan.changes) - 1}
    return plan


def _approvers_of(meta: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, m in meta.items():
        for a in m["approvers"]:
            out.setdefault(a, []).append(key)
    return out


def _writer(state: State, code: str, approver: str, path: Path) -> Any:
    def run() -> dict[str, Any]:
        camp = load_campaign(state, code)
        data = decisions_csv(camp, approver)
        write_private(path, data)
        return {"bytes": len(data)}

    return run


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (names and access of staff), never through a symlink."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def approver_name(approver: str) -> str:
    """The name of an approver written "Mrs A Patel <a.patel@school.example>": "Mrs A Patel"."""
    return approver.split("<", 1)[0].strip() or approver.strip()


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", approver_name(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60] or "approver"


def file_names(code: str, approvers: dict[str, list[str]] | list[str]) -> dict[str, str]:
    """approver -> their file name (unique, ASCII, from the name)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for a in approvers:
        base = f"recertify-{code}-{_slug(a)}"
        name, n = f"{base}.csv", 2
        while name in used:
            name, n = f"{base}-{n}.csv", n + 1
        used.add(name)
        out[a] = name
    return out


def decisions_csv(camp: Campaign, approver: str) -> bytes:
    """The approver's file: their systems' members, `decision` and `note` to fill in (UTF-8 with a BOM, so
    Excel reads the names right; every cell through csv_cell, so a name cannot be a formula, break a row or
    reorder what the approver reads)."""
    their = [k for k, m in camp.systems.items() if approver in m["approvers"]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for i in camp.items:
        if i["system"] not in their:
            continue
        d = camp.decisions.get(i["id"])
        mine = d if d and d["approver"] == approver else None
        row = {
            **i,
            "campaign": camp.code,
            "system_name": camp.systems[i["system"]]["name"],
            "via": group_name(i["via"]) if i["via"] else "",
            "aup_signed": "yes" if i["aup_signed"] else "no",
            "approver": approver,
            "decision": mine["decision"] if mine else "",
            "note": mine["note"] if mine else "",
        }
        w.writerow([csv_cell(str(row.get(c) or "")) for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8-sig")


def letters(campaign: Campaign) -> list[dict[str, Any]]:
    """What to send each approver of the campaign (the mail layer's Letter): to (the approver as the config
    writes them, "Name <address>" allowed), subject, template, context, attachments, why, key (once per
    campaign and approver)."""
    out: list[dict[str, Any]] = []
    files = file_names(campaign.code, campaign.approvers())
    for approver, their in campaign.approvers().items():
        data = decisions_csv(campaign, approver)
        systems = [
            {
                "key": k,
                "name": campaign.systems[k]["name"],
                "members": sum(1 for i in campaign.items if i["system"] == k),
            }
            for k in their
        ]
        count = sum(s["members"] for s in systems)
        if not count:  # their systems' groups are empty: nobody to ask about, so no letter (the file stays)
            continue
        out.append(
            {
                "to": approver,
                "subject": f"Please review who has access to {', '.join(s['name'] for s in systems)} by {campaign.due}",
                "template": TEMPLATE,
                "context": {
                    "approver": approver_name(approver),
                    "campaign": campaign.code,
                    "campaign_id": campaign.id,
                    "due": campaign.due,
                    "systems": systems,
                    "members": count,
                    "filename": files[approver],
                    "clause": CLAUSE,
                    "decisions": list(DECISIONS),
                },
                "attachments": [(files[approver], data, "text/csv")],
                "why": f"recertification {campaign.code} of {', '.join(their)} (policy {CLAUSE})",
                "key": f"recertify:{campaign.code}:{approver_name(approver).casefold()}",
            }
        )
    return out
