"""The approvers' decisions: `decide` (one), `apply FILE` (the returned file) and `close` (what nobody decided).

Each builds one plan that records the new decisions and carries out every decision that stands and is not
carried out yet: a removal takes the person out of the group (a task for a system managed by hand, or when
a nested group brings them in) and ends their approval with the approver's name and note; a keep renews
the approval's review clock (recertified_at). A decision already carried out is not done again, so
applying the same file twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import checks
from ...config import Config
from ...csvfile import read as read_csv
from ...directory import Directory, group_name
from ...errors import InputError, NotFoundError, RefusedError
from ...findings import Finding
from ...plan import Change, Plan
from ...records import approvals
from ...records import recertify as rec
from ...state import State, today
from ...text import FORMULA_START, refuse_unsafe
from ...text import problem as unsafe_problem
from ..tasks import task_change
from .campaign import CLAUSE, CSV_COLUMNS, DECISIONS, Campaign, current_members, load_campaign, member_label

NOBODY = "nobody (access.unanswered = remove)"
MAX_SHOWN = 50  # bad rows named in one message


@dataclass(frozen=True)
class Wanted:
    """A decision to record: about which item, what, by whom (as the config spells them), and from where."""

    item: dict[str, Any]
    decision: str
    approver: str
    note: str
    source: str  # 'decide', 'file', 'unanswered'


def match_approver(listed: list[str], given: str) -> str | None:
    """The approver as the config spells them: the whole entry, its name or address (case and spacing
    ignored), or a unique start of at least 3 characters; None if none matches."""

    def fold(text: str) -> str:
        return " ".join(text.split()).casefold()

    wanted = fold(given)
    if not wanted:
        return None
    for a in listed:
        name, _, rest = a.partition("<")
        if wanted in (fold(a), fold(name), fold(rest.rstrip(">"))):
            return a
    starts = [a for a in listed if fold(a).startswith(wanted)] if len(wanted) >= 3 else []
    return starts[0] if len(starts) == 1 else None


def changed_members(camp: Campaign, key: str, now: set[str] | None) -> str | None:
    """Why the system's members are no longer the list the campaign started with, or None. People this
    campaign removed count on neither side."""
    meta = camp.systems[key]
    removed = {i["member_key"] for i in camp.items if i["system"] == key and i["enacted"] == "remove"}
    if now is None:
        return f"{meta['name']}: its group {meta['group']} no longer exists (or the system is no longer configured)"
    start, cur = set(meta["members"]) - removed, now - removed
    if start == cur:
        return None
    known = {i["member_key"]: i["username"] for i in camp.items if i["system"] == key}

    def named(keys: list[str]) -> str:
        return ", ".join(known.get(k) or member_label(k) for k in keys[:10]) + (" ..." if len(keys) > 10 else "")

    parts = []
    joined, left = sorted(cur - start), sorted(start - cur)
    if joined:
        parts.append("joined: " + named(joined))
    if left:
        parts.append("left: " + named(left))
    return (
        f"the members of {meta['name']} changed since {camp.label} started on {camp.opened_at[:10]} "
        f"({'; '.join(parts)})"
    )


def _changed_hint(camp: Campaign) -> str:
    return (
        "the approvers decided on a member list that is no longer the group's: put the group back, or close "
        f"this campaign (aupctl access recertify close --campaign {camp.id}) and start a new one for that system"
    )


# -- decide --


def decide_plan(
    cfg: Config,
    directory: Directory,
    state: State,
    username: str,
    system: str,
    decision: str,
    by: str,
    note: str = "",
    campaign: str | None = None,
) -> Plan:
    """One approver's decision about one person, recorded and carried out."""
    key = cfg.system_key(system)
    decision = decision.strip().lower()
    if decision not in DECISIONS:
        raise InputError(f"decision {decision!r} must be keep or remove")
    note = refuse_unsafe(" ".join((note or "").split()), "--note") or ""
    camp = load_campaign(state, campaign, system=key)
    if key not in camp.systems:
        raise NotFoundError(f"{cfg.systems[key].name} ({key}) is not part of {camp.label}")
    if camp.status != "open":
        raise RefusedError(
            f"{camp.label} was closed on {(camp.closed_at or '')[:10]}: its decisions can no longer change"
        )
    item = camp.item(key, username)
    if item is None:
        raise NotFoundError(
            f"{username!r} is not among the members of {camp.systems[key]['name']} that {camp.label} asked about; "
            "nothing was changed",
            hint="`aupctl access recertify status` shows the campaign; someone who joined since is reviewed next term",
        )
    approvers = camp.systems[key]["approvers"]
    who = match_approver(approvers, by)
    if who is None:
        raise RefusedError(
            f"{by!r} is not an approver of {camp.systems[key]['name']} (systems.{key}.approvers: "
            f"{'; '.join(approvers) or 'none'}); nothing was changed"
        )
    if item["enacted"] == "remove" and decision == "keep":
        raise RefusedError(
            f"{item['username']} was already removed from {camp.systems[key]['name']} by {camp.label}; "
            "nothing was changed",
            hint=f"give access again with: aupctl access grant {item['username']} {key} --approved-by NAME",
        )
    why = changed_members(camp, key, current_members(cfg, directory, state, [key])[key])
    if why:
        raise RefusedError(f"{why}; nothing was changed", hint=_changed_hint(camp))
    plan = Plan(f"recertification {camp.code}: {who} decides {decision} for {item['username']} in {key}")
    _carry_out(cfg, directory, state, camp, [Wanted(item, decision, who, note, "decide")], plan)
    if plan.empty:
        plan.notes.append(f"{item['username']}: {decision} is already recorded and carried out")
    return plan


