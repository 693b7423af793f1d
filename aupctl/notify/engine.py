"""`aupctl notify`: the day's reminders as a Plan of letters, each sent once per stage.

What is due is computed from the records (laptops' check-in dates, grants waiting for a signature,
leavers' open tasks) and, through the recertification hook, the approvers' undecided reviews. A
reminder is (key, stage): its key names what it is about, its stage how far along (7 days before, on
the day, each week after...). The notices table holds the pairs sent, so a re-run the same day sends
nothing, and a letter is recorded only once the SMTP server has taken it: a run stopped by the server
sends the rest next time. Someone with no address is a Finding, never skipped in silence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..access.recertify import letters, load_campaign, pending_approvers
from ..findings import Finding
from ..mail import Address, Letter, Postbox, check_email, parse_address, render
from ..plan import Change, Plan
from ..records import approvals, notices
from ..records import recertify as campaigns
from ..records import tasks as task_records
from ..state import State
from .clauses import cite

if TYPE_CHECKING:
    from ..config import Config
    from ..directory import Account, Directory

WEEK = 7


@dataclass(frozen=True)
class Reminder:
    letter: Letter
    marks: tuple[tuple[str, str], ...]  # (key, stage) pairs recorded as sent once the server takes the letter
    about: str  # the person, laptop or system it is about (the audit entry's target)
    kind: str  # "laptop", "aup", "tasks", "recertify"
    stage: str


@dataclass(frozen=True)
class Pending:
    """One undecided recertification: an approver (as [systems.X] approvers writes them), a system key, the due date."""

    approver: str
    system: str
    due: dt.date


@dataclass
class Batch:
    reminders: list[Reminder] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def extend(self, other: Batch) -> None:
        self.reminders += other.reminders
        self.findings += other.findings


@dataclass
class NotifyRun:
    plan: Plan
    findings: list[Finding]
    reminders: list[Reminder]  # those in the plan (not yet sent)
    already: int  # reminders due today but sent before (at this stage)


class Outbox:
    """Sends through one Postbox, opened at the first letter: a dry run or an empty plan connects to nothing."""

    def __init__(self, cfg: Config, secret: str | None = None) -> None:
        self._settings = cfg.mail
        self._box: Postbox | None = None
        self._secret = secret
        self.sent = 0

    def ready(self, secret: str | None) -> None:
        """Check the settings and take the password before the first letter (a ConfigError then, exit 2, rather
        than a plan stopped at its first step); the connection still waits for the first letter."""
        self._secret = secret
        self._box = Postbox(self._settings, secret)

    def send(self, letter: Letter) -> None:
        if self._box is None:
            self._box = Postbox(self._settings, self._secret)
        self._box.send(letter)  # opens the connection at the first letter
        self.sent += 1

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None


# -- who has which address --


def accounts_of(directory: Directory, usernames: Iterable[str]) -> dict[str, Account]:
    """username (lower) -> Account, read in batches (one search per 100 people, no groups)."""
    wanted = sorted({u for u in usernames if u})
    out: dict[str, Account] = {}
    flavour = directory.flavour
    base = directory.cfg.directory.base_dn
    for i in range(0, len(wanted), 100):
        chunk = wanted[i : i + 100]
        for acct in flavour.iter_accounts(
            directory, base=base, ldap_filter=flavour.users_filter(chunk), with_groups=False
        ):
            out[acct.username.lower()] = acct
    return out


def _no_address(subject: str, clause: str, what: str, why: str) -> Finding:
    return Finding(subject, "no-mail-address", clause, "medium", f"{what} cannot be sent: {why}")


def _common(cfg: Config, today: dt.date) -> dict[str, Any]:
    tech = parse_address(cfg.notify.technician) if cfg.notify.technician else None
    return {
        "school": cfg.school.name,
        "today": today.isoformat(),
        "technician": (tech.name or tech.email) if tech else "the ICT technician",
        "technician_email": tech.email if tech else "",
    }


def _when(day: dt.date) -> str:
    return f"{day.strftime('%A')} {day.day} {day.strftime('%B %Y')}"


# -- laptops (policy 1.4): before the check-in is due, on the day, and each week after --


def laptop_stage(due: dt.date, today: dt.date, days_before: int) -> str | None:
    late = (today - due).days
    if late < 0:
        return "before" if -late <= days_before else None
    if late < WEEK:
        return "due"
    return f"overdue-{late // WEEK}"


def laptop_reminders(cfg: Config, state: State, people: dict[str, Account], today: dt.date) -> Batch:
    from ..laptops import inventory

    out = Batch()
    tech = cfg.notify.technician
    for device in inventory.devices(state):
        if not device.assigned_to:
            continue
        due = dt.date.fromisoformat(inventory.due_date(state, cfg, device))
        stage = laptop_stage(due, today, cfg.notify.laptop_days_before)
        if stage is None:
            continue
        user = device.assigned_to
        what = f"the laptop {device.tag} reminder ({stage}, check-in due {due.isoformat()})"
        reached = _reach(people, user, "1.4", what, out)
        if reached is None:
            continue
        acct, to = reached
        late = (today - due).days
        if stage == "before":
            subject = f"Your laptop {device.tag} is due for its check-in on {_when(due)}"
        elif late == 0:
            subject = f"Your laptop {device.tag} is due for its check-in today"
        else:
            subject = f"Your laptop {device.tag} is overdue for its check-in (due {_when(due)})"
        key = f"laptop:{device.tag}:{due.isoformat()}:{user.lower()}"
        context = {
            **_common(cfg, today),
            **cite("1.4"),
            "name": acct.name,
            "username": acct.username,
            "tag": device.tag,
            "due": _when(due),
            "due_iso": due.isoformat(),
            "stage": stage,
            "days_left": -late,
            "days_late": late,
        }
        letter = Letter(
            to=(to,),
            cc=(tech,) if tech else (),
            subject=subject,
            template="laptop-due",
            context=context,
            why=f"laptop {device.tag} check-in due {due.isoformat()} ({stage}), policy 1.4",
            key=key,
        )
        out.reminders.append(Reminder(letter, ((key, stage),), user, "laptop", stage))
    return out


def _reach(people: dict[str, Account], user: str, clause: str, what: str, out: Batch) -> tuple[Account, str] | None:
    """The person's account and their To header; else a finding in `out` saying why they cannot be mailed."""
    acct = people.get(user.lower())
    if acct is None:
        out.findings.append(_no_address(user, clause, what, f"no account {user!r} in the directory"))
        return None
    if not acct.email:
        out.findings.append(
            _no_address(user, clause, what, f"{acct.name} ({user}) has no mail address in the directory")
        )
        return None
    name = " ".join("".join(ch if ch.isprintable() else " " for ch in acct.name).split())  # one line, whatever it holds
    try:
        return acct, Address(name, check_email(acct.email.strip())).header()
    except ValueError as exc:
        out.findings.append(_no_address(user, clause, what, f"the directory's mail of {user} is not usable: {exc}"))
        return None


