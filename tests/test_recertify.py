"""Termly recertification (`access recertify`) against the sandbox school, on OpenLDAP's standard layout
(groupOfNames) and flat layout (posixGroup memberUid groups, RFC 2307bis SIMS) and on AD: a full campaign (start, the approvers' files,
apply a decisions file, re-apply, close), every kind of bad row, a member list changed since the start,
`decide`, unanswered = remove, and the CLI (exit codes, JSON shapes).

Each test works on its own copy of the module's state store (signatures imported, members adopted) and
on its own systems, so the directory changes one test makes are not another's."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from pathlib import Path

import pytest
from cli_helpers import run_main as run

from aupctl.access.adopt import adopt_plan
from aupctl.access.aup import import_plan
from aupctl.access.recertify import (
    apply_plan,
    campaign_status,
    close_plan,
    decide_plan,
    letters,
    load_campaign,
    pending_approvers,
    start_plan,
)
from aupctl.access.recertify.campaign import decisions_csv
from aupctl.access.recertify.decisions import undecided_findings
from aupctl.config import load
from aupctl.directory import open_directory, same_dn
from aupctl.errors import InputError, NotFoundError, RefusedError
from aupctl.plan import apply
from aupctl.records import approvals, tasks
from aupctl.sandbox.school import BUSINESS_MANAGER, HEADTEACHER
from aupctl.state import State
from aupctl.text import shown, unsafe

HEAD = HEADTEACHER
DEPUTY = "Mrs R Hughes (Deputy Headteacher)"
TODAY = dt.date.today()
LAYOUTS = {"openldap-standard": "openldap_sandbox", "openldap-flat": "flat_openldap", "ad-standard": "ad_sandbox"}


@pytest.fixture(scope="module", params=list(LAYOUTS), ids=list(LAYOUTS))
def any_sandbox(request):
    """conftest's any_sandbox, narrowed to groupOfNames and posixGroup layouts and AD (marks follow the param)."""
    return request.getfixturevalue(LAYOUTS[request.param])