# -- apply FILE --


def _plain(value: str) -> str:
    """A cell as the person meant it: the quote written before a formula-like start is taken off again."""
    return value[1:] if value.startswith("'") and value[1:2] in FORMULA_START else value


def apply_plan(cfg: Config, directory: Directory, state: State, path: str | Path) -> Plan:
    """The returned decisions file: every row checked first (one bad row refuses the file, each named by its
    line), then one plan for every campaign it answers."""
    table = read_csv(
        path,
        required=["system", "username", "decision"],
        optional=[c for c in CSV_COLUMNS if c not in ("system", "username", "decision")],
        max_bytes=cfg.import_.max_bytes,
    )
    errors: list[str] = []
    folded = {k.casefold(): k for k in cfg.systems}
    camps: dict[str, Campaign | None] = {}
    wanted: dict[int, list[Wanted]] = {}  # campaign id -> decisions
    seen: dict[tuple[int, int], tuple[int, str, str]] = {}
    rows_by_system: dict[tuple[int, str], list[int]] = {}
    by_id: dict[int, Campaign] = {}
    for row in table.rows:
        line = row.line
        values = {k: _plain(v) for k, v in row.values.items()}
        system_text, user = values.get("system", ""), values.get("username", "")
        key = folded.get(system_text.casefold())
        if not system_text:
            errors.append(f"line {line}: system is empty")
            continue
        if key is None:
            errors.append(f"line {line}: unknown system {system_text!r} (known: {', '.join(cfg.systems) or 'none'})")
            continue
        ref = values.get("campaign", "")
        cache_key = ref.upper() if ref else f"open:{key}"
        if cache_key not in camps:
            try:
                camps[cache_key] = load_campaign(state, ref or None, system=key)
            except NotFoundError:
                camps[cache_key] = None
        camp = camps[cache_key]
        if camp is None:
            errors.append(f"line {line}: " + (f"no campaign {ref!r}" if ref else f"no open campaign covers {key}"))
            continue
        by_id.setdefault(camp.id, camp)
        camp = by_id[camp.id]
        if key not in camp.systems:
            errors.append(f"line {line}: system {key} is not part of {camp.label}")
            continue
        if not user:
            errors.append(f"line {line}: username is empty")
            continue
        item = camp.item(key, user)
        if item is None:
            errors.append(f"line {line}: unknown person {user!r}: not a member of {key} that {camp.label} asked about")
            continue
        decision = values.get("decision", "").strip().lower()
        if not decision:
            continue  # not decided yet: left for another file, `decide`, or `close`
        if decision not in DECISIONS:
            errors.append(f"line {line}: decision {values['decision']!r} must be keep, remove or blank")
            continue
        by = values.get("approver", "")
        listed = camp.systems[key]["approvers"]
        who = match_approver(listed, by)
        if who is None:
            what = f"{by!r} is not an approver of {key}" if by else "approver is empty: who decided?"
            errors.append(f"line {line}: {what} (systems.{key}.approvers: {'; '.join(listed) or 'none'})")
            continue
        note = " ".join(values.get("note", "").split())
        why = unsafe_problem(note)
        if why:
            errors.append(f"line {line}: note {why}")
            continue
        standing = camp.decisions.get(item["id"])
        same = standing is not None and (standing["decision"], standing["approver"], standing["note"]) == (
            decision,
            who,
            note,
        )
        if camp.status != "open" and not same:
            errors.append(f"line {line}: {camp.label} was closed on {(camp.closed_at or '')[:10]}")
            continue
        if item["enacted"] == "remove" and decision == "keep":
            errors.append(
                f"line {line}: {item['username']} was already removed from {key} by {camp.label}: "
                f"give access again with `access grant`"
            )
            continue
        pair = (camp.id, item["id"])
        if pair in seen and seen[pair][1:] != (decision, who):
            errors.append(
                f"line {line}: {item['username']} in {key} is also on line {seen[pair][0]}, decided otherwise"
            )
            continue
        seen.setdefault(pair, (line, decision, who))
        if camp.status == "open":
            rows_by_system.setdefault((camp.id, key), []).append(line)
        wanted.setdefault(camp.id, []).append(Wanted(item, decision, who, note, "file"))
    # the member lists the decisions were made on, against the directory now (one read per campaign)
    for cid, camp in by_id.items():
        keys = [k for (c, k) in rows_by_system if c == cid]
        if not keys:
            continue
        now = current_members(cfg, directory, state, keys)
        for k in keys:
            why = changed_members(camp, k, now[k])
            if why:
                lines = rows_by_system[(cid, k)]
                errors.append(f"line{'s' if len(lines) > 1 else ''} {_ranges(lines)}: {why}")
    if errors:
        shown = errors[:MAX_SHOWN]
        more = f"\n  (and {len(errors) - MAX_SHOWN} more)" if len(errors) > MAX_SHOWN else ""
        raise InputError(
            f"{path}: {len(errors)} bad row(s); nothing was changed:\n  " + "\n  ".join(shown) + more,
            hint="correct the rows named and apply the file again; rows left blank are not decided yet",
        )
    plan = Plan(f"apply recertification decisions from {Path(path).name} (policy {CLAUSE})")
    for cid, camp in by_id.items():
        _carry_out(cfg, directory, state, camp, wanted.get(cid, []), plan)
    if plan.empty:
        plan.notes.append("every decision in the file is already recorded and carried out")
    undecided = sum(1 for r in table.rows if not r.values.get("decision", "").strip())
    if undecided:
        plan.notes.append(f"{undecided} row(s) have no decision yet")
    plan.summary = {
        "keep": sum(1 for c in plan.changes if c.action == "recertify-keep"),
        "remove": sum(1 for c in plan.changes if c.action == "recertify-remove"),
    }
    return plan


