"""`aupctl notify` on both flavours against a real SMTP server on loopback (aiosmtpd, STARTTLS + AUTH):
each stage with the clock moved, no duplicate on a re-run, the server down then back, a letter refused
part-way, a person without an address, the CLI's exit codes, and the recertification hook."""

from __future__ import annotations

import datetime as dt
import json

import ldap3
import pytest
from cli_helpers import run_main as run

from aupctl.config import load
from aupctl.credentials import ENV_MAIL
from aupctl.directory import open_directory
from aupctl.errors import EXIT_UNREACHABLE, PartialError, UnreachableError
from aupctl.laptops import inventory
from aupctl.notify import Outbox, Pending, build, laptop_stage, recertify_reminders, recertify_stage
from aupctl.plan import apply
from aupctl.records import approvals, notices, tasks
from aupctl.sandbox import school as hb
from aupctl.state import State

TAG = "HB-LT-0077"
TECH = "Kofi Mensah <kmensah@hollybank.test>"
TODAY = dt.date.today()
DUE = TODAY + dt.timedelta(days=90)  # enrolled today, checkin_every_days = 90


@pytest.fixture(scope="module")
def env(sandbox, smtp_server):
    """(info, cfg, directory, state, server): the sandbox's config with [mail] (reaching smtp_server) and
    [notify]; a laptop assigned to a teacher, a new starter's grant waiting for the AUP, an old leaver task."""
    path = sandbox.config_path
    text = path.read_text()
    if "[mail]" not in text:
        path.write_text(text + smtp_server.mail_toml() + f'\n[notify]\ntechnician = "{TECH}"\n')
    cfg = load(str(path))
    d = open_directory(cfg)
    st = State(cfg.state.path)
    teacher = hb.school().staff[0].username
    inventory.add(
        st, cfg, tag=TAG, host="127.0.0.1", port=22, os_name="linux", key_type="ssh-ed25519",
        key_b64="AAAAC3NzaC1lZDI1NTE5AAAAIGq", fp="SHA256:" + "A" * 43,
    )  # fmt: skip
    inventory.set_assigned(st, TAG, teacher)
    approvals.record(st, username="fmoss", system="sims", approver="Mrs A Patel (Headteacher)", status="waiting")
    tid = tasks.open_task(st, kind="mailbox", text="Decide on tbarker's mailbox", username="tbarker", ref="leaver:901")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).replace(microsecond=0).isoformat()
    st.execute("UPDATE tasks SET opened_at = ? WHERE id = ?", (old, tid))
    yield sandbox, cfg, d, st, smtp_server, teacher
    st.close()
    d.close()


def send(env, day: dt.date):
    """Build the day's plan and apply it; (the plan's reminders by kind, the letters the server got)."""
    _, cfg, d, st, server, _ = env
    before = len(server.received)
    outbox = Outbox(cfg, server.password)
    run_ = build(cfg, st, d, outbox, today=day)
    try:
        apply(run_.plan, st)
    finally:
        outbox.close()
    kinds = {}
    for r in run_.reminders:
        kinds.setdefault(r.kind, []).append(r.stage)
    return kinds, server.received[before:]


def test_stages_pure() -> None:
    due = dt.date(2026, 12, 7)
    days = {n: laptop_stage(due, due + dt.timedelta(days=n), 7) for n in (-8, -7, -1, 0, 6, 7, 13, 14, 30)}
    assert days == {-8: None, -7: "before", -1: "before", 0: "due", 6: "due", 7: "overdue-1", 13: "overdue-1",
                    14: "overdue-2", 30: "overdue-4"}  # fmt: skip
    assert laptop_stage(due, due - dt.timedelta(days=1), 0) is None  # laptop_days_before = 0: no early one
    assert [recertify_stage(due, due - dt.timedelta(days=n)) for n in (20, 7, 2, 1, 0, -1)] == [
        "open", "last-week", "last-week", "last-day", "last-day", None,
    ]  # fmt: skip