# -- the AUP (policy 9.1): new starters whose grants wait for their signature, weekly --


def aup_reminders(cfg: Config, state: State, people: dict[str, Account], today: dt.date) -> Batch:
    out = Batch()
    waiting: dict[str, list[dict[str, Any]]] = {}
    for row in approvals.live(state, status=("waiting",)):
        waiting.setdefault(row["username"].lower(), []).append(row)
    for user, rows in sorted(waiting.items()):
        since = min(dt.date.fromisoformat(r["granted_at"][:10]) for r in rows)
        stage = f"week-{max(0, (today - since).days) // WEEK}"
        systems = sorted({cfg.systems[r["system"]].name if r["system"] in cfg.systems else r["system"] for r in rows})
        name = rows[0]["username"]
        what = f"the AUP reminder ({stage}, waiting since {since.isoformat()})"
        reached = _reach(people, name, "9.1", what, out)
        if reached is None:
            continue
        acct, to = reached
        key = f"aup:{user}:{cfg.school.aup_version}"
        context = {
            **_common(cfg, today),
            **cite("9.1"),
            "name": acct.name,
            "username": acct.username,
            "systems": systems,
            "version": cfg.school.aup_version,
            "since": _when(since),
            "stage": stage,
        }
        letter = Letter(
            to=(to,),
            subject=f"Please sign the staff Acceptable Use Policy ({cfg.school.aup_version}) to get your access",
            template="aup-unsigned",
            context=context,
            why=f"AUP {cfg.school.aup_version} unsigned; access to {', '.join(systems)} waiting ({stage}), policy 9.1",
            key=key,
        )
        out.reminders.append(Reminder(letter, ((key, stage),), acct.username, "aup", stage))
    return out


# -- leavers' tasks open longer than [notify] task_days, to the technician, weekly --

_TASK_CLAUSE = {"revoke": "1.3", "grant": "1.3", "collect-laptop": "1.4", "mailbox": "7.2.3"}