def _ranges(lines: list[int]) -> str:
    """[2, 3, 4, 7] -> "2-4, 7"."""
    out: list[str] = []
    start = prev = lines[0]
    for n in [*lines[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if n is not None:
            start = prev = n
    return ", ".join(out)


# -- close --


def close_plan(
    cfg: Config, directory: Directory, state: State, campaign: str | None = None
) -> tuple[Plan, Campaign, list[dict[str, Any]]]:
    """(plan, campaign, undecided items): at or after the due date, carry out what stands, then what
    nobody decided is kept ([access] unanswered = "keep", said so) or removed ("remove"), and the campaign
    closes."""
    camp = load_campaign(state, campaign)
    plan = Plan(f"close recertification {camp.code} (due {camp.due}, policy {CLAUSE})")
    if camp.status != "open":
        plan.notes.append(f"{camp.label} was already closed on {(camp.closed_at or '')[:10]}")
        return plan, camp, []
    if today() < dt.date.fromisoformat(camp.due):
        raise RefusedError(
            f"{camp.label} is due on {camp.due}: it can be closed on or after that day; nothing was changed",
            hint="`aupctl access recertify status` shows who has not decided yet",
        )
    undecided = [i for i in camp.items if i["id"] not in camp.decisions]
    wanted: list[Wanted] = []
    if undecided and cfg.access.unanswered == "remove":
        wanted = [Wanted(i, "remove", NOBODY, f"no decision by {camp.due}", "unanswered") for i in undecided]
        plan.notes.append(f"{len(undecided)} member(s) nobody decided about are removed (access.unanswered = remove)")
    elif undecided:
        names = ", ".join(f"{i['username']} ({i['system']})" for i in undecided[:20])
        plan.notes.append(
            f"{len(undecided)} member(s) nobody decided about keep their access without a renewed review "
            f'(access.unanswered = "keep"): {names}' + (" ..." if len(undecided) > 20 else "")
        )
    _carry_out(cfg, directory, state, camp, wanted, plan)  # the due date has come: no member-list check
    plan.add(
        Change(
            "recertify-close",
            camp.code,
            f"close {camp.label}: {len(camp.items) - len(undecided)} decided, {len(undecided)} undecided",
            run=lambda: {"closed": rec.close(state, camp.id), "undecided": len(undecided)},
            details={"campaign": camp.code, "undecided": len(undecided), "unanswered": cfg.access.unanswered},
            local=True,
        )
    )
    return plan, camp, undecided


# -- carrying decisions out --


def _carry_out(
    cfg: Config,
    directory: Directory,
    state: State,
    camp: Campaign,
    new: list[Wanted],
    plan: Plan,
) -> None:
    """Record the new decisions (those that differ from what stands) and carry out every standing decision
    not carried out yet."""
    standing: dict[int, tuple[str, str, str]] = {
        iid: (d["decision"], d["approver"], d["note"]) for iid, d in camp.decisions.items()
    }
    by_item = {i["id"]: i for i in camp.items}
    for w in new:
        if standing.get(w.item["id"]) == (w.decision, w.approver, w.note):
            continue
        standing[w.item["id"]] = (w.decision, w.approver, w.note)
        plan.add(_record_change(state, camp, w))
    todo = [(by_item[iid], d) for iid, d in standing.items() if by_item[iid]["enacted"] != d[0]]
    if not todo:
        return
    keys = sorted({i["system"] for i, _ in todo})
    now = current_members(cfg, directory, state, keys)
    removals: list[tuple[str, str]] = []
    for item, (decision, approver, note) in sorted(todo, key=lambda t: (t[0]["system"], t[0]["user_key"])):
        key = item["system"]
        system = cfg.systems.get(key)
        if system is None:
            plan.notes.append(f"{item['username']}: system {key} is no longer configured; decision not carried out")
            continue
        if decision == "keep":
            plan.add(_keep_change(state, camp, item, approver, note, system.name))
            continue
        members = now.get(key) or set()
        if system.group and item["member_dn"]:
            gdn = camp.systems[key]["group"] or cfg.group_dn(system.group)
            if item["member_key"] not in members:
                plan.notes.append(f"{item['username']} is no longer in {group_name(gdn)}: only the approval is ended")
            elif item["via"]:
                text = (
                    f"Remove {item['name']} ({item['username']}) from {group_name(item['via'])}, which gives them "
                    f"{system.name} through {group_name(gdn)}, or unnest it (recertification {camp.code})"
                )
                plan.add(task_change(state, "revoke", item["username"], key, text))
            else:
                removals.append((gdn, item["member_dn"]))
                plan.add(_remove_member(directory, gdn, item, system.name, camp))
        else:
            text = f"Remove {item['name']} ({item['username']})'s access to {system.name}" + (
                f" — {system.instructions}" if system.instructions else ""
            )
            plan.add(task_change(state, "revoke", item["username"], key, text))
        plan.add(_remove_change(state, camp, item, approver, note, system.name))
    if removals and directory is not None:
        # a groupOfNames must keep a member: refused here, before anything changes
        directory.flavour.groups.check_removals(directory, removals)


def _record_change(state: State, camp: Campaign, w: Wanted) -> Change:
    item = w.item
    return Change(
        "recertify-decision",
        item["username"],
        f"record {w.approver}'s decision: {w.decision} {item['username']} in {item['system']}"
        + (f" ({w.note})" if w.note else ""),
        run=lambda: {"decision": rec.decide(state, camp.id, item["id"], w.decision, w.approver, w.note, w.source)},
        details={
            "campaign": camp.code,
            "system": item["system"],
            "decision": w.decision,
            "approver": w.approver,
            "note": w.note,
            "source": w.source,
        },
        local=True,
    )


def _keep_change(state: State, camp: Campaign, item: dict[str, Any], approver: str, note: str, name: str) -> Change:
    user, key = item["username"], item["system"]

    def run() -> dict[str, Any]:
        live = approvals.live(state, username=user, system=key)
        if live:
            approvals.recertify(state, int(live[-1]["id"]), approver)
            out = {"approval": int(live[-1]["id"]), "renewed": True}
        else:  # held with no approval on record: the approver's keep is the approval now
            reason = f"kept in recertification {camp.code}" + (f": {note}" if note else "")
            aid = approvals.record(
                state, username=user, system=key, approver=approver, reason=reason, source="recertify"
            )
            out = {"approval": aid, "renewed": False}
        rec.mark_enacted(state, item["id"], "keep")
        return out

    how = "renew the review clock of the approval" if item["approval_id"] else "record an approval"
    return Change(
        "recertify-keep",
        user,
        f"keep {user} in {name}: {how} ({approver} kept it" + (f": {note})" if note else ")"),
        run=run,
        details={"campaign": camp.code, "system": key, "approver": approver, "note": note},
        local=True,
    )


def _remove_member(directory: Directory, gdn: str, item: dict[str, Any], name: str, camp: Campaign) -> Change:
    fl, dn, user = directory.flavour, item["member_dn"], item["username"]
    return Change(
        "remove-member",
        user,
        f"remove {user} ({item['name']}) from {group_name(gdn)} ({name})",
        run=lambda: {"changed": fl.remove_member(directory, gdn, dn, user)},
        details={"system": item["system"], "group": gdn, "member": dn, "by": f"recertification {camp.code}"},
        check=checks.member(gdn, dn, False),
    )


def _remove_change(state: State, camp: Campaign, item: dict[str, Any], approver: str, note: str, name: str) -> Change:
    user, key = item["username"], item["system"]
    if approver == NOBODY:
        reason = f"recertification {camp.code}: no decision by {camp.due} (access.unanswered = remove)"
    else:
        reason = f"recertification {camp.code}: removed by {approver}" + (f": {note}" if note else "")

    def run() -> dict[str, Any]:
        ended = [r["id"] for r in approvals.end(state, username=user, system=key, reason=reason)]
        rec.mark_enacted(state, item["id"], "remove")
        return {"ended": ended}

    # an account in the group with no approval on record (made and grouped by hand): nothing to end
    what = f"end {user}'s approval of {name}" if item["approval_id"] else f"record {user}'s removal from {name}"
    return Change(
        "recertify-remove",
        user,
        f"{what} ({reason})",
        run=run,
        details={"campaign": camp.code, "system": key, "approver": approver, "note": note, "reason": reason},
        local=True,
    )


def undecided_findings(camp: Campaign, undecided: list[dict[str, Any]], unanswered: str) -> list[Finding]:
    """What nobody decided by the due date, one finding each (policy 1.3), saying what became of it."""
    then = (
        "removed, as access.unanswered = remove says"
        if unanswered == "remove"
        else 'kept without a renewed review (access.unanswered = "keep"): decide it next term or revoke it'
    )
    return [
        Finding(
            subject=i["username"],
            check="recertify-undecided",
            clause=CLAUSE,
            severity="medium",
            detail=f"no approver of {camp.systems[i['system']]['name']} decided about {i['name']} by {camp.due} "
            f"({camp.label}, asked: {'; '.join(camp.systems[i['system']]['approvers']) or 'nobody'}); {then}",
            system=i["system"],
        )
        for i in undecided
    ]
