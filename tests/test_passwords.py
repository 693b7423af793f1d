"""Password hygiene against real servers, on both flavours: the audit finds each planted problem (the
sandbox's and our own fixtures), a clean account gives none, time-based checks with an injected "now",
policies (AD domain + fine-grained, OpenLDAP ppolicy), output that never holds a password or hash,
`check`, and `reset` (old password stops working, new one must be changed), with its fault paths."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import hashlib
import os
import stat
import uuid
import warnings

import ldap3
import pytest
from cli_helpers import payload as envelope_data
from cli_helpers import run_main as run
from cli_helpers import run_tty
from cli_helpers import user_bind as bind

from aupctl.config import load
from aupctl.directory import UAC_ENCRYPTED_TEXT_PWD_ALLOWED, UAC_NORMAL_ACCOUNT, normalise_dn, open_directory
from aupctl.errors import PartialError, UnreachableError
from aupctl.passwords.audit import audit
from aupctl.passwords.reset import plan_reset
from aupctl.plan import apply
from aupctl.sandbox.school import PASSWORDS, PLANTED, PLANTED_ONLY_ON, SANDBOX_PASSWORD
from aupctl.state import State

STRONG = "Lantern-Orbit-Cactus-Meadow-42"


@pytest.fixture(scope="module")
def env(sandbox):
    cfg = load(str(sandbox.config_path))
    d = open_directory(cfg)
    yield sandbox, cfg, d
    d.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def with_passwords(cfg, **changes):
    return dataclasses.replace(cfg, passwords=dataclasses.replace(cfg.passwords, **changes))


def make_user(cfg, d, *, password: str | None = STRONG, extra: dict | None = None, given: str = "Test") -> str:
    """A fresh, enabled account in the teachers' OU; returns its username."""
    tag = uuid.uuid4().hex[:8]
    username, surname = f"pw{tag}", f"Person{tag}"
    dn, classes, attrs = d.flavour.new_user(
        username=username,
        given_name=given,
        surname=surname,
        display_name=f"{given} {surname}",
        email="",
        staff_code="",
        ou_dn=cfg.dn("ou=Teachers,ou=Staff"),
        extra=extra,
    )
    d.add(dn, classes, attrs)
    if password:
        d.flavour.set_password(d, dn, password)
    acct = d.flavour.find_user(d, username)
    d.modify(dn, d.flavour.enable_changes(acct))
    return username


def dn_of(d, username: str) -> str:
    return d.flavour.find_user(d, username).dn


def can_bind(cfg, dn: str, password: str) -> bool:
    conn = bind(cfg, dn, password)
    ok = conn.bound
    conn.unbind()
    return ok


def by_subject(findings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f.subject, set()).add(f.check)
    return out


# -- the audit --


def test_audit_finds_every_planted_problem(env) -> None:
    info, cfg, d = env
    result = audit(cfg, d)
    found = by_subject(result.findings)
    expected = {
        PLANTED["stale"]: "stale-account",
        PLANTED["never_logged_on"]: "stale-account",
        PLANTED["shared_account"]: "shared-account",
        PLANTED["privileged"]: "privileged-staff-account",
        PLANTED["passwd_notreqd"]: "password-not-required",
        PLANTED["cleartext_password"]: "cleartext-password",
        PLANTED["md5_password"]: "weak-password-scheme",
        PLANTED["shared_sha_password"]: "shared-password",
        PLANTED["shared_sha_password_twin"]: "shared-password",
        PLANTED["guessable_password"]: "easily-guessed-password",
    }
    keys = {v: k for k, v in PLANTED.items()}
    for username, check in expected.items():
        only = PLANTED_ONLY_ON.get(keys[username])
        if only and only != info.flavour:
            assert check not in found.get(username, set()), (username, check)
            continue
        if check == "easily-guessed-password" and info.flavour == "ad":
            continue  # AD never lets anyone read a hash: the deny-list test is OpenLDAP's
        assert check in found.get(username, set()), (username, check, found.get(username))
    if info.flavour == "openldap":
        for username in PASSWORDS["openldap"]:  # every planted weak password is on the deny list
            assert "easily-guessed-password" in found[username], username
        assert "weak-password-scheme" in found[PLANTED["shared_sha_password"]]
        assert result.hashes_tested >= result.accounts - 2 and result.hash_computations > 0
        assert "password policy" not in found  # the sandbox has a ppolicy default
    else:
        # Samba's defaults: 7 characters, no lockout, 42-day expiry
        assert {"policy-min-length", "policy-no-lockout", "policy-forced-expiry"} <= found["domain policy"]
        assert "Domain Admins" in next(
            f.detail for f in result.findings if f.subject == PLANTED["privileged"] and "privileged" in f.check
        )
    for f in result.findings:
        assert f.clause == "6.2" and f.severity in ("high", "medium", "low") and "Fix:" in f.detail
    shared = next(f for f in result.findings if f.check == "shared-account")
    assert "I will not use anyone's account except my own" in shared.detail
    assert "apatel" not in found  # an ordinary seeded teacher (the headteacher) is clean


