"""Every figure of the termly report, as one dict (what --format json prints and the templates draw).

Built per state store (per school) from the records and the snapshots each audit keeps, plus what the
directory holds now where that is cheap (the staff list for AUP signatures, privileged groups, whether
withdrawn leavers are still disabled): `Now`, read once by read_now() or made up by the benchmark. A trust's
roll-up is a loop: build_school() for each school, then rollup().

Terms (England): autumn 1 Sep - 31 Dec, spring 1 Jan - 31 Mar, summer 1 Apr - 31 Aug (Easter moves; the
report's spring ends on 31 March so that every day belongs to one term).

Sections that other jobs feed are data-driven: a findings job that passes `snapshot="KIND"` to
output.render_findings appears in the report under FINDINGS_SECTIONS[KIND] with its trend; a section with
no data says "not run this term". Records other jobs keep plug in through PLUGINS (see there).
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..errors import InputError
from ..records import approvals, snapshots, termly
from ..records import evidence as evidence_records
from ..records.tasks import list_tasks
from ..state import State

TERMS = ("autumn", "spring", "summer")
_TERM = re.compile(r"(autumn|spring|summer)-(\d{4})")


@dataclass(frozen=True)
class Period:
    label: str  # "autumn 2026" or "1 Oct 2026 to 30 Nov 2026"
    start: dt.date
    end: dt.date  # inclusive
    term: str | None = None  # "autumn-2026" when it is a term

    @property
    def lo(self) -> str:  # ISO bounds for the store's text timestamps: lo <= at < hi
        return self.start.isoformat()

    @property
    def hi(self) -> str:
        return (self.end + dt.timedelta(days=1)).isoformat()

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "from": self.lo, "to": self.end.isoformat(), "term": self.term}


def term_bounds(name: str, year: int) -> tuple[dt.date, dt.date]:
    if name == "autumn":
        return dt.date(year, 9, 1), dt.date(year, 12, 31)
    if name == "spring":
        return dt.date(year, 1, 1), dt.date(year, 3, 31)
    return dt.date(year, 4, 1), dt.date(year, 8, 31)


def term_of(day: dt.date) -> str:
    name = "spring" if day.month <= 3 else "summer" if day.month <= 8 else "autumn"
    return f"{name}-{day.year}"


def next_term(period: Period) -> tuple[dt.date, dt.date]:
    """The term after the period's end (licences expiring next term)."""
    day = period.end + dt.timedelta(days=1)
    name, year = term_of(day).split("-")
    return term_bounds(name, int(year))


def period_of(term: str | None, start: str | None, end: str | None, today: dt.date) -> Period:
    """--term autumn-2026, or --from/--to, or (neither) the term today is in."""
    from ..dates import parse_date

    if term and (start or end):
        raise InputError("give --term or --from/--to, not both")
    if start or end:
        if not (start and end):
            raise InputError("--from and --to go together (or give --term autumn-2026)")
        lo, hi = parse_date(start, "--from"), parse_date(end, "--to")
        if hi < lo:
            raise InputError(f"--to {hi.isoformat()} is before --from {lo.isoformat()}")
        return Period(f"{lo:%-d %b %Y} to {hi:%-d %b %Y}", lo, hi)
    term = (term or term_of(today)).strip().lower()
    m = _TERM.fullmatch(term)
    if not m:
        raise InputError(
            f"--term {term!r} is not a term", hint="autumn-2026, spring-2027 or summer-2027 (autumn: Sep-Dec)"
        )
    lo, hi = term_bounds(m.group(1), int(m.group(2)))
    return Period(f"{m.group(1)} term {m.group(2)}", lo, hi, term)


# -- what the directory holds now --------------------------------------------------------------------------


