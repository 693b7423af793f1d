"""AUP declarations on both flavours: import the sandbox's signatures, sign (with the policy text's hash),
status, bad files that change nothing, and grants waiting for a signature applied by `aup sign`."""

from __future__ import annotations

import hashlib

import pytest
from cli_helpers import payload
from test_access import make_person, run

from aupctl.access.aup import import_plan, sign
from aupctl.access.grant import grant_changes
from aupctl.directory import same_dn
from aupctl.eligibility import is_signed
from aupctl.errors import RefusedError
from aupctl.plan import Plan, apply
from aupctl.records import approvals
from aupctl.records.signatures import signature
from aupctl.sandbox.school import AUP_VERSION, HEADTEACHER, PLANTED, UNSIGNED
from aupctl.state import State


def count(st: State) -> int:
    return st.query("SELECT COUNT(*) AS n FROM signatures")[0]["n"]


def test_import_the_sandbox_file_then_again(env) -> None:
    sandbox, cfg, d, st = env
    path = str(sandbox.dir / "aup-signatures.csv")
    code, out, err = run("aup", "import", path, "--dry-run", config=sandbox.config_path)
    assert code == 0 and count(st) == 0
    code, out, err = run("aup", "import", path, "--yes", config=sandbox.config_path)
    assert code == 0, err
    n = count(st)
    assert n > 100
    assert is_signed(cfg, st, "zclarke") and not is_signed(cfg, st, UNSIGNED[0])
    old = PLANTED["old_aup_version"]
    assert not is_signed(cfg, st, old) and is_signed(cfg, st, old, "2023-09")
    audit = st.query("SELECT COUNT(*) AS n FROM audit WHERE action='aup-sign'")[0]["n"]
    assert audit == n
    plan = import_plan(cfg, d, st, path)
    assert plan.empty and any("already on record" in note for note in plan.notes)


@pytest.mark.parametrize(
    "content,words",
    [
        (
            "username,version,signed_on\nzclarke,2024-09,2024-09-02\nnobody-here,2024-09,2024-09-02\n",
            "line 3: no account 'nobody-here'",
        ),
        ("username,signed_on\nzclarke,2099-01-01\n", "line 2: signed_on: 2099-01-01 is in the future"),
        ("username,signed_on\nzclarke,last tuesday\n", "line 2: signed_on: 'last tuesday' is not a date"),
        ("username,signed_on\nzclarke,2024-09-02\nZCLARKE,2024-09-03\n", "line 3: ZCLARKE version"),
        ("name,signed_on\nZoë Clarke,2024-09-02\n", "missing required column(s): username"),
        ("username,favourite_colour\nzclarke,blue\n", "unknown column 'favourite_colour'"),
        ("username,signed_on\n,2024-09-02\n", "line 2: username is empty"),
    ],
)
def test_a_bad_file_records_nothing(env, tmp_path, content, words) -> None:
    sandbox, cfg, d, st = env
    path = tmp_path / "sigs.csv"
    path.write_text(content, encoding="utf-8")
    before = count(st), st.query("SELECT COUNT(*) AS n FROM audit")[0]["n"]
    code, out, err = run("aup", "import", str(path), "--yes", config=sandbox.config_path)
    assert code == 2 and words in err, err
    assert (count(st), st.query("SELECT COUNT(*) AS n FROM audit")[0]["n"]) == before


def test_excel_cp1252_with_uk_dates_and_a_date_column(env, tmp_path) -> None:
    sandbox, cfg, d, st = env
    user = make_person(cfg, d, "ou=Teachers,ou=Staff", "Müller")
    path = tmp_path / "excel.csv"
    path.write_bytes(f"Username;Date;Notes\r\n{user};03/09/2024;signed – paper copy in file\r\n".encode("cp1252"))
    code, out, err = run("aup", "import", str(path), "--yes", config=sandbox.config_path)
    assert code == 0, err
    assert signature(st, user, AUP_VERSION)["signed_on"] == "2024-09-03"


def test_sign_keeps_the_policy_text_hash_and_is_idempotent(env, tmp_path) -> None:
    sandbox, cfg, d, st = env
    text = sandbox.config_path.parent / "aup-text.txt"
    text.write_text("Staff Acceptable Use of ICT Policy\n1.3 Access to certain systems...\n", encoding="utf-8")
    variant = sandbox.config_path.parent / "variant-aup-text.toml"
    variant.write_text(
        sandbox.config_path.read_text().replace(
            'aup_version = "2024-09"', 'aup_version = "2024-09"\naup_text = "aup-text.txt"', 1
        )
    )
    user = make_person(cfg, d, "ou=Teachers,ou=Staff", "Hash")
    code, out, err = run("aup", "sign", user, "--on", "2024-09-04", "--yes", config=variant)
    assert code == 0, err
    sig = signature(st, user, AUP_VERSION)
    assert sig["text_hash"] == hashlib.sha256(text.read_bytes()).hexdigest() and sig["signed_on"] == "2024-09-04"
    code, out, err = run("aup", "sign", user, "--on", "2024-09-05", "--yes", config=variant)
    assert code == 0 and "already signed" in out and signature(st, user, AUP_VERSION)["signed_on"] == "2024-09-04"