def test_a_clean_account_produces_no_findings(env) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    assert can_bind(cfg, dn_of(d, username), STRONG)  # and it has logged on
    found = by_subject(audit(cfg, d).findings)
    assert username not in found


def test_disabled_accounts_only_with_include_disabled(env) -> None:
    info, cfg, d = env
    plain = audit(cfg, d, hash_check=False)
    everyone = audit(cfg, d, hash_check=False, include_disabled=True)
    assert everyone.accounts > plain.accounts
    assert plain.hashes_tested == 0 and plain.hash_computations == 0


def test_stale_and_initial_password_with_an_injected_now(env) -> None:
    """The sandbox cannot plant old logon dates on AD: small thresholds and a later 'now' instead."""
    info, cfg, d = env
    used = make_user(cfg, d)
    assert can_bind(cfg, dn_of(d, used), STRONG)
    unused = make_user(cfg, d)
    handed_out = make_user(cfg, d)
    d.flavour.force_change(d, dn_of(d, handed_out))
    small = with_passwords(cfg, stale_after_days=30, initial_grace_days=5)
    lag = d.flavour.logon_lag_days
    assert lag == (14 if info.flavour == "ad" else 0)

    def checks(days: int) -> dict[str, set[str]]:
        found = by_subject(audit(small, d, now=now() + dt.timedelta(days=days), hash_check=False).findings)
        return {u: found.get(u, set()) for u in (used, unused, handed_out)}

    assert checks(3) == {used: set(), unused: set(), handed_out: set()}
    later = checks(31 + lag // 2)  # past 30 days; on AD still inside the lastLogonTimestamp lag
    assert "stale-account" in later[unused]  # never logged on: counted from its creation
    assert ("stale-account" in later[used]) == (lag == 0)
    assert "initial-password-unchanged" in later[handed_out]
    assert "stale-account" in checks(31 + lag)[used]


def test_changed_before_an_incident(env) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    after = by_subject(audit(cfg, d, changed_before=now() + dt.timedelta(days=1), hash_check=False).findings)
    before = by_subject(audit(cfg, d, changed_before=now() - dt.timedelta(days=1), hash_check=False).findings)
    assert "not-changed-since" in after[username]
    assert "not-changed-since" in after[PLANTED["stale"]]
    assert "not-changed-since" not in before.get(username, set())


def test_max_age_only_when_the_school_sets_one(env) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    later = now() + dt.timedelta(days=3)
    assert "password-too-old" not in by_subject(audit(cfg, d, now=later, hash_check=False).findings).get(username, ())
    strict = with_passwords(cfg, max_age_days=1)
    found = by_subject(audit(strict, d, now=later, hash_check=False).findings)
    assert "password-too-old" in found[username]
    never = "password-never-expires"
    assert (never in found.get(PLANTED["never_expires"], set())) == (info.flavour == "ad")


# -- flavour-specific findings --


def test_ad_reversible_encryption_per_account_and_in_the_domain(env) -> None:
    info, cfg, d = env
    if info.flavour != "ad":
        pytest.skip("AD only: OpenLDAP has no reversible-encryption setting")
    username = make_user(cfg, d)
    dn = dn_of(d, username)
    d.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(UAC_NORMAL_ACCOUNT | 0x80)])]})
    assert d.flavour.find_user(d, username).uac & UAC_ENCRYPTED_TEXT_PWD_ALLOWED
    assert "reversible-encryption" in by_subject(audit(cfg, d, hash_check=False).findings)[username]
    base = cfg.directory.base_dn
    old = int(d.read(base, ["pwdProperties"])["pwdProperties"][0])
    d.modify(base, {"pwdProperties": [(ldap3.MODIFY_REPLACE, [str(old | 0x10)])]})
    try:
        found = by_subject(audit(cfg, d, hash_check=False).findings)
        assert "policy-reversible-encryption" in found["domain policy"]
    finally:
        d.modify(base, {"pwdProperties": [(ldap3.MODIFY_REPLACE, [str(old)])]})
    assert "policy-reversible-encryption" not in by_subject(audit(cfg, d, hash_check=False).findings)["domain policy"]