@dataclass
class Now:
    """Read from the directory once per school (cheap): for the AUP share, admin accounts, leavers."""

    staff: list[dict[str, Any]]  # `aup status` rows: username, name, role, signed, signed_on...
    privileged: dict[str, int] = field(default_factory=dict)  # privileged group (its name) -> members
    admins: int = 0  # distinct accounts in any privileged group (one in two groups counts once)
    leavers_enabled: list[dict[str, Any]] = field(default_factory=list)  # withdrawn leavers enabled again
    names: dict[str, str] = field(default_factory=dict)  # username (lower) -> display name
    read: bool = True  # False: the directory was not read (sections say so)


def read_now(cfg: Config, directory: Any, state: State) -> Now:
    """The directory's part of the report: one pass over the staff, the privileged groups, the leavers."""
    from ..access.aup import status as aup_status
    from ..directory import group_name
    from ..passwords.audit import privileged_members

    staff = aup_status(cfg, directory, state)
    # keyed by the name privileged_members labels them with: a group the config names by DN (AD's
    # "CN=Domain Admins,CN=Users,...") is counted under its cn, not listed twice (once as 0)
    groups: dict[str, int] = {(group_name(g) if "=" in g else g): 0 for g in cfg.directory.privileged_groups}
    held_by = privileged_members(cfg, directory)
    for held in held_by.values():
        for g in held:
            groups[g] = groups.get(g, 0) + 1
    enabled = []
    for row in termly.withdrawn_leavers(state):
        acct = directory.flavour.find_user(directory, row["username"])
        if acct is not None and not acct.disabled:
            enabled.append({"username": row["username"], "name": acct.name, "done_at": row["done_at"]})
    names = {r["username"].lower(): r["name"] for r in staff}
    admins = sum(1 for held in held_by.values() if held)
    return Now(staff=staff, privileged=groups, admins=admins, leavers_enabled=enabled, names=names)


NOT_READ = Now(staff=[], read=False)


# -- the sections ------------------------------------------------------------------------------------------

# A findings job's snapshots -> its section: title, AUP clauses, DfE standard. A kind not listed here is
# still shown (under its own name) when it has snapshots in the period.
FINDINGS_SECTIONS: dict[str, dict[str, Any]] = {
    "access-review": {"title": "Access review", "clauses": ["1.3", "9.1"], "dfe": "accounts"},
    "password-audit": {"title": "Passwords and admin accounts", "clauses": ["6.2"], "dfe": "passwords"},
    "laptop-audit": {"title": "Laptops", "clauses": ["1.4", "6.7", "6.8"], "dfe": "devices"},
    # written by `estate audit` and `domain audit` (other helpers): shown as soon as they keep snapshots
    "estate-audit": {"title": "Servers and network (estate audit)", "clauses": ["6.7"], "dfe": "network"},
    "domain-audit": {"title": "Domain (domain audit)", "clauses": ["6.2"], "dfe": "domain"},
}

# The DfE cyber security standards for schools and colleges, as rows of "at a glance": key -> plain words.
DFE: dict[str, str] = {
    "accounts": "Accounts have only the access they need, and are removed when staff leave",
    "passwords": "Accounts are protected by strong passwords; admin accounts are few and separate",
    "devices": "Devices are protected from malware, encrypted and kept up to date",
    "licences": "Software is licensed and supported",
    "network": "The network boundary and servers are secured and kept up to date",
    "domain": "The directory's own security settings meet Cyber Essentials",
    "aup": "Staff have read and accepted the rules (AUP declaration)",
    "backups": "Backups are kept and a restore is tested",
    "risk": "The cyber risk assessment is reviewed every term",
    "training": "Staff and governors are trained in cyber security",
    "response": "There is a cyber response plan, and serious incidents are reported",
}

# Who acts on each standard ([report] technician / headteacher / governors name them).
OWNER = {
    "accounts": "technician",
    "passwords": "technician",
    "devices": "technician",
    "licences": "technician",
    "network": "technician",
    "domain": "technician",
    "aup": "headteacher",
    "backups": "technician",
    "risk": "headteacher",
    "training": "headteacher",
    "response": "governors",
}