def task_reminders(cfg: Config, state: State, today: dt.date) -> Batch:
    out = Batch()
    late: list[tuple[dict[str, Any], int, str]] = []
    for t in task_records.list_tasks(state, open_only=True):
        if not str(t["ref"] or "").startswith("leaver:"):
            continue
        age = (today - dt.date.fromisoformat(t["opened_at"][:10])).days
        if age <= cfg.notify.task_days:
            continue
        late.append((t, age, f"week-{(age - cfg.notify.task_days - 1) // WEEK}"))
    if not late:
        return out
    marks = tuple((f"task:{t['id']}", stage) for t, _, stage in late)
    if not cfg.notify.technician:
        out.findings.append(
            Finding(
                "notify.technician",
                "no-mail-address",
                "1.3",
                "medium",
                f"{len(late)} leaver task(s) open more than {cfg.notify.task_days} days, but [notify] technician "
                "is not set: no one can be reminded (`aupctl tasks list --open`)",
            )
        )
        return out
    items = [
        {
            "id": t["id"],
            "text": t["text"],
            "username": t["username"] or "",
            "opened": _when(dt.date.fromisoformat(t["opened_at"][:10])),
            "days": age,
            **cite(_TASK_CLAUSE.get(t["kind"], "1.3")),
        }
        for t, age, _ in late
    ]
    context = {**_common(cfg, today), **cite("1.3"), "tasks": items, "task_days": cfg.notify.task_days}
    n = len(items)
    letter = Letter(
        to=(cfg.notify.technician,),
        subject=f"{n} leaver task{'s' if n != 1 else ''} open more than {cfg.notify.task_days} days",
        template="leaver-tasks",
        context=context,
        why=f"leaver tasks open more than {cfg.notify.task_days} days: {', '.join(str(i['id']) for i in items)}",
        key="tasks:" + ",".join(str(i["id"]) for i in items),
    )
    stage = min(s for _, s in marks)
    out.reminders.append(Reminder(letter, marks, "tasks", "tasks", stage))
    return out


# -- recertification (policy 1.3): undecided approvers, before the due date --


def recertify_stage(due: dt.date, today: dt.date) -> str | None:
    left = (due - today).days
    if left < 0:
        return None  # past due: `access recertify close` reports what no one decided
    if left <= 1:
        return "last-day"
    if left <= WEEK:
        return "last-week"
    return "open"


def recertify_reminders(cfg: Config, pending: Sequence[Pending], today: dt.date) -> Batch:
    """THE RECERTIFICATION HOOK: one letter per approver listing their undecided systems, once per stage
    (open, in the last week, on the last day). `pending` is every (approver, system, due) with no decision
    yet; `pending_recertifications` below is where the campaign tables feed it."""
    out = Batch()
    by_approver: dict[str, list[tuple[Pending, str]]] = {}
    for item in pending:
        stage = recertify_stage(item.due, today)
        if stage is not None:
            by_approver.setdefault(item.approver, []).append((item, stage))
    for approver, items in sorted(by_approver.items()):
        addr: Address | None = None
        try:
            addr = parse_address(approver)
        except ValueError as exc:
            problem = str(exc)
        else:
            problem = "" if addr.email else "it is written without an address"
        systems = sorted({i.system for i, _ in items})
        if addr is None or not addr.email:
            where = "; ".join(f"systems.{s}.approvers" for s in systems)
            out.findings.append(
                _no_address(
                    approver,
                    "1.3",
                    f"the recertification reminder for {', '.join(systems)}",
                    f"{problem}: write it as Name <address> in {where}",
                )
            )
            continue
        marks = tuple((f"recertify:{approver.casefold()}:{i.system}:{i.due.isoformat()}", stage) for i, stage in items)
        first_due = min(i.due for i, _ in items)
        rows = [
            {
                "system": i.system,
                "name": cfg.systems[i.system].name if i.system in cfg.systems else i.system,
                "due": _when(i.due),
                "days_left": (i.due - today).days,
            }
            for i, _ in sorted(items, key=lambda x: (x[0].due, x[0].system))
        ]
        letter = Letter(
            to=(addr.header(),),
            subject=f"Access review: please decide who keeps access by {_when(first_due)}",
            template="recertify-due",
            context={**_common(cfg, today), **cite("1.3"), "name": addr.name or addr.email, "systems": rows},
            why=f"recertification undecided for {', '.join(systems)} (due {first_due.isoformat()}), policy 1.3",
            key=marks[0][0],
        )
        out.reminders.append(Reminder(letter, marks, approver, "recertify", min(s for _, s in items)))
    return out


def pending_recertifications(cfg: Config, state: State) -> list[Pending]:
    """The open recertification campaigns' undecided (approver, system, due), from `access recertify`'s tables."""
    return [Pending(a, s, due) for a, s, due in pending_approvers(state, dt.date.today())]