def _pso(d, cfg, name: str, *, min_length: int, precedence: int, applies_to: list[str]) -> str:
    dn = f"CN={name},CN=Password Settings Container,CN=System,{cfg.directory.base_dn}"
    day = -864_000_000_000
    d.add(
        dn,
        ["top", "msDS-PasswordSettings"],
        {
            "msDS-PasswordSettingsPrecedence": str(precedence),
            "msDS-PasswordReversibleEncryptionEnabled": "FALSE",
            "msDS-PasswordHistoryLength": "24",
            "msDS-PasswordComplexityEnabled": "TRUE",
            "msDS-MinimumPasswordLength": str(min_length),
            "msDS-MinimumPasswordAge": "0",
            "msDS-MaximumPasswordAge": str(-0x8000000000000000),
            "msDS-LockoutThreshold": "10",
            "msDS-LockoutObservationWindow": str(day // 96),
            "msDS-LockoutDuration": str(day // 96),
            "msDS-PSOAppliesTo": applies_to,
        },
    )
    return dn


def test_ad_fine_grained_policies_are_taken_into_account(env) -> None:
    info, cfg, d = env
    if info.flavour != "ad":
        pytest.skip("AD only: fine-grained password policies")
    tag = uuid.uuid4().hex[:6]
    before = audit(cfg, d, hash_check=False)
    domain_count = before.accounts
    staff = cfg.group_dn("All Staff")
    members = d.flavour.effective_members(d, staff)
    weakling = make_user(cfg, d)
    d.flavour.add_member(d, staff, dn_of(d, weakling))
    good = _pso(d, cfg, f"Staff {tag}", min_length=14, precedence=10, applies_to=[staff])
    weak = _pso(d, cfg, f"Legacy {tag}", min_length=6, precedence=50, applies_to=[dn_of(d, weakling)])
    try:
        policies = d.flavour.password_policies(d)
        assert {p.name for p in policies} >= {f"Staff {tag}", f"Legacy {tag}", "domain policy"}
        resolve = d.flavour.policy_resolver(d, policies)
        some_teacher = next(iter(members))
        assert resolve(some_teacher, {}).dn == good  # through the group
        assert resolve(dn_of(d, weakling), {}).dn == weak  # applied to the user beats the group's, whatever precedence
        result = audit(cfg, d, hash_check=False)
        mine = [f for f in result.findings if f.subject == f"fine-grained policy Legacy {tag}"]
        assert [f.check for f in mine] == ["policy-min-length"] and "applies to 1 account(s)" in mine[0].detail
        assert not [f for f in result.findings if f.subject == f"fine-grained policy Staff {tag}"]
        domain = next(f for f in result.findings if f.subject == "domain policy" and f.check == "policy-min-length")
        enabled = {
            normalise_dn(a.dn)
            for a in d.flavour.iter_accounts(d, base=cfg.directory.base_dn, with_groups=False)
            if not a.disabled
        }
        covered = len({normalise_dn(m) for m in members} & enabled) + 1  # the audit skips disabled accounts
        assert f"applies to {result.accounts - covered} account(s)" in domain.detail
        assert result.accounts - covered < domain_count
    finally:
        d.conn.delete(weak)
        d.conn.delete(good)


def test_openldap_crypt_salted_hashes_and_own_names(env) -> None:
    info, cfg, d = env
    if info.flavour != "openldap":
        pytest.skip("OpenLDAP only: AD never lets a client read a password hash")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        des = "{CRYPT}" + crypt.crypt("letmein1", "xy")
    salt = os.urandom(8)
    mine = make_user(cfg, d, password=None, given="Wilhelmina")
    d.modify(
        dn_of(d, mine),
        {"userPassword": [(ldap3.MODIFY_REPLACE, ["{SSHA}" + base64.b64encode(
            hashlib.sha1(b"Wilhelmina1987!" + salt).digest() + salt).decode()])]},
    )  # fmt: skip
    old_crypt = make_user(cfg, d, password=None, extra={"userPassword": des})
    strong = make_user(cfg, d)
    found = by_subject(audit(cfg, d).findings)
    assert {"weak-password-scheme", "easily-guessed-password"} <= found[old_crypt]
    assert found[mine] == {"easily-guessed-password"}
    assert strong not in found


def test_openldap_policy_missing_or_weak(env) -> None:
    info, cfg, d = env
    if info.flavour != "openldap":
        pytest.skip("OpenLDAP only: the ppolicy overlay")
    policies = d.flavour.password_policies(d)
    default = next(p for p in policies if p.default)
    assert default.min_length >= cfg.passwords.min_length and default.lockout_threshold > 0
    admin = info.connect(info.admin_dn, info.admin_password)  # the service account may not edit policies
    admin.search(default.dn, "(objectClass=*)", ldap3.BASE, attributes=["pwdLockout", "pwdMaxAge"])
    before = admin.response[0]["raw_attributes"]
    weaker = {"pwdMinLength": ["8"], "pwdLockout": ["FALSE"], "pwdMaxAge": ["7776000"]}  # 90-day expiry
    assert admin.modify(default.dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in weaker.items()}), admin.result
    try:
        found = by_subject(audit(cfg, d, hash_check=False).findings)
        assert {"policy-min-length", "policy-no-lockout", "policy-forced-expiry"} <= found[f"ppolicy {default.name}"]
        assert "90 days" in next(f.detail for f in audit(cfg, d, hash_check=False).findings
                                 if f.check == "policy-forced-expiry")  # fmt: skip
    finally:
        restore = {"pwdMinLength": [str(default.min_length)]}
        restore |= {k: list(before.get(k, [])) for k in ("pwdLockout", "pwdMaxAge")}
        assert admin.modify(default.dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in restore.items()}), admin.result
    assert not {"policy-min-length", "policy-no-lockout", "policy-forced-expiry"} & by_subject(
        audit(cfg, d, hash_check=False).findings
    ).get(f"ppolicy {default.name}", set())
    # no policy at all: the entry goes (and comes back as it was)
    admin.search(default.dn, "(objectClass=*)", ldap3.BASE, attributes=[ldap3.ALL_ATTRIBUTES])
    saved = {k: v for k, v in admin.response[0]["raw_attributes"].items()}
    assert admin.delete(default.dn)
    try:
        result = audit(cfg, d, hash_check=False)
        none = [f for f in result.findings if f.check == "no-password-policy"]
        assert none and none[0].subject == "password policy"
        assert none[0].severity == "high" and f"{result.accounts} account(s)" in none[0].detail
    finally:
        classes = saved.pop("objectClass")
        assert admin.add(default.dn, [c.decode() for c in classes], saved), admin.result
        admin.unbind()
    assert d.exists(default.dn)