def _plugin_recertification(cfg: Config, state: State, period: Period) -> dict[str, Any] | None:
    """The last recertification opened in the period (`access recertify`) and its answers so far."""
    from ..access.recertify import campaign_status
    from ..records import recertify as campaigns

    mine = [c for c in campaigns.campaigns(state) if period.lo <= c["opened_at"] < period.hi]
    if not mine:
        return None
    status = campaign_status(state, mine[0]["id"])  # newest first
    c, systems = status["campaign"], status["systems"]
    return {
        "date": c["opened_at"][:10],
        "code": c["code"],
        "due": c["due"],
        "status": c["status"],
        "answers": {
            "kept": sum(s["keep"] for s in systems),
            "removed": sum(s["remove"] for s in systems),
            "no answer": c["undecided"],
        },
        "open": c["undecided"] if c["status"] == "open" else 0,
    }


# Records other jobs keep, each read by one function (config, store, period) -> dict or None (None: "not run
# this term").
PLUGINS: dict[str, Callable[[Config, State, Period], dict[str, Any] | None]] = {
    "recertification": _plugin_recertification,
}


def _findings(state: State, kind: str, period: Period) -> dict[str, Any]:
    """A findings job's part: its latest run in the period and the trend over the period."""
    runs = snapshots.between(state, period.lo, period.hi, kind)
    meta = FINDINGS_SECTIONS.get(kind, {"title": kind, "clauses": [], "dfe": None})
    if not runs:
        return {"kind": kind, **meta, "run": False, "latest": None, "trend": [], "runs": 0}
    last = runs[-1]
    trend = [{"at": r["at"], "total": r["total"], "by_severity": r["by_severity"]} for r in runs]
    return {"kind": kind, **meta, "run": True, "latest": last, "trend": trend, "runs": len(runs)}


def _rag_findings(part: dict[str, Any]) -> str:
    if not part["run"]:
        return "amber"
    sev = part["latest"]["by_severity"]
    if sev.get("high"):
        return "red"
    return "amber" if part["latest"]["total"] else "green"


def _people(cfg: Config, state: State, now: Now, period: Period) -> dict[str, Any]:
    staff = now.staff
    signed = sum(1 for r in staff if r["signed"])
    by_role: dict[str, dict[str, int]] = {}
    for r in staff:
        role = r["role"] or "no role"
        cell = by_role.setdefault(role, {"staff": 0, "signed": 0})
        cell["staff"] += 1
        cell["signed"] += 1 if r["signed"] else 0
    holders: dict[str, dict[str, Any]] = {}
    for key, system in cfg.systems.items():
        holders[key] = {"system": key, "name": system.name, "holders": []}
    for a in approvals.live(state):
        entry = holders.setdefault(a["system"], {"system": a["system"], "name": a["system"], "holders": []})
        entry["holders"].append(
            {
                "username": a["username"],
                "name": now.names.get(a["username"].lower(), a["username"]),
                "status": a["status"],
                "approver": a["approver"],
                "granted_at": a["granted_at"][:10],
                "until": a["until"],
            }
        )
    for entry in holders.values():
        entry["holders"].sort(key=lambda h: (h["name"].lower(), h["username"].lower()))
        entry["count"] = len(entry["holders"])
        entry["waiting"] = sum(1 for h in entry["holders"] if h["status"] == "waiting")
        by: dict[str, int] = {}
        for h in entry["holders"]:
            by[h["approver"]] = by.get(h["approver"], 0) + 1
        entry["approvers"] = dict(sorted(by.items(), key=lambda kv: -kv[1]))
    return {
        "clauses": ["1.3", "8.1", "9.1"],
        "aup": {
            "read": now.read,
            "version": cfg.school.aup_version,
            "staff": len(staff),
            "signed": signed,
            "unsigned": len(staff) - signed,
            "share": round(signed / len(staff), 4) if staff else None,
            "by_role": dict(sorted(by_role.items())),
        },
        "systems": list(holders.values()),
        "approvals": termly.approvals_between(state, period.lo, period.hi),
        "recertification": PLUGINS["recertification"](cfg, state, period),
        "review": _findings(state, "access-review", period),
    }