def test_laptop_reminders_at_each_stage_once(env) -> None:
    info, cfg, d, st, server, teacher = env
    acct = d.flavour.find_user(d, teacher)
    kinds, _ = send(env, DUE - dt.timedelta(days=8))
    assert "laptop" not in kinds
    kinds, got = send(env, DUE - dt.timedelta(days=7))
    assert kinds["laptop"] == ["before"]
    letter = next(g for g in got if f"laptop {TAG}" in g.message["Subject"])
    assert set(letter.rcpt_tos) == {acct.email, "kmensah@hollybank.test"}  # to the person, cc the technician
    assert letter.message["Cc"] == TECH and "due for its check-in on" in letter.message["Subject"]
    body = letter.message.get_body(("plain",)).get_content()
    assert "clause 1.4" in body and acct.name in body
    for later in (0, 5):  # the same stage again: nothing
        kinds, got = send(env, DUE - dt.timedelta(days=7 - later))
        assert "laptop" not in kinds and not any(TAG in g.message["Subject"] for g in got)
    kinds, got = send(env, DUE)
    assert kinds["laptop"] == ["due"] and any("check-in today" in g.message["Subject"] for g in got)
    assert "laptop" not in send(env, DUE + dt.timedelta(days=3))[0]
    kinds, got = send(env, DUE + dt.timedelta(days=7))
    assert kinds["laptop"] == ["overdue-1"] and any("overdue" in g.message["Subject"] for g in got)
    assert "laptop" not in send(env, DUE + dt.timedelta(days=13))[0]
    assert send(env, DUE + dt.timedelta(days=14))[0]["laptop"] == ["overdue-2"]
    sent = notices.history(st, f"laptop:{TAG}:{DUE.isoformat()}:{teacher.lower()}")
    assert [n["stage"] for n in sent] == ["before", "due", "overdue-1", "overdue-2"]
    # every letter is in the audit log with to, subject and why; no password anywhere in it
    entries = [e for e in st.audit_entries() if e.action == "send-mail" and e.target == teacher]
    assert len(entries) == 4 and all(e.details["to"] and e.details["subject"] and e.details["why"] for e in entries)
    log = json.dumps([e.details for e in st.audit_entries()])
    assert server.password not in log


def test_aup_and_leaver_task_reminders(env) -> None:
    info, cfg, d, st, server, _ = env
    day = TODAY + dt.timedelta(days=200)  # a stage of its own for every reminder
    kinds, got = send(env, day)
    assert kinds["aup"] and kinds["tasks"]
    aup = next(g for g in got if "Acceptable Use Policy" in g.message["Subject"])
    assert aup.rcpt_tos == ("fmoss@hollybank.test",)
    assert (
        "SIMS" in aup.message.get_body(("plain",)).get_content()
        and "9.1" in aup.message.get_body(("html",)).get_content()
    )
    task = next(g for g in got if "leaver task" in g.message["Subject"])
    assert task.rcpt_tos == ("kmensah@hollybank.test",) and "tbarker" in task.message.get_body(("plain",)).get_content()
    again, got = send(env, day)
    assert again == {} and got == []  # a re-run the same day sends nothing


def test_smtp_down_then_back_sends_the_rest_exactly_once(env) -> None:
    info, cfg, d, st, server, _ = env
    day = TODAY + dt.timedelta(days=300)
    outbox = Outbox(cfg, server.password)
    due = build(cfg, st, d, outbox, today=day)
    n = len(due.plan.changes)
    assert n >= 3
    server.stop()
    try:
        with pytest.raises(UnreachableError) as err:
            apply(due.plan, st)
        assert err.value.exit_code == EXIT_UNREACHABLE and "cannot reach mail server" in err.value.message
    finally:
        outbox.close()
        server.start()
    keys = [k for r in due.reminders for k, _ in r.marks]
    assert not (notices.sent(st, keys) & {m for r in due.reminders for m in r.marks})  # nothing recorded as sent
    kinds, got = send(env, day)
    assert sum(len(v) for v in kinds.values()) == n and len(got) == n
    assert send(env, day) == ({}, [])