# -- output never holds a password or a hash --


def test_audit_output_never_contains_a_password_or_hash(env) -> None:
    info, cfg, d = env
    secrets = set(PASSWORDS[info.flavour].values()) | {SANDBOX_PASSWORD}
    if info.flavour == "openldap":
        admin = info.connect(info.admin_dn, info.admin_password)
        for username in PASSWORDS["openldap"]:
            admin.search(cfg.directory.base_dn, f"(uid={username})", attributes=["userPassword"])
            for value in admin.response[0]["raw_attributes"]["userPassword"]:
                text = value.decode()
                secrets |= {text, text.split("}", 1)[-1]}
        admin.unbind()
    outputs = {}
    for fmt in ("table", "json"):
        code, out, err = run("--format", fmt, "password", "audit", config=info.config_path)
        assert code == 1, err
        assert PLANTED["shared_account"] in out
        for secret in secrets:
            assert secret not in out and secret not in err, (fmt, "a secret leaked")
            assert secret.lower() not in out.lower()
        outputs[fmt] = out
    rows = envelope_data(outputs["json"])
    assert rows and set(rows[0]) == {"subject", "system", "check", "clause", "severity", "detail"}
    if info.flavour == "openldap":
        assert any(r["check"] == "easily-guessed-password" for r in rows)  # the hash test ran