def _jml(state: State, now: Now, period: Period) -> dict[str, Any]:
    joined = termly.joiners(state, period.lo, period.hi)
    moved = termly.audited_targets(state, ("set-role",), period.lo, period.hi)
    left = termly.leavers_done(state, period.lo, period.hi)
    days = []
    for r in left:
        done = dt.date.fromisoformat(r["done_at"][:10])
        days.append(max(0, (done - dt.date.fromisoformat(r["leave_on"][:10])).days))
    open_tasks = list_tasks(state, open_only=True)
    kinds: dict[str, int] = {}
    for t in open_tasks:
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    oldest = min((t["opened_at"] for t in open_tasks), default=None)
    return {
        "clauses": ["1.1", "1.4", "4.2", "9.2"],
        "joiners": len(joined),
        "movers": len(moved - {j["username"].lower() for j in joined}),
        "leavers": len(left),
        "leavers_scheduled": termly.scheduled_leavers(state),
        "days_to_withdraw": {
            "median": statistics.median(days) if days else None,
            "worst": max(days) if days else None,
            "count": len(days),
        },
        "leavers_still_enabled": len(now.leavers_enabled) if now.read else None,
        "leavers_enabled": now.leavers_enabled,
        "open_tasks": len(open_tasks),
        "open_tasks_by_kind": dict(sorted(kinds.items())),
        "oldest_open_task": oldest[:10] if oldest else None,
    }


def _passwords(state: State, now: Now, period: Period) -> dict[str, Any]:
    part = _findings(state, "password-audit", period)
    latest = part["latest"] or {"by_check": {}}
    first = snapshots.between(state, period.lo, period.hi, "password-audit")[:1]
    policy = {k: v for k, v in latest["by_check"].items() if k.startswith("policy-") or k == "no-password-policy"}
    return {
        **part,
        "stale": latest["by_check"].get("stale-account", 0) if part["run"] else None,
        "admin_groups": dict(sorted(now.privileged.items())),
        "admin_accounts": now.admins if now.read else None,
        "privileged_staff_findings": {
            "start": first[0]["by_check"].get("privileged-staff-account", 0) if first else None,
            "now": latest["by_check"].get("privileged-staff-account", 0) if part["run"] else None,
        },
        "policy_findings": policy,
        "policy_meets_cyber_essentials": (not policy) if part["run"] else None,
    }


def _equipment(cfg: Config, state: State, period: Period, today: dt.date) -> dict[str, Any]:
    from ..laptops.licences import report as licence_report
    from ..records.devices import devices

    active = devices(state)
    seen = termly.checked_in(state, period.lo, period.hi)
    part = _findings(state, "laptop-audit", period)
    lic = licence_report(cfg, state, today)
    nlo, nhi = next_term(Period("", period.start, period.end))
    expiring = [
        r["product"] for r in lic.rows if r.get("expires") and nlo <= dt.date.fromisoformat(r["expires"]) <= nhi
    ]
    return {
        **part,
        "laptops": len(active),
        "checked_in": sum(1 for d in active if d["tag"].lower() in seen),
        "licences": [
            {k: r.get(k) for k in ("product", "seats", "used", "free", "expires", "status")} for r in lic.rows
        ],
        "licence_findings": len(lic.findings),
        "licences_expiring_next_term": expiring,
    }


