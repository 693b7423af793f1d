"""Findings from facts and records: each cites its clause and says what to do."""

from __future__ import annotations

import datetime as dt

from aupctl.config import Laptops
from aupctl.laptops import checks
from aupctl.laptops.probes.facts import Facts, Software, parse_when

TODAY = dt.date(2026, 11, 21)


def good(**over) -> Facts:
    base = dict(
        os="linux",
        pending_updates=0,
        pending_security=0,
        av_product="ClamAV 1.0",
        av_enabled=True,
        av_realtime=True,
        av_signature_date="2026-11-20",
        encrypted=True,
        encryption_detail="LUKS",
        software=[Software("firefox-esr", "115"), Software("libc6", "2.36", system=True)],
    )
    base.update(over)
    return Facts(**base)


def test_clean_laptop_has_no_findings() -> None:
    assert checks.from_facts("T", good(), Laptops(approved_software=["Firefox*"]), TODAY) == []


def test_each_check() -> None:
    cfg = Laptops(approved_software=["firefox*"], max_pending_updates=2, max_signature_age_days=7)
    by = lambda f: {x.check: x for x in checks.from_facts("T", f, cfg, TODAY)}  # noqa: E731
    assert by(good(pending_updates=2)) == {}
    assert by(good(pending_updates=3, pending_security=0))["pending-updates"].severity == "medium"
    assert (
        "3 pending update(s), 1 of them security"
        in by(good(pending_updates=3, pending_security=1))["pending-updates"].detail
    )
    assert by(good(av_product=None))["antivirus-missing"].clause == "6.7"
    assert "real-time protection off" in by(good(av_realtime=False))["antivirus-off"].detail
    assert "8 days old" in by(good(av_signature_date="2026-11-13"))["signatures-old"].detail
    assert by(good(av_signature_date=None))["signatures-unknown"].severity == "medium"
    assert by(good(encrypted=False))["not-encrypted"].clause == "6.8"
    assert by(good(encrypted=None))["encryption-unknown"].clause == "6.8"
    assert (
        checks.from_facts("T", good(encrypted=False), Laptops(require_encryption=False, approved_software=["*"]), TODAY)
        == []
    )
    many = good(software=[Software(f"game{i}", "1") for i in range(12)])
    f = by(many)["software-not-approved"]
    assert f.clause == "1.4, 6.7" and "12 program(s)" in f.detail and "and 4 more" in f.detail


def test_overdue_names_the_person() -> None:
    cfg = Laptops(checkin_every_days=90)
    f = checks.overdue("HB-7", "o'brien", "2026-06-30T10:00:00+00:00", "2025-01-01", cfg, TODAY)
    assert f and f.clause == "1.4" and "ask o'brien to bring it in" in f.detail and "2026-06-30" in f.detail
    assert checks.overdue("HB-7", "o'brien", "2026-10-01T10:00:00+00:00", "2025-01-01", cfg, TODAY) is None
    f = checks.overdue("HB-8", None, None, "2026-01-01T00:00:00+00:00", cfg, TODAY)
    assert f and "never checked in" in f.detail and "not assigned to anyone" in f.detail


def test_matches_is_a_case_insensitive_glob() -> None:
    assert checks.matches("Mozilla Firefox (x64 en-GB)", ["mozilla firefox*"])
    assert not checks.matches("Firefox", ["Mozilla Firefox*"])
    assert checks.matches("a,b (*)", ["a,b ([*])"])


def test_parse_when_forms() -> None:
    assert parse_when("2024-03-13T04:21:33.1234567Z").date() == dt.date(2024, 3, 13)
    assert parse_when("/Date(1710303693000)/").date() == dt.date(2024, 3, 13)
    assert parse_when("Tue, 12 Mar 2024 21:05:44 GMT").date() == dt.date(2024, 3, 12)
    assert parse_when("yesterday") is None and parse_when("") is None


def test_list_overdue_agrees_with_the_audit(tmp_path) -> None:
    """`laptop list --overdue` and the audit's checkin-overdue finding use one rule."""
    import datetime as dt

    from aupctl.config import parse
    from aupctl.laptops import audit, inventory
    from aupctl.laptops.report import list_rows
    from aupctl.state import State

    cfg = parse(
        '[school]\nname="T"\naup_version="1"\n[directory]\nflavour="openldap"\nurl="ldap://127.0.0.1:9"\n'
        'bind_dn="cn=x"\nbase_dn="dc=t"\nstaff_ou="ou=S"\nleavers_ou="ou=L"\ngroups_ou="ou=G"\n'
        f'[laptops]\ncheckin_every_days=30\nknown_hosts="{tmp_path}/kh"\n'
    )
    state = State(tmp_path / "state.db")
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIE1ww1WyMDlwZhHrKSHlrmY9+dmnYCSjL8pW7GY0iG5G"
    for tag in ("NEW", "OLD", "SEEN"):
        inventory.add(
            state,
            cfg,
            tag=tag,
            host=tag,
            port=22,
            os_name="linux",
            key_type="ssh-ed25519",
            key_b64=key,
            fp="SHA256:" + "D" * 43,
        )
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=45)).isoformat()
    state.execute("UPDATE devices SET enrolled_at = ?, assigned_to = 'zoë' WHERE tag IN ('OLD', 'SEEN')", (long_ago,))
    state.execute(
        "INSERT INTO checkins (tag, at, kind, ok, facts, findings) VALUES ('SEEN', ?, 'checkin', 1, '{}', '[]')",
        (dt.datetime.now(dt.UTC).isoformat(),),
    )
    assert [r["tag"] for r in list_rows(cfg, state, overdue=True)] == ["OLD"]
    rep = audit.run(cfg, state, None, do_probe=False)
    assert [(f.subject, f.check) for f in rep.findings if f.check == "checkin-overdue"] == [("OLD", "checkin-overdue")]
    assert "ask zoë to bring it in" in next(f.detail for f in rep.findings if f.subject == "OLD")