# -- the commands --


def test_audit_command_help_and_bad_input(env) -> None:
    info, cfg, d = env
    code, out, _ = run("password", "audit", "--help")
    assert code == 0 and "--changed-before" in out and "Exit codes" in out
    code, out, err = run("password", "audit", "--changed-before", "last tuesday", config=info.config_path)
    assert code == 2 and "--changed-before" in err and "YYYY-MM-DD" in err and out == ""
    code, out, err = run("password", "audit", "--no-hash-check", config=info.config_path)
    assert code == 1 and "audited" in err and PLANTED["stale"] in out


def test_check_command(env) -> None:
    info, cfg, d = env
    code, out, _ = run("password", "check", "--help")
    assert code == 0 and "hidden prompt" in out
    code, out, err = run("password", "check", config=info.config_path, input="Summer2024!\n")
    assert code == 1 and "common word" in out and "Summer2024!" not in out + err
    code, out, err = run("password", "check", config=info.config_path, input="Hollybank Primary School\n")
    assert code == 1 and "school's name" in out
    code, out, err = run("password", "check", config=info.config_path, input="Velvet Harbor Timber\n")
    assert code == 0 and "acceptable" in out
    victim = PLANTED["guessable_password"]
    person = d.flavour.find_user(d, victim)
    own = f"{person.given_name}{person.surname}1985!"
    code, out, err = run("--format", "json", "password", "check", victim, config=info.config_path, input=own + "\n")
    payload = envelope_data(out)
    assert code == 1 and payload["user"] == victim and payload["acceptable"] is False
    assert any("own name" in r for r in payload["reasons"]) and own not in out + err
    code, out, err = run("password", "check", "nosuchperson", config=info.config_path, input=STRONG + "\n")
    assert code == 2 and "nosuchperson" in err
    code, out, err = run("password", "check", config=info.config_path, input="")
    assert code == 2 and "no password given" in err


def _state_bytes(cfg) -> bytes:
    data = b""
    for suffix in ("", "-wal"):
        path = f"{cfg.state.path}{suffix}"
        if os.path.exists(path):
            with open(path, "rb") as fh:
                data += fh.read()
    return data