def _evidence(state: State, period: Period, today: dt.date) -> dict[str, Any]:
    rows = evidence_records.rows(state)
    out = []
    for kind, (what, months) in evidence_records.KINDS.items():
        mine = [r for r in rows if r["kind"] == kind and r["happened_on"] <= period.end.isoformat()]
        last = mine[0] if mine else None
        in_term = [r for r in mine if r["happened_on"] >= period.lo]
        if kind == "incident":
            status = "recorded" if in_term else "none"  # none recorded is not a gap
        elif last is None:
            status = "missing"
        elif months == 0:
            status = "current" if in_term else "out of date"
        elif months is None:
            status = "current"
        else:
            limit = period.end - dt.timedelta(days=round(months * 30.44))
            status = "current" if last["happened_on"] >= limit.isoformat() else "out of date"
        out.append(
            {
                "kind": kind,
                "what": what,
                "status": status,
                "last": last["happened_on"] if last else None,
                "note": last["note"] if last else None,
                "file": last["file_path"] if last else None,
                "this_period": len(in_term),
                "entries": [
                    {"on": r["happened_on"], "note": r["note"], "file": r["file_path"]}
                    for r in (in_term if kind == "incident" else [])
                ],
            }
        )
    return {"clauses": ["6.0", "8.1"], "kinds": out}


def _glance(cfg: Config, school: dict[str, Any], today: dt.date, period: Period) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    s = school["sections"]

    def findings_row(key: str, part: dict[str, Any], extra_red: bool = False, extra: str = "") -> None:
        if not part["run"]:
            text = f"{part['title']}: not run this term{extra}"
            rows.append({"key": key, "rag": "red" if extra_red else "amber", "evidence": text, "date": None})
            return
        last = part["latest"]
        rag = "red" if extra_red else _rag_findings(part)
        text = f"{part['title']}: {last['total']} finding(s) in {last['subjects']} checked{extra}"
        if not last["subjects"] and rag == "green":  # a clean run over nothing is no evidence of being safe
            rag, text = "amber", f"{part['title']}: ran, but found nothing to check{extra}"
        rows.append({"key": key, "rag": rag, "evidence": text, "date": last["at"][:10]})

    jml = s["jml"]
    enabled = jml["leavers_still_enabled"] or 0
    findings_row(
        "accounts", s["people"]["review"], bool(enabled), f"; {enabled} leaver(s) still enabled" if enabled else ""
    )
    findings_row("passwords", s["passwords"])
    findings_row("devices", s["equipment"])
    eq = s["equipment"]
    rows.append(
        {
            "key": "licences",
            "rag": "amber" if eq["licence_findings"] else "green",
            "evidence": f"{len(eq['licences'])} licence(s), {eq['licence_findings']} finding(s)",
            "date": today.isoformat(),
        }
    )
    for kind in ("estate-audit", "domain-audit"):
        part = s["extra"].get(kind) or _empty_part(kind)
        findings_row(FINDINGS_SECTIONS[kind]["dfe"], part)
    aup = s["people"]["aup"]
    if aup["share"] is None:
        rows.append({"key": "aup", "rag": "amber", "evidence": "the staff list was not read", "date": None})
    else:
        rag = "green" if aup["share"] >= 0.95 else "amber" if aup["share"] >= 0.8 else "red"
        text = f"{aup['signed']} of {aup['staff']} staff signed version {aup['version']}"
        rows.append({"key": "aup", "rag": rag, "evidence": text, "date": today.isoformat()})
    ev = {e["kind"]: e for e in s["evidence"]["kinds"]}

    def ev_row(key: str, kinds: list[str]) -> None:
        parts = [ev[k] for k in kinds]
        worst = {"missing": 2, "out of date": 1}
        level = max((worst.get(p["status"], 0) for p in parts), default=0)
        rag = ["green", "amber", "red"][level]
        text = "; ".join(f"{p['what']}: {p['status']}" + (f" ({p['last']})" if p["last"] else "") for p in parts)
        dates = [p["last"] for p in parts if p["last"]]
        rows.append({"key": key, "rag": rag, "evidence": text, "date": max(dates) if dates else None})

    ev_row("backups", ["backup-tested"])
    ev_row("risk", ["risk-assessment"])
    ev_row("training", ["cyber-training", "governor-training"])
    ev_row("response", ["response-plan", "cyberalarm", "incident"])
    for r in rows:
        r["standard"] = DFE[r["key"]]
        r["who"] = _who(cfg, OWNER[r["key"]])
    order = {"red": 0, "amber": 1, "green": 2}
    actions = []
    for r in sorted((r for r in rows if r["rag"] != "green"), key=lambda r: order[r["rag"]])[:3]:
        days = 14 if r["rag"] == "red" else 30
        by = today + dt.timedelta(days=days) if r["rag"] == "red" else _by(today, period, days)
        actions.append(
            {"what": _action_text(r), "why": r["evidence"], "who": r["who"], "by": by.isoformat(), "rag": r["rag"]}
        )
    return {"standards": rows, "actions": actions}