def test_a_letter_refused_part_way_is_sent_on_the_re_run_and_the_rest_not_twice(env) -> None:
    info, cfg, d, st, server, teacher = env
    day = TODAY + dt.timedelta(days=400)
    server.reject.add("fmoss@hollybank.test")  # the AUP letter (after the laptop's) is refused: 550
    before = len(server.received)
    outbox = Outbox(cfg, server.password)
    try:
        with pytest.raises(PartialError) as err:
            apply(build(cfg, st, d, outbox, today=day).plan, st)
    finally:
        outbox.close()
        server.reject.clear()
    assert "550" in err.value.message and err.value.done == 1
    first = server.received[before:]
    assert len(first) == 1 and TAG in first[0].message["Subject"]
    kinds, got = send(env, day)
    assert "laptop" not in kinds and kinds["aup"] and kinds["tasks"]
    assert not any(TAG in g.message["Subject"] for g in got)


def test_a_person_without_an_address_is_reported(env) -> None:
    info, cfg, d, st, server, _ = env
    acct = d.flavour.find_user(d, "fmoss")
    d.modify(acct.dn, {"mail": [(ldap3.MODIFY_REPLACE, [])]})
    try:
        result = build(cfg, st, d, None, today=TODAY + dt.timedelta(days=500))
        found = [f for f in result.findings if f.subject == "fmoss"]
        assert len(found) == 1 and found[0].check == "no-mail-address" and found[0].clause == "9.1"
        assert "no mail address" in found[0].detail
        assert not any(r.kind == "aup" for r in result.reminders)
        code, out, err = run("--format", "json", "notify", "--dry-run", config=info.config_path)
        assert code == 1
        assert any(f["subject"] == "fmoss" for f in json.loads(out)["findings"])
    finally:
        d.modify(acct.dn, {"mail": [(ldap3.MODIFY_REPLACE, [acct.email])]})


def test_cli_dry_run_send_rerun_and_wrong_password(env, monkeypatch: pytest.MonkeyPatch) -> None:
    info, cfg, d, st, server, _ = env
    approvals.record(st, username="rlatham", system="sims", approver="Mrs A Patel (Headteacher)", status="waiting")
    before = len(server.received)
    code, out, err = run("notify", "--dry-run", config=info.config_path)
    assert code == 0 and "rlatham@hollybank.test" in out and "nothing was changed" in err
    assert len(server.received) == before
    secret = "Not-The-Password-123"
    monkeypatch.setenv(ENV_MAIL, secret)
    code, out, err = run("notify", "--yes", config=info.config_path)
    assert code == EXIT_UNREACHABLE and "127.0.0.1" in err and "535" in err
    assert secret not in out + err and len(server.received) == before
    monkeypatch.delenv(ENV_MAIL)  # the password file in [mail] again
    code, out, err = run("--format", "json", "notify", "--yes", config=info.config_path)
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["changes"] and all(c["action"] == "send-mail" for c in plan["changes"])
    got = server.received[before:]
    assert any(g.rcpt_tos == ("rlatham@hollybank.test",) for g in got)
    code, out, err = run("notify", "--yes", config=info.config_path)
    assert code == 0 and len(server.received) == before + len(got)  # nothing twice
    assert "nothing to do" in out and "already sent" in out


def test_recertification_hook_letters_and_missing_addresses(env) -> None:
    info, cfg, d, st, server, _ = env
    due = TODAY + dt.timedelta(days=10)
    pending = [
        Pending("Mrs A Patel <apatel@hollybank.test>", "sims", due),
        Pending("Mrs A Patel <apatel@hollybank.test>", "raise", due),
        Pending("Mr D Okafor (School Business Manager)", "sap", due),  # a plain name: no address
        Pending("Mrs A Patel <apatel@hollybank.test>", "schoolcomms", TODAY - dt.timedelta(days=1)),  # past due
    ]
    batch = recertify_reminders(cfg, pending, TODAY)
    assert len(batch.reminders) == 1
    r = batch.reminders[0]
    assert r.letter.to == ("Mrs A Patel <apatel@hollybank.test>",) and r.stage == "open"
    assert {k.split(":")[2] for k, _ in r.marks} == {"sims", "raise"}
    assert [f.subject for f in batch.findings] == ["Mr D Okafor (School Business Manager)"]
    assert "systems.sap.approvers" in batch.findings[0].detail
    # wired through build: sent once per stage
    before = len(server.received)
    for day, stage in ((TODAY, "open"), (TODAY, None), (due - dt.timedelta(days=7), "last-week"), (due, "last-day")):
        outbox = Outbox(cfg, server.password)
        run_ = build(cfg, st, d, outbox, today=day, pending=lambda cfg, st: pending)
        mine = [x for x in run_.reminders if x.kind == "recertify"]
        assert [x.stage for x in mine] == ([stage] if stage else [])
        try:
            apply(run_.plan, st)
        finally:
            outbox.close()
    got = [g for g in server.received[before:] if "Access review" in g.message["Subject"]]
    assert len(got) == 3 and all(g.rcpt_tos == ("apatel@hollybank.test",) for g in got)
    assert "Target Tracker" not in got[0].message.get_body(("plain",)).get_content()
    assert "RAISE Online" in got[0].message.get_body(("plain",)).get_content()