def test_sign_bad_input(env) -> None:
    sandbox, cfg, d, st = env
    before = count(st)
    code, out, err = run("aup", "sign", "no-such-person", "--yes", config=sandbox.config_path)
    assert code == 2 and "no account 'no-such-person'" in err
    code, out, err = run("aup", "sign", "zclarke", "--on", "31/02/2024", "--yes", config=sandbox.config_path)
    assert code == 2 and "--on" in err
    code, out, err = run("aup", "sign", "zclarke", "--on", "2999-01-01", "--yes", config=sandbox.config_path)
    assert code == 2 and "future" in err
    assert count(st) == before


def test_a_waiting_grant_is_applied_by_aup_sign(env) -> None:
    sandbox, cfg, d, st = env
    user = make_person(cfg, d, "ou=Teachers,ou=Staff", "Waiting")
    with pytest.raises(RefusedError, match="has not signed"):
        grant_changes(cfg, d, st, user, "raise", HEADTEACHER)
    # what the intake records for a new starter whose declaration has not come back yet
    approvals.record(
        st, username=user, system="raise", approver=HEADTEACHER, reason="intake", status="waiting", source="import"
    )
    code, out, err = run("--format", "json", "access", "list", "raise", config=sandbox.config_path)
    assert [r["status"] for r in payload(out) if r["username"] == user] == ["waiting"]
    acct = d.flavour.find_user(d, user)
    group = cfg.group_dn(cfg.systems["raise"].group)
    assert not any(same_dn(m, acct.dn) for m in d.flavour.group_members(d, group))
    code, out, err = run("aup", "sign", user, "--yes", config=sandbox.config_path)
    assert code == 0 and "was waiting for this signature" in out, out + err
    assert any(same_dn(m, acct.dn) for m in d.flavour.group_members(d, group))
    (row,) = approvals.live(st, username=user, system="raise")
    assert row["status"] == "active" and row["source"] == "import" and row["reason"] == "intake"


def test_engine_sign_returns_the_waiting_grants(env) -> None:
    sandbox, cfg, d, st = env
    user = make_person(cfg, d, "ou=Teachers,ou=Staff", "Engine")
    approvals.record(
        st, username=user, system="target_tracker", approver=HEADTEACHER, status="waiting", source="import"
    )
    assert sign(cfg, st, user, "2023-09") == []  # an old version does not release them
    waiting = sign(cfg, st, user)
    assert [w["system"] for w in waiting] == ["target_tracker"]
    apply(Plan("w", grant_changes(cfg, d, st, user, "target_tracker", waiting[0]["approver"])), st)
    assert approvals.live(st, username=user, system="target_tracker")[0]["status"] == "active"


def test_status(env) -> None:
    sandbox, cfg, d, st = env
    code, out, err = run("--format", "json", "aup", "status", "--unsigned", config=sandbox.config_path)
    rows = payload(out)
    names = {r["username"] for r in rows}
    assert code == 0 and PLANTED["unsigned_with_access"] in names and PLANTED["old_aup_version"] in names
    assert "zclarke" not in names and all(not r["signed"] for r in rows)
    old = next(r for r in rows if r["username"] == PLANTED["old_aup_version"])
    assert old["signed_version"] == "2023-09" and old["current_version"] == AUP_VERSION
    code, out, err = run("aup", "status", config=sandbox.config_path)
    assert code == 0 and "zclarke" in out


def test_help() -> None:
    for sub in ("sign", "import", "status"):
        code, out, err = run("aup", sub, "--help")
        assert code == 0 and "Usage:" in out


def test_an_unreadable_policy_text_is_refused_before_anything_is_recorded(env) -> None:
    sandbox, cfg, d, st = env
    variant = sandbox.config_path.parent / "variant-no-text.toml"
    variant.write_text(
        sandbox.config_path.read_text().replace(
            'aup_version = "2024-09"', 'aup_version = "2024-09"\naup_text = "no-such-policy.txt"', 1
        )
    )
    before = count(st)
    code, out, err = run("aup", "sign", "zclarke", "--yes", config=variant)
    assert code == 2 and "school.aup_text" in err and "no-such-policy.txt" in err
    code, out, err = run("aup", "import", str(sandbox.dir / "aup-signatures.csv"), "--yes", config=variant)
    assert code == 2 and "school.aup_text" in err
    assert count(st) == before