def _by(today: dt.date, period: Period, days: int) -> dt.date:
    """An amber action: within `days`, or by the end of the term when that is sooner and still ahead."""
    soon = today + dt.timedelta(days=days)
    return period.end if today < period.end < soon else soon


ACTION = {
    "accounts": "Remove access that is not approved or no longer needed (aupctl access review --fix)",
    "passwords": "Fix the weak, shared or unchanged passwords and the stale and admin accounts",
    "devices": "Bring the laptops with findings in: antivirus, encryption, updates",
    "licences": "Settle the licences that are over their seats or expiring",
    "network": "Run the estate audit and fix what it finds",
    "domain": "Run the domain audit and fix what it finds",
    "aup": "Collect the missing AUP declarations",
    "backups": "Test a restore from backup, and record it",
    "risk": "Review the cyber risk assessment, and record it",
    "training": "Arrange cyber security training for staff and a governor",
    "response": "Write or review the cyber response plan; register with Police CyberAlarm",
}


def _action_text(row: dict[str, Any]) -> str:
    return ACTION[row["key"]]


def _who(cfg: Config, role: str) -> str:
    rep = cfg.report
    return {"technician": rep.technician, "headteacher": rep.headteacher, "governors": rep.governors}[role]


def _empty_part(kind: str) -> dict[str, Any]:
    meta = FINDINGS_SECTIONS.get(kind, {"title": kind, "clauses": [], "dfe": None})
    return {"kind": kind, **meta, "run": False, "latest": None, "trend": [], "runs": 0}


def build_school(
    cfg: Config, state: State, now: Now, period: Period, *, today: dt.date | None = None, key: str | None = None
) -> dict[str, Any]:
    """One school's report data from its store (and what its directory holds now)."""
    today = today or dt.date.today()
    sections: dict[str, Any] = {
        "people": _people(cfg, state, now, period),
        "jml": _jml(state, now, period),
        "passwords": _passwords(state, now, period),
        "equipment": _equipment(cfg, state, period, today),
        "evidence": _evidence(state, period, today),
    }
    known = {"access-review", "password-audit", "laptop-audit"}
    kinds = set(FINDINGS_SECTIONS) | {r["kind"] for r in snapshots.between(state, period.lo, period.hi)}
    sections["extra"] = {k: _findings(state, k, period) for k in sorted(kinds - known)}
    school = {"key": key, "name": cfg.school.name, "directory_read": now.read, "sections": sections}
    school["glance"] = _glance(cfg, school, today, period)
    return school


def rollup(schools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trust's row per school: the RAG counts and the headline figures (--all-schools)."""
    out = []
    for s in schools:
        rags = [r["rag"] for r in s["glance"]["standards"]]
        aup = s["sections"]["people"]["aup"]
        out.append(
            {
                "key": s["key"],
                "name": s["name"],
                "red": rags.count("red"),
                "amber": rags.count("amber"),
                "green": rags.count("green"),
                "aup_share": aup["share"],
                "review_findings": (s["sections"]["people"]["review"]["latest"] or {}).get("total"),
                "leavers_still_enabled": s["sections"]["jml"]["leavers_still_enabled"],
            }
        )
    return out


def build(schools: list[dict[str, Any]], period: Period, *, today: dt.date | None = None) -> dict[str, Any]:
    """The report: the period, each school's data, and (for more than one school) the trust's roll-up."""
    return {
        "period": period.as_dict(),
        "generated_on": (today or dt.date.today()).isoformat(),
        "schools": schools,
        "rollup": rollup(schools) if len(schools) > 1 else None,
    }