@pytest.fixture(scope="module")
def base(any_sandbox):
    """(sandbox, directory, base store): signatures imported and today's members adopted once."""
    cfg = load(str(any_sandbox.config_path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    apply(import_plan(cfg, d, st, str(any_sandbox.dir / "aup-signatures.csv")), st)
    apply(adopt_plan(cfg, d, st, HEAD), st)
    for user, key in (("skhan", "sap"), ("skhan", "intranet"), ("adubois", "intranet")):  # by hand: on record only
        assert d.flavour.find_user(d, user)
        approvals.record(st, username=user, system=key, approver=BUSINESS_MANAGER, reason="finance and attendance")
    yield any_sandbox, d, st
    st.close()
    d.close()


def setup(base, tmp_path: Path, **access: str):
    """(cfg, directory, state, config path): a config of this sandbox with its own copy of the store and
    [access] keys, files into tmp_path/files."""
    info, d, st = base
    store = tmp_path / "state.db"
    dest = __import__("sqlite3").connect(store)
    st.db.backup(dest)
    dest.close()
    text = info.config_path.read_text(encoding="utf-8").replace('path = "state.db"', f'path = "{store}"')
    keys = {"recertify_dir": str(tmp_path / "files"), **access}
    text += "\n[access]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    path = info.dir / f"recertify-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(text, encoding="utf-8")
    cfg = load(str(path))
    return cfg, d, State(cfg.state.path), path


def envelope(out: str) -> dict:
    """stdout as the one JSON envelope, checked against docs/schema/ (as test_output_contract does)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = Path(__file__).resolve().parent.parent / "docs" / "schema"
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in (json.loads(p.read_text()) for p in schemas.glob("*.json"))
    )
    validator = Draft202012Validator(json.loads((schemas / "envelope.json").read_text()), registry=registry)
    doc = json.loads(out)
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return doc


def members(cfg, d, key: str) -> list[str]:
    return d.flavour.group_members(d, cfg.group_dn(cfg.systems[key].group)) or []


def is_member(cfg, d, key: str, username: str) -> bool:
    acct = d.flavour.find_user(d, username)
    return any(same_dn(m, acct.dn) for m in members(cfg, d, key))


def read_file(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def write_file(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def direct_items(camp, key: str) -> list[dict]:
    """Members of `key` the campaign asked about who are direct members (not through a nested group)."""
    return [i for i in camp.items if i["system"] == key and not i["via"]]


def snapshot(cfg, d, st: State) -> tuple:
    return (
        {k: sorted(m.lower() for m in members(cfg, d, k)) for k, s in cfg.systems.items() if s.group},
        [dict(r) for r in st.query("SELECT * FROM approvals ORDER BY id")],
        [dict(r) for r in st.query("SELECT * FROM recert_decisions ORDER BY id")],
        st.query("SELECT COUNT(*) AS n FROM audit")[0]["n"],
    )


def overdue(cfg, d, st, username: str) -> bool:
    from aupctl.access.review import review

    found = review(cfg, d, st, "target_tracker").findings
    return any(f.subject == username and f.check == "approval-overdue" for f in found)


def start(cfg, d, st, systems: list[str]):
    plan = start_plan(cfg, d, st, systems, TODAY)
    apply(plan, st)
    return load_campaign(st, system=systems[0])


# -- a whole campaign --


def test_full_campaign_start_apply_reapply_close(base, tmp_path: Path) -> None:
    cfg, d, st, _ = setup(base, tmp_path)
    plan = start_plan(cfg, d, st, ["target_tracker", "sap"], TODAY)
    assert [c.action for c in plan.changes] == ["recertify-start"] + ["recertify-file"] * 3
    assert not list((tmp_path / "files").glob("*")), "building the plan writes nothing"
    apply(plan, st)
    camp = load_campaign(st, system="target_tracker")
    assert camp.status == "open" and camp.due == TODAY.isoformat()
    files = {p.name: p for p in (tmp_path / "files").glob("*.csv")}
    assert len(files) == 3 and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in files.values())
    head_file = next(p for n, p in files.items() if "mrs-a-patel" in n)
    rows = read_file(head_file)
    in_group = {d.flavour.groups.username_of(d, m) or m for m in members(cfg, d, "target_tracker")}
    tt_rows = [r for r in rows if r["system"] == "target_tracker"]
    assert {r["username"].lower() for r in tt_rows} == {u.lower() for u in in_group if u}
    assert not [r for r in rows if r["system"] == "sap"], "the headteacher is not an approver of SAP"
    assert all(r["decision"] == "" and r["note"] == "" and r["approver"] == HEAD for r in rows)
    assert all(r["access"] == "adopted" and r["approved_by"] == HEAD and r["last_logon"] for r in tt_rows)
    assert {r["aup_signed"] for r in tt_rows} <= {"yes", "no"}
    okafor = read_file(next(p for n, p in files.items() if "okafor" in n))
    assert [(r["system"], r["username"], r["access"]) for r in okafor] == [("sap", "skhan", "granted")]
    # the mail layer's letters carry the same bytes the files hold
    sent = {lt["to"]: lt for lt in letters(camp)}
    assert set(sent) == {HEAD, DEPUTY, BUSINESS_MANAGER}
    name, data, mime = sent[HEAD]["attachments"][0]
    assert (name, data, mime) == (head_file.name, head_file.read_bytes(), "text/csv")
    assert sent[HEAD]["template"] == "recertify-start" and sent[HEAD]["context"]["due"] == TODAY.isoformat()
    assert "1.3" in sent[HEAD]["why"] and sent[HEAD]["key"].startswith(f"recertify:{camp.code}:")
    assert (HEAD, "target_tracker", TODAY) in pending_approvers(st, TODAY)

    kept, removed = (i["username"] for i in direct_items(camp, "target_tracker")[:2])
    for r in tt_rows:
        if r["username"] == kept:
            r["decision"], r["note"] = "Keep", "still leads assessment"
        elif r["username"] == removed:
            r["decision"], r["note"] = "remove", "left the year team"
    returned = tmp_path / "returned.csv"
    write_file(returned, tt_rows)
    # the kept person's approval is years old: the review reports it overdue until an approver keeps it
    st.execute(
        "UPDATE approvals SET granted_at = '2020-01-01T00:00:00+00:00' WHERE username = ? AND system = ?",
        (kept, "target_tracker"),
    )
    assert overdue(cfg, d, st, kept)
    plan = apply_plan(cfg, d, st, returned)
    assert is_member(cfg, d, "target_tracker", removed), "building the plan changes nothing"
    apply(plan, st)
    assert not is_member(cfg, d, "target_tracker", removed)
    assert is_member(cfg, d, "target_tracker", kept)
    assert not approvals.live(st, username=removed, system="target_tracker")
    ended = st.query(
        "SELECT ended_reason FROM approvals WHERE username = ? AND system = 'target_tracker' ORDER BY id DESC",
        (removed,),
    )[0]["ended_reason"]
    assert HEAD in ended and "left the year team" in ended
    live = approvals.live(st, username=kept, system="target_tracker")[0]
    assert live["recertified_at"] and live["recertified_by"] == HEAD and live["source"] == "adopt"
    assert live["granted_at"].startswith("2020-01-01") and not overdue(cfg, d, st, kept)

    # the same file again: nothing to do
    again = apply_plan(cfg, d, st, returned)
    assert again.empty, [c.description for c in again.changes]

    status = campaign_status(st)
    tt = next(s for s in status["systems"] if s["system"] == "target_tracker")
    assert (tt["decided"], tt["keep"], tt["remove"], tt["carried_out"]) == (2, 1, 1, 2)
    assert tt["undecided"] == tt["members"] - 2
    row = next(r for r in status["approvers"] if r["system"] == "target_tracker" and r["approver"] == HEAD)
    assert row["decided"] == 2 and row["undecided"] == tt["undecided"]
    assert next(r for r in status["approvers"] if r["approver"] == DEPUTY)["decided"] == 0

    # close at the due date with the deputy (and SAP's approver) silent: reported, kept by default
    plan, camp, undecided = close_plan(cfg, d, st)
    assert undecided and len(undecided) == len(camp.items) - 2
    found = undecided_findings(camp, undecided, cfg.access.unanswered)
    assert all(f.clause == "1.3" and f.check == "recertify-undecided" and "kept" in f.detail for f in found)
    assert [c.action for c in plan.changes] == ["recertify-close"]
    assert any('unanswered = "keep"' in n for n in plan.notes)
    before = {m.lower() for m in members(cfg, d, "target_tracker")}
    apply(plan, st)
    assert {m.lower() for m in members(cfg, d, "target_tracker")} == before
    assert load_campaign(st, camp.id).status == "closed"
    assert pending_approvers(st, TODAY) == []


def test_close_with_unanswered_remove_removes_through_the_same_plan(base, tmp_path: Path) -> None:
    cfg, d, st, _ = setup(base, tmp_path, unanswered="remove")
    camp = start(cfg, d, st, ["schoolcomms", "intranet"])
    items = direct_items(camp, "schoolcomms")
    assert len(items) >= 2
    keep = items[0]["username"]
    apply(decide_plan(cfg, d, st, keep, "schoolcomms", "keep", "Mr D Okafor"), st)
    plan, camp, undecided = close_plan(cfg, d, st)
    assert {i["username"] for i in undecided} >= {i["username"] for i in items[1:]}
    apply(plan, st)
    assert is_member(cfg, d, "schoolcomms", keep)
    for i in items[1:]:
        assert not is_member(cfg, d, "schoolcomms", i["username"])
        assert not approvals.live(st, username=i["username"], system="schoolcomms")
    by_hand = [i for i in camp.items if i["system"] == "intranet"]
    open_tasks = {t["username"].lower() for t in tasks.list_tasks(st, open_only=True, kind="revoke")}
    assert by_hand and {i["user_key"] for i in by_hand} <= open_tasks
    assert load_campaign(st, camp.id).status == "closed"


# -- refusals --


def test_a_decisions_file_with_bad_rows_changes_nothing_and_names_each_row(base, tmp_path: Path) -> None:
    cfg, d, st, _ = setup(base, tmp_path)
    camp = start(cfg, d, st, ["sims", "intranet"])
    good, other = (i["username"] for i in direct_items(camp, "sims")[:2])

    def row(system: str, user: str, decision: str, approver: str = HEAD, note: str = "") -> dict:
        return {"campaign": camp.code, "system": system, "username": user, "approver": approver,
                "decision": decision, "note": note}  # fmt: skip

    rows = [
        row("sims", good, "remove", note="fine"),  # line 2: good
        row("sims", "nobody-here", "keep"),  # 3: unknown person
        row("payroll", good, "keep"),  # 4: unknown system
        row("sims", other, "maybe"),  # 5: neither keep nor remove
        row("sims", other, "keep", approver=DEPUTY),  # 6: not an approver of SIMS
        row("raise", good, "keep"),  # 7: not part of this campaign
        row("sims", other, "keep", note="ok\u202egnp.exe"),  # 8: a bidi override in the note
        row("sims", other, "remove", approver=""),  # 9: nobody named
    ]
    path = tmp_path / "bad.csv"
    write_file(path, rows)
    before = snapshot(cfg, d, st)
    with pytest.raises(InputError) as exc:
        apply_plan(cfg, d, st, path)
    text = exc.value.message
    assert "7 bad row(s)" in text and "nothing was changed" in text
    for line, words in {
        3: "unknown person 'nobody-here'",
        4: "unknown system 'payroll'",
        5: "decision 'maybe' must be keep, remove or blank",
        6: f"{DEPUTY!r} is not an approver of sims",
        7: "system raise is not part of",
        8: "note holds a bidirectional-text control",
        9: "approver is empty",
    }.items():
        assert f"line {line}: {words}" in text, (line, text)
    assert "line 2:" not in text
    assert snapshot(cfg, d, st) == before


def test_a_member_list_changed_since_the_start_is_refused(base, tmp_path: Path) -> None:
    cfg, d, st, path_cfg = setup(base, tmp_path)
    camp = start(cfg, d, st, ["raise"])
    someone = direct_items(camp, "raise")[0]["username"]
    outsider = next(
        a for a in d.flavour.iter_accounts(d, with_groups=False)
        if not a.disabled and not is_member(cfg, d, "raise", a.username)
    )  # fmt: skip
    gdn = cfg.group_dn(cfg.systems["raise"].group)
    d.flavour.add_member(d, gdn, outsider.dn, outsider.username)  # by hand, outside aupctl
    try:
        path = tmp_path / "late.csv"
        write_file(path, [{"system": "raise", "username": someone, "approver": HEAD, "decision": "remove"}])
        before = snapshot(cfg, d, st)
        with pytest.raises(InputError) as exc:
            apply_plan(cfg, d, st, path)
        assert "line 2:" in exc.value.message and "changed since" in exc.value.message
        said = exc.value.message.lower()  # named by uid on OpenLDAP, by CN on AD
        assert f"joined: {outsider.username}".lower() in said or f"joined: {outsider.name}".lower() in said
        with pytest.raises(RefusedError, match="changed since"):
            decide_plan(cfg, d, st, someone, "raise", "remove", "Mrs A Patel")
        assert snapshot(cfg, d, st) == before
        code, out, err = run("access", "recertify", "apply", str(path), "--yes", config=path_cfg)
        assert code == 2 and "line 2:" in err and "changed since" in err
    finally:
        d.flavour.remove_member(d, gdn, outsider.dn, outsider.username)
    apply(decide_plan(cfg, d, st, someone, "raise", "keep", "Mrs A Patel"), st)  # the list is back: accepted


def test_a_hostile_name_in_a_decisions_file_is_escaped_and_the_file_still_applies(base, tmp_path: Path) -> None:
    """A name with a formula, ESC, CR/LF and a bidi override (a hand-made account's): the approver's file
    holds it escaped on one line, quoted, and the file still applies."""
    cfg, d, st, _ = setup(base, tmp_path)
    camp = start(cfg, d, st, ["target_tracker"])
    item = direct_items(camp, "target_tracker")[0]
    hostile = "=cmd|' /C calc'!A0\x1b[31m\r\nred\u202egnp.exe"
    st.execute("UPDATE recert_items SET name = ? WHERE id = ?", (hostile, item["id"]))
    camp = load_campaign(st, system="target_tracker")
    text = decisions_csv(camp, HEAD).decode("utf-8-sig")
    assert not [c for c in text.replace("\r\n", "") if unsafe(c)], "raw control/bidi characters in the file"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.count("\r\n") == len(rows) + 1, "a value broke a line"
    row = next(r for r in rows if r["username"] == item["username"])
    assert row["name"] == "'" + shown(hostile) and "\\x1b[31m\\x0d\\x0ared\\u202e" in row["name"]
    row["decision"], row["note"] = "keep", "still needed"
    returned = tmp_path / "returned.csv"
    write_file(returned, rows)
    apply(apply_plan(cfg, d, st, returned), st)
    decided = load_campaign(st, system="target_tracker").decisions[item["id"]]
    assert (decided["decision"], decided["approver"], decided["note"]) == ("keep", HEAD, "still needed")
    # a hand-made account's odd username comes back as the file wrote it, and still finds its row
    odd = {**item, "username": "Ev\u202eil", "user_key": "ev\u202eil"}
    camp.items.append(odd)
    assert camp.item("target_tracker", shown(odd["username"])) is odd


def test_decide_one_by_one(base, tmp_path: Path) -> None:
    cfg, d, st, _ = setup(base, tmp_path)
    camp = start(cfg, d, st, ["raise"])
    a = direct_items(camp, "raise")[0]["username"]
    with pytest.raises(NotFoundError, match="not among the members"):
        decide_plan(cfg, d, st, "no-such-person", "raise", "keep", HEAD)
    with pytest.raises(RefusedError, match="not an approver of RAISE"):
        decide_plan(cfg, d, st, a, "raise", "keep", BUSINESS_MANAGER)
    with pytest.raises(InputError, match="--note"):
        decide_plan(cfg, d, st, a, "raise", "keep", HEAD, note="bad\x1b[2J")
    plan = decide_plan(cfg, d, st, a, "raise", "remove", "mrs a patel", note="no longer a subject lead")
    assert [c.action for c in plan.changes] == ["recertify-decision", "remove-member", "recertify-remove"]
    apply(plan, st)
    assert not is_member(cfg, d, "raise", a)
    assert decide_plan(cfg, d, st, a, "raise", "remove", HEAD, note="no longer a subject lead").empty
    with pytest.raises(RefusedError, match="already removed"):
        decide_plan(cfg, d, st, a, "raise", "keep", HEAD)
    decided = st.query("SELECT * FROM recert_decisions WHERE campaign_id = ?", (camp.id,))
    assert [(r["decision"], r["approver"], r["source"]) for r in decided] == [("remove", HEAD, "decide")]
    with pytest.raises(RefusedError, match="still open"):
        start_plan(cfg, d, st, ["raise"], TODAY)


# -- the CLI --


def test_cli_start_status_close_and_json(base, tmp_path: Path) -> None:
    cfg, d, st, path = setup(base, tmp_path)
    st.close()
    code, out, err = run("--format", "json", "access", "recertify", "status", config=path)
    assert code == 0 and envelope(out)["data"] == {"campaign": None, "systems": [], "approvers": []}
    code, out, err = run("access", "recertify", "start", "--system", "sims", "--dry-run", config=path)
    assert code == 0 and "recertify-" in out and "dry run" in err
    assert not (tmp_path / "files").exists()
    code, out, err = run("access", "recertify", "start", "--system", "sims", "--due", "2001-01-01", config=path)
    assert code == 2 and "--due" in err and "passed" in err
    later = (TODAY + dt.timedelta(days=7)).isoformat()
    code, out, err = run("access", "recertify", "start", "--system", "sims", "--due", later, "--yes", config=path)
    assert code == 0, err
    assert len(list((tmp_path / "files").glob("*.csv"))) == 2
    code, out, err = run("--format", "json", "access", "recertify", "status", config=path)
    assert code == 0, err
    env = envelope(out)
    assert env["command"] == "access recertify" and env["ok"] and env["version"] == 1
    data = env["data"]
    assert set(data) == {"campaign", "systems", "approvers"}
    assert data["campaign"]["due"] == later and data["campaign"]["status"] == "open"
    assert {r["approver"] for r in data["approvers"]} == {HEAD, BUSINESS_MANAGER}
    assert set(data["approvers"][0]) == {"system", "name", "approver", "members", "decided", "undecided", "due"}
    sims = data["systems"][0]
    assert sims["system"] == "sims" and sims["undecided"] == sims["members"] > 0
    code, out, err = run("access", "recertify", "status", config=path)
    assert code == 0 and HEAD in out and "undecided" in out
    code, out, err = run("access", "recertify", "close", "--yes", config=path)
    assert code == 2 and f"due on {later}" in err
    code, out, err = run("access", "recertify", "decide", "nobody-here", "sims", "keep", "--by", HEAD, "--yes",
                         config=path)  # fmt: skip
    assert code == 2 and "not among the members" in err

    # the due date has come (moved here in the store): undecided reported, exit 1
    st = State(cfg.state.path)
    st.execute("UPDATE recert_campaigns SET due = ?", (TODAY.isoformat(),))
    st.close()
    code, out, err = run("--format", "json", "access", "recertify", "close", "--yes", config=path)
    assert code == 1, err
    env = envelope(out)
    assert env["exit_code"] == 1 and env["findings"] and env["plan"]["changes"][-1]["action"] == "recertify-close"
    assert {f["check"] for f in env["findings"]} == {"recertify-undecided"}
    code, out, err = run("access", "recertify", "status", "--format", "json", config=path)
    assert json.loads(out)["data"]["campaign"]["status"] == "closed"


# -- by mail (the approvers' letters through a real SMTP server on loopback, STARTTLS + AUTH) --

HEAD_MAIL = "apatel@hollybank.test"
SUBJECT = "Please review who has access"


def mail_setup(base, tmp_path: Path, server, *, okafor: bool = False):
    """setup() with [mail] reaching `server`, the headteacher written `Name <address>` (and the business
    manager too if okafor; else a plain name, who cannot be mailed)."""
    cfg, d, st, path = setup(base, tmp_path)
    st.close()
    text = path.read_text(encoding="utf-8").replace(f'"{HEAD}"', f'"{HEAD} <{HEAD_MAIL}>"')
    if okafor:
        text = text.replace(f'"{BUSINESS_MANAGER}"', f'"{BUSINESS_MANAGER} <dokafor@hollybank.test>"')
    path.write_text(text + server.mail_toml() + '\n[notify]\ntechnician = "ICT <ict@hollybank.test>"\n')
    cfg = load(str(path))
    return cfg, d, State(cfg.state.path), path


def attachment(msg) -> tuple[str, bytes]:
    parts = list(msg.iter_attachments())
    assert len(parts) == 1, [p.get_filename() for p in parts]
    return parts[0].get_filename(), parts[0].get_payload(decode=True)


def group_usernames(cfg, d, key: str) -> set[str]:
    return {(d.flavour.groups.username_of(d, m) or m).lower() for m in members(cfg, d, key)}


def test_a_campaign_by_mail_start_apply_report_close(base, tmp_path: Path, smtp_server) -> None:
    cfg, d, st, path = mail_setup(base, tmp_path, smtp_server)
    before = len(smtp_server.received)
    code, out, err = run("--format", "json", "access", "recertify", "start", "--system", "raise", "--system",
                         "schoolcomms", "--yes", config=path)  # fmt: skip
    # the business manager (of Schoolcomms) is written without an address: a finding, exit 1; Mrs Patel mailed
    assert code == 1, err
    doc = envelope(out)
    assert [(f["check"], f["subject"]) for f in doc["findings"]] == [("no-mail-address", BUSINESS_MANAGER)]
    assert "systems.schoolcomms.approvers" in doc["findings"][0]["detail"]
    actions = [c["action"] for c in doc["plan"]["changes"]]
    assert actions == ["recertify-start", "recertify-file", "recertify-file"], actions  # the campaign's plan
    assert [m["to"] for m in doc["data"]["letters"]] == [[f'"{HEAD}" <{HEAD_MAIL}>']]  # quoted: it holds ( )
    got = smtp_server.received[before:]
    assert [g.rcpt_tos for g in got] == [(HEAD_MAIL,)]
    msg = got[0].message
    assert msg["Subject"].startswith(SUBJECT) and msg["To"].addresses[0].addr_spec == HEAD_MAIL
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    assert "RAISE Online" in msg.get_body(("plain",)).get_content() and "1.3" in msg.get_body(("plain",)).get_content()
    name, data = attachment(msg)
    files = {p.name: p for p in (tmp_path / "files").glob("*.csv")}
    assert len(files) == 2 and name in files and "okafor" in "".join(files)  # both files on disk
    assert data == files[name].read_bytes()  # the very bytes written on disk
    rows = read_file(files[name])
    for key in ("raise", "schoolcomms"):
        assert {r["username"].lower() for r in rows if r["system"] == key} == group_usernames(cfg, d, key)
    # each letter once: sent marks recorded, a notify the same day sends nothing more to the approvers
    code, out, err = run("notify", "--yes", config=path)
    assert code == 1 and "Okafor" in out  # still reported: it cannot be mailed
    assert not [g for g in smtp_server.received[before + 1 :] if HEAD_MAIL in g.rcpt_tos]

    # the headteacher returns the file: RAISE decided (one removed), Schoolcomms left blank
    raise_rows = [r for r in rows if r["system"] == "raise"]
    assert len(raise_rows) >= 2
    for i, r in enumerate(raise_rows):
        r["decision"], r["note"] = ("remove", "no longer needs it") if i == 0 else ("keep", "")
    removed = raise_rows[0]["username"]
    returned = tmp_path / "returned.csv"
    write_file(returned, rows)
    code, out, err = run("access", "recertify", "apply", str(returned), "--yes", config=path)
    assert code == 0, err
    assert not is_member(cfg, d, "raise", removed)

    # the report's recertification part shows the same answers as `status`
    code, out, err = run("--format", "json", "access", "recertify", "status", config=path)
    status = json.loads(out)["data"]
    code, out, err = run("--format", "json", "report", "--no-directory", config=path)
    assert code == 0, err
    recert = json.loads(out)["data"]["schools"][0]["sections"]["people"]["recertification"]
    by = {s["system"]: s for s in status["systems"]}
    assert recert["code"] == status["campaign"]["code"] and recert["status"] == "open"
    assert recert["answers"] == {
        "kept": by["raise"]["keep"] + by["schoolcomms"]["keep"],
        "removed": by["raise"]["remove"] + by["schoolcomms"]["remove"],
        "no answer": status["campaign"]["undecided"],
    }
    assert recert["answers"]["removed"] == 1 and recert["answers"]["kept"] == len(raise_rows) - 1
    assert recert["open"] == status["campaign"]["undecided"] == by["schoolcomms"]["members"] > 0
    page = tmp_path / "report.html"
    code, out, err = run("report", "--no-directory", "--out", str(page), config=path)
    assert code == 0, err
    kept, open_ = recert["answers"]["kept"], recert["open"]
    assert f"{kept} kept, 1 removed, {open_} no answer; {open_} still to answer" in page.read_text()

    # close at the due date (moved here in the store) with Schoolcomms undecided: exit 1, kept by default
    st.execute("UPDATE recert_campaigns SET due = ?", (TODAY.isoformat(),))
    code, out, err = run("--format", "json", "access", "recertify", "close", "--yes", config=path)
    assert code == 1, err
    found = json.loads(out)["findings"]
    assert found and {f["check"] for f in found} == {"recertify-undecided"}
    assert {f["system"] for f in found} == {"schoolcomms"} and len(found) == by["schoolcomms"]["members"]
    st.close()


def test_mail_server_down_at_start_then_notify_sends_the_rest_and_the_reminders(
    base, tmp_path: Path, smtp_server
) -> None:
    from aupctl.notify import Outbox, build
    from aupctl.records import notices

    cfg, d, st, path = mail_setup(base, tmp_path, smtp_server, okafor=True)
    before = len(smtp_server.received)
    due = TODAY + dt.timedelta(days=20)
    # the mail password missing: stopped before the campaign opens (exit 2), nothing written
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(str(smtp_server.password_file), str(tmp_path / "no-such.pw")), encoding="utf-8")
    code, out, err = run("access", "recertify", "start", "--system", "sims", "--yes", config=path)
    assert code == 2 and "mail password" in err, err
    assert not st.query("SELECT * FROM recert_campaigns") and not (tmp_path / "files").exists()
    path.write_text(text, encoding="utf-8")
    smtp_server.stop()
    try:
        code, out, err = run("access", "recertify", "start", "--system", "sims", "--due", due.isoformat(), "--yes",
                             config=path)  # fmt: skip
    finally:
        smtp_server.start()
    assert code == 3, err
    assert "cannot reach mail server" in err and "aupctl notify --yes" in err
    camp = load_campaign(st, system="sims")
    assert camp.status == "open" and len(list((tmp_path / "files").glob("*.csv"))) == 2
    assert not st.query("SELECT * FROM notices"), "nothing recorded as sent"
    assert len(smtp_server.received) == before
    late = build(cfg, st, d, None, today=due + dt.timedelta(days=1))  # past due: `close` reports, no letter asks
    assert not [r for r in late.reminders if r.kind == "recertify"] and not late.findings

    code, out, err = run("notify", "--yes", config=path)
    assert code == 0, err
    got = smtp_server.received[before:]
    opening = [g for g in got if g.message["Subject"].startswith(SUBJECT)]
    assert sorted(g.rcpt_tos for g in opening) == [(HEAD_MAIL,), ("dokafor@hollybank.test",)]
    assert not [g for g in got if g.message["Subject"].startswith("Access review")]  # no "open" reminder on top
    files = {p.name: p.read_bytes() for p in (tmp_path / "files").glob("*.csv")}
    assert sorted(attachment(g.message) for g in opening) == sorted(files.items())
    n = len(smtp_server.received)
    code, out, err = run("notify", "--yes", config=path)
    assert code == 0 and len(smtp_server.received) == n  # nothing twice

    # the clock moved: the last week's reminder, then the last day's, each once, to both approvers
    def day(when: dt.date) -> list:
        mark = len(smtp_server.received)
        outbox = Outbox(cfg, smtp_server.password)
        try:
            apply(build(cfg, st, d, outbox, today=when).plan, st)
        finally:
            outbox.close()
        return [g for g in smtp_server.received[mark:] if g.message["Subject"].startswith("Access review")]

    for when, stage in ((due - dt.timedelta(days=7), "last-week"), (due - dt.timedelta(days=1), "last-day")):
        got = day(when)
        assert sorted(g.rcpt_tos for g in got) == [(HEAD_MAIL,), ("dokafor@hollybank.test",)], stage
        assert "SIMS" in got[0].message.get_body(("plain",)).get_content()
        assert day(when) == []  # a re-run the same day
        key = f"recertify:{HEAD.casefold()} <{HEAD_MAIL}>:sims:{due.isoformat()}"
        assert stage in {n["stage"] for n in notices.history(st, key)}
    assert not any(g.message["Subject"].startswith(SUBJECT) for g in smtp_server.received[n:])  # no second opening
    st.close()