def test_reset_to_a_file(env, tmp_path) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    dn = dn_of(d, username)
    out_file = tmp_path / "reset.csv"
    code, out, err = run("password", "reset", username, "--credentials-out", str(out_file), "--yes",
                         config=info.config_path)  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    (row,) = list(csv.DictReader(out_file.open()))
    new = row["password"]
    assert row["username"] == username and row["must_change"] == "yes" and new not in out + err
    assert not can_bind(cfg, dn, STRONG)  # the old password stops working
    _assert_must_change(info, cfg, d, dn, new)
    assert new.encode() not in _state_bytes(cfg)
    st = State(cfg.state.path)
    actions = [e.action for e in st.audit_entries(target=username)]
    st.close()
    assert actions[-2:] == ["password-reset", "password-force-change"]


def _assert_must_change(info, cfg, d, dn: str, new: str) -> None:
    """AD: the bind is refused with data 773 (must change); OpenLDAP: pwdReset TRUE, the bind works."""
    conn = bind(cfg, dn, new)
    if info.flavour == "ad":
        assert not conn.bound and "data 773" in conn.result["message"], conn.result
        assert str(d.read(dn, ["pwdLastSet"])["pwdLastSet"][0]) in ("0", "1601-01-01 00:00:00+00:00")
    else:
        assert conn.bound
        assert str(d.read(dn, ["pwdReset"])["pwdReset"][0]).upper() == "TRUE"
    conn.unbind()


def test_reset_show_and_json(env) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    # --show writes the password only to a terminal: the real CLI, its stdout a pseudo-terminal
    code, out, err = run_tty("--format", "json", "password", "reset", username, "--show", "--yes",
                             config=info.config_path)  # fmt: skip
    assert code == 0, err
    payload = envelope_data(out)
    assert payload["username"] == username and payload["must_change"] is True and payload["password_to"] == "terminal"
    assert not can_bind(cfg, payload["dn"], STRONG)
    _assert_must_change(info, cfg, d, payload["dn"], payload["password"])
    code, out, err = run_tty("password", "reset", username, "--show", "--yes", config=info.config_path)
    assert code == 0 and f"New password for {username}: " in out


def test_reset_bad_input_changes_nothing(env, tmp_path) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    dn = dn_of(d, username)
    code, out, _ = run("password", "reset", "--help")
    assert code == 0 and "--credentials-out" in out and "--dry-run" in out
    existing = tmp_path / "old.csv"
    existing.write_text("keep me\n")
    cases = [
        (["--credentials-out", str(existing), "--yes"], "never overwritten"),
        (["--yes"], "say where the new password goes"),
        (["--show", "--credentials-out", str(tmp_path / "x.csv"), "--yes"], "not both"),
        (["--show", "--yes"], "standard output is not a terminal"),  # redirected: use --credentials-out
        (["--credentials-out", str(tmp_path / "missing" / "x.csv"), "--yes"], "does not exist"),
        (["--credentials-out", str(tmp_path / "y.csv")], "no --yes"),  # no terminal to confirm
        (["--credentials-out", str(tmp_path / "z.csv"), "--dry-run"], ""),
    ]
    for args, why in cases:
        code, out, err = run("password", "reset", username, *args, config=info.config_path)
        assert code == (0 if "--dry-run" in args else 2), (args, err)
        assert why in err
        assert can_bind(cfg, dn, STRONG), args  # nothing changed
    assert existing.read_text() == "keep me\n"
    assert not any((tmp_path / n).exists() for n in ("x.csv", "y.csv", "z.csv"))
    code, out, err = run("password", "reset", "nosuch*(", "--show", "--yes", config=info.config_path)
    assert code == 2 and "nosuch*(" in err