def campaign_letters(cfg: Config, state: State, today: dt.date) -> Batch:
    """The letter opening each open recertification campaign, to each approver, with their decisions CSV
    attached. `access recertify start` sends them when [mail] host is set; `notify` sends any a failed or
    mail-less start left unsent, until the due date. Sending one also counts as the reminder's "open" stage
    for its systems."""
    out = Batch()
    for row in campaigns.campaigns(state, open_only=True):
        if dt.date.fromisoformat(row["due"]) < today:
            continue  # past due: `access recertify close` reports the undecided; a letter asking now is too late
        camp = load_campaign(state, row["id"])
        for d in letters(camp):
            approver: str = d["to"]
            systems = [s["key"] for s in d["context"]["systems"]]
            try:
                addr = parse_address(approver)
                problem = "" if addr.email else "it is written without an address"
            except ValueError as exc:
                addr, problem = None, str(exc)
            if addr is None or not addr.email:
                where = "; ".join(f"systems.{s}.approvers" for s in systems)
                what = f"recertification {camp.code}'s decisions file (left in {camp.out_dir or 'the campaign folder'})"
                out.findings.append(
                    _no_address(approver, "1.3", what, f"{problem}: write it as Name <address> in {where}")
                )
                continue
            opened = tuple((f"recertify:{approver.casefold()}:{s}:{camp.due}", "open") for s in systems)
            letter = Letter(
                to=(addr.header(),),
                subject=d["subject"],
                template=d["template"],
                context={**_common(cfg, today), **cite("1.3"), **d["context"], "name": addr.name or addr.email},
                attachments=tuple(d["attachments"]),
                why=d["why"],
                key=d["key"],
            )
            out.reminders.append(Reminder(letter, ((d["key"], "start"), *opened), approver, "recertify", "start"))
    return out


def check_letters(cfg: Config, reminders: Iterable[Reminder]) -> None:
    """Render every letter once before any is sent: a broken template (or a bad address) stops the run with
    its message (exit 2) before the first letter, not part-way."""
    for r in reminders:
        render(r.letter, cfg.mail)


# -- the plan --

Source = Callable[["Config", State], list[Pending]]


def build(
    cfg: Config,
    state: State,
    directory: Directory,
    outbox: Outbox | None,
    *,
    today: dt.date,
    pending: Source | None = None,
) -> NotifyRun:
    """The letters due today and not sent at this stage, as one Plan (a change per letter), and the
    findings (someone with no address). outbox None: a plan to show only (its changes cannot run)."""
    users = {r["username"] for r in approvals.live(state, status=("waiting",))}
    from ..laptops import inventory

    users |= {d.assigned_to for d in inventory.devices(state) if d.assigned_to}
    people = accounts_of(directory, users)
    batch = Batch()
    batch.extend(laptop_reminders(cfg, state, people, today))
    batch.extend(aup_reminders(cfg, state, people, today))
    batch.extend(task_reminders(cfg, state, today))
    opening = campaign_letters(cfg, state, today)
    batch.extend(opening)
    due = recertify_reminders(cfg, (pending or pending_recertifications)(cfg, state), today)
    covered = {m for r in opening.reminders for m in r.marks}  # the opening letter is the "open" reminder
    due.reminders = [r for r in due.reminders if not all(m in covered for m in r.marks)]
    seen = {(f.subject, f.check) for f in batch.findings}
    due.findings = [f for f in due.findings if (f.subject, f.check) not in seen]  # one per approver
    batch.extend(due)
    return plan_of(cfg, state, batch, outbox)


def plan_of(cfg: Config, state: State, batch: Batch, outbox: Outbox | None) -> NotifyRun:
    done = notices.sent(state, [k for r in batch.reminders for k, _ in r.marks])
    plan = Plan("send the day's reminders")
    todo: list[Reminder] = []
    already = 0
    for r in batch.reminders:
        if all(m in done for m in r.marks):
            already += 1
            continue
        todo.append(r)
        plan.add(_change(state, r, outbox))
    if already:
        plan.notes.append(f"{already} reminder(s) already sent at this stage")
    plan.summary = {"letters": len(todo), "already_sent": already, "findings": len(batch.findings)}
    return NotifyRun(plan, batch.findings, todo, already)


def _change(state: State, r: Reminder, outbox: Outbox | None) -> Change:
    letter = r.letter
    to = ", ".join(letter.to)
    cc = f" (cc {', '.join(letter.cc)})" if letter.cc else ""

    def run() -> dict[str, Any]:
        if outbox is None:
            raise RuntimeError("a plan built without an outbox cannot send")
        outbox.send(letter)  # returns only when the server took it
        notices.mark_sent(state, r.marks, ", ".join(letter.to + letter.cc), letter.subject)
        return {}

    return Change(
        "send-mail",
        r.about,
        f"mail {to}{cc}: {letter.subject}",
        run,
        details={
            "to": list(letter.to),
            "cc": list(letter.cc),
            "subject": letter.subject,
            "why": letter.why,
            "kind": r.kind,
            "stage": r.stage,
            "key": letter.key,
        },
    )