def test_a_broken_template_stops_before_the_first_letter(env, tmp_path) -> None:
    info, cfg, d, st, server, _ = env
    approvals.record(st, username="supply", system="sims", approver="Mrs A Patel (Headteacher)", status="waiting")
    folder = info.config_path.parent / "templates"
    folder.mkdir(exist_ok=True)
    (folder / "aup-unsigned.html").write_text("<p>{{ name }} {% if %}</p>")
    before = len(server.received)
    try:
        code, out, err = run("notify", "--yes", config=info.config_path)
    finally:
        (folder / "aup-unsigned.html").unlink()
    assert code == 2 and "aup-unsigned.html, line 1" in err
    assert len(server.received) == before  # nothing sent, not even the letters before it
    code, out, err = run("notify", "--yes", config=info.config_path)
    assert code == 0 and any(g.rcpt_tos == ("supply@hollybank.test",) for g in server.received[before:])


def test_a_hostile_name_is_escaped_and_an_unusable_address_reported(env) -> None:
    info, cfg, d, st, server, _ = env
    acct = d.flavour.find_user(d, "fmoss")
    hostile = "<script>alert('x')</script> Fiona & Moss"
    day = TODAY + dt.timedelta(days=600)
    d.modify(acct.dn, {"displayName": [(ldap3.MODIFY_REPLACE, [hostile])]})
    try:
        result = build(cfg, st, d, None, today=day)
        aup = next(r for r in result.reminders if r.kind == "aup" and r.about == "fmoss")
        from aupctl.mail import render

        msg = render(aup.letter, cfg.mail)
        html = msg.get_body(("html",)).get_content()
        assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Fiona &amp; Moss" in html
        assert hostile in msg.get_body(("plain",)).get_content()
        assert msg["To"].addresses[0].display_name == hostile
        d.modify(acct.dn, {"mail": [(ldap3.MODIFY_REPLACE, ["not-an-address"])]})
        result = build(cfg, st, d, None, today=day)
        found = [f for f in result.findings if f.subject == "fmoss"]
        assert len(found) == 1 and "not usable" in found[0].detail and "not-an-address" in found[0].detail
        assert any(r.kind == "laptop" for r in result.reminders)  # the others still go
    finally:
        d.modify(acct.dn, {"displayName": [(ldap3.MODIFY_REPLACE, [acct.display_name] if acct.display_name else [])],
                           "mail": [(ldap3.MODIFY_REPLACE, [acct.email])]})  # fmt: skip


def test_doctor_checks_the_mail_server(env, monkeypatch: pytest.MonkeyPatch) -> None:
    info, cfg, d, st, server, _ = env
    code, out, err = run("--format", "json", "doctor", config=info.config_path)
    rows = {r["check"]: r for r in json.loads(out)["data"]} if "data" in json.loads(out) else {}
    assert code == 0 and rows["mail"]["ok"] and "logged in as aupctl-sandbox" in rows["mail"]["detail"]
    secret = "Doctor-Wrong-Pass-9"
    monkeypatch.setenv(ENV_MAIL, secret)
    code, out, err = run("doctor", config=info.config_path)
    assert code == EXIT_UNREACHABLE and "refused the login" in out + err and secret not in out + err