def test_reset_interrupted_changes_nothing_and_a_rerun_finishes(env, tmp_path, monkeypatch) -> None:
    info, cfg, d = env
    username = make_user(cfg, d)
    dn = dn_of(d, username)
    st = State(cfg.state.path)
    flavour = type(d.flavour)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    plan, _ = plan_reset(cfg, d, username, credentials_out=str(tmp_path / "a.csv"))
    monkeypatch.setattr(flavour, "set_password", interrupted)
    with pytest.raises(PartialError) as exc:
        apply(plan, st)
    assert exc.value.done == 0 and "interrupted" in exc.value.message
    assert not (tmp_path / "a.csv").exists()  # a password that was never set is not left lying around
    assert can_bind(cfg, dn, STRONG)
    monkeypatch.undo()

    plan, secret = plan_reset(cfg, d, username, credentials_out=str(tmp_path / "b.csv"))
    monkeypatch.setattr(flavour, "force_change", interrupted)
    with pytest.raises(PartialError) as exc:
        apply(plan, st)
    assert exc.value.done == 1 and exc.value.remaining == 1
    assert secret.value in (tmp_path / "b.csv").read_text()  # the password that was set can be read
    monkeypatch.undo()
    plan, secret = plan_reset(cfg, d, username, credentials_out=str(tmp_path / "c.csv"))
    apply(plan, st)  # the re-run does the whole job
    st.close()
    _assert_must_change(info, cfg, d, dn, secret.value)


def test_reset_with_the_server_gone(fresh_openldap, tmp_path) -> None:
    cfg = load(str(fresh_openldap.config_path))
    d = open_directory(cfg)
    username = PLANTED["guessable_password"]
    plan, _ = plan_reset(cfg, d, username, credentials_out=str(tmp_path / "gone.csv"))
    fresh_openldap.stop()
    st = State(cfg.state.path)
    with pytest.raises(UnreachableError):
        apply(plan, st)
    st.close()
    assert not (tmp_path / "gone.csv").exists()
    code, out, err = run("password", "audit", config=fresh_openldap.config_path)
    assert code == 3 and "cannot reach" in err, (code, out, err)


def test_audit_interrupted_or_cut_off_leaves_no_worker_behind(fresh_openldap, monkeypatch) -> None:
    import multiprocessing

    from aupctl.directory import OpenLDAP

    cfg = load(str(fresh_openldap.config_path))
    small_pages = dataclasses.replace(cfg, directory=dataclasses.replace(cfg.directory, page_size=20))
    d = open_directory(small_pages)
    real = OpenLDAP.account
    seen = []

    def interrupt_at_60(self, dn, attrs):
        seen.append(dn)
        if len(seen) == 60:
            raise KeyboardInterrupt
        return real(self, dn, attrs)

    monkeypatch.setattr(OpenLDAP, "account", interrupt_at_60)
    with pytest.raises(KeyboardInterrupt):
        audit(small_pages, d)
    assert multiprocessing.active_children() == []

    seen.clear()

    def server_gone_at_30(self, dn, attrs):
        seen.append(dn)
        if len(seen) == 30:
            fresh_openldap.stop()  # the next page cannot be fetched
        return real(self, dn, attrs)

    monkeypatch.setattr(OpenLDAP, "account", server_gone_at_30)
    with pytest.raises(UnreachableError, match="lost the directory"):
        audit(small_pages, d)
    assert multiprocessing.active_children() == []


def test_openldap_bind_that_cannot_read_hashes_is_told(env) -> None:
    info, cfg, d = env
    if info.flavour != "openldap":
        pytest.skip("OpenLDAP only: AD never shows a hash to anyone")
    from aupctl.directory import Directory

    teacher = dataclasses.replace(cfg.directory, bind_dn=info.bind_name("apatel"))
    plain = Directory(dataclasses.replace(cfg, directory=teacher), SANDBOX_PASSWORD).connect()
    try:
        result = audit(dataclasses.replace(cfg, directory=teacher), plain)
    finally:
        plain.close()
    assert result.accounts > 100 and result.hashes_tested <= 1  # its own hash only
    assert any("read access to userPassword" in n for n in result.notes)
    assert not [f for f in result.findings if f.check == "easily-guessed-password"]
    assert not audit(cfg, d, hash_check=False).notes and not audit(cfg, d).notes
