"""The pure parts of password hygiene: the candidate check, the deny-list candidates, userPassword parsing,
the per-account and policy findings (time injected), and the multiprocess hash test on synthetic hashes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import warnings

import pytest

from aupctl.config import parse
from aupctl.directory import (
    UAC_DONT_EXPIRE_PASSWORD,
    UAC_ENCRYPTED_TEXT_PWD_ALLOWED,
    UAC_NORMAL_ACCOUNT,
    UAC_PASSWD_NOTREQD,
    Account,
    PasswordPolicy,
)
from aupctl.directory import (
    interval_days as _interval_days,
)
from aupctl.domain.policy import PolicyUse
from aupctl.domain.policy import policy_findings as domain_judge
from aupctl.passphrase import generate
from aupctl.passwords.audit import account_findings, policy_findings
from aupctl.passwords.denylist import check_candidate, common_candidates, personal_candidates
from aupctl.passwords.hashes import HashJob, _HashTester, parse_user_password, weak_scheme
from aupctl.passwords.reset import Secret, check_destination, new_passphrase

CFG = parse(
    """
[school]
name = "St Aldhelm's C of E Primary School"
aup_version = "2024-09"
[directory]
flavour = "ad"
url = "ldaps://dc1.example.test"
bind_dn = "CN=aupctl,CN=Users,DC=example,DC=test"
base_dn = "DC=example,DC=test"
staff_ou = "OU=Staff"
leavers_ou = "OU=Leavers"
groups_ou = "OU=Groups"
[passwords]
deny_words = ["kestrel"]
shared_account_patterns = ["supply*", "office", "*.shared"]
""",
    "test.toml",
)
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
PERSON = Account(dn="CN=Zoë O'Brien,OU=Teachers,OU=Staff,DC=example,DC=test", username="zobrien",
                 given_name="Zoë", surname="O'Brien")  # fmt: skip


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


# -- check_candidate --


@pytest.mark.parametrize("pw", ["Velvet-Harbor-Timber", "correct horse battery staple", "lantern orbit cactus"])
def test_three_random_words_are_acceptable(pw: str) -> None:
    assert check_candidate(CFG, pw) == []
    assert check_candidate(CFG, pw, person=PERSON) == []


@pytest.mark.parametrize(
    "pw, why",
    [
        ("Summer2024!", "common word"),
        ("Password123", "most common passwords"),
        ("St Aldhelm's C of E Primary School", "school's name"),
        ("StAldhelms2024!", "school's name"),
        ("Aldhelm-Primary-2025", "school's name"),
        ("4ldh3lm-2019!", "school's name"),
        ("Kestrel-Kestrel-99", "school's name"),  # deny_words count as the school's
        ("September2026", "common word"),
        ("Zq8#vLw", "shorter than 12"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(pw: str, why: str) -> None:
    reasons = check_candidate(CFG, pw)
    assert any(why in r for r in reasons), reasons
    assert all(pw not in r and pw.lower() not in r.lower() for r in reasons)  # never quoted back


def test_the_persons_own_names_are_refused_only_for_them() -> None:
    for pw in ("ZoeOBrien1985!", "Obrien-2024-!", "zobrien123456"):
        reasons = check_candidate(CFG, pw, person=PERSON)
        assert any("own name" in r for r in reasons), (pw, reasons)
    assert not any("own name" in r for r in check_candidate(CFG, "ZoeOBrien1985!"))


def test_generated_passphrases_always_pass() -> None:
    """The intake and reset hand these out: they must pass the same check the technician runs."""
    for _ in range(200):
        assert check_candidate(CFG, generate(), person=PERSON) == []
    assert check_candidate(CFG, generate(3)) == []


def test_new_passphrase_meets_a_long_min_length_and_hides_itself() -> None:
    cfg = dataclasses.replace(CFG, passwords=dataclasses.replace(CFG.passwords, min_length=40))
    secret = new_passphrase(cfg, PERSON)
    assert len(secret.value) >= 40
    assert secret.value not in repr(secret) and secret.value not in str(secret)
    assert "hidden" in repr(Secret("x"))


# -- deny-list candidates --


def test_deny_list_candidates_cover_the_usual_patterns() -> None:
    common = set(common_candidates(CFG, NOW.date()))
    for pw in (b"Password123", b"letmein2019", b"Welcome2024", b"Summer2025!", b"Aldhelm2024!", b"kestrel1", b"qwerty"):
        assert pw in common, pw
    mine = set(personal_candidates("Zoë", "O'Brien", "zobrien", NOW.date()))
    for pw in (b"Zoe1985", b"obrien123", b"Zobrien2026!", b"zoeobrien!"):
        assert pw in mine, pw
    assert len(common) < 20_000  # the hash test's budget (bench/passwords.py)


# -- userPassword parsing --


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_parse_user_password_schemes() -> None:
    salt = b"saltsalt"
    ssha = "{SSHA}" + b64(hashlib.sha1(b"pw" + salt).digest() + salt)
    assert parse_user_password(ssha.encode()) == ("SSHA", hashlib.sha1(b"pw" + salt).digest(), salt)
    assert parse_user_password("{sha}" + b64(hashlib.sha1(b"pw").digest()))[0] == "SHA"
    assert parse_user_password("{MD5}" + b64(hashlib.md5(b"pw").digest()))[:2] == ("MD5", hashlib.md5(b"pw").digest())
    assert parse_user_password("{SMD5}" + b64(hashlib.md5(b"pw" + salt).digest() + salt))[2] == salt
    assert parse_user_password(b"{CRYPT}abJnggxhB/yWI") == ("CRYPT", b"abJnggxhB/yWI", b"")
    assert parse_user_password(b"plain words") == ("CLEARTEXT", b"plain words", b"")
    assert parse_user_password(b"{SASL}zoe@EXAMPLE") is None
    assert parse_user_password(b"{SSHA}bm90IGxvbmc=") is None  # too short to hold a digest


def test_weak_schemes() -> None:
    assert "unsalted" in weak_scheme("SHA", b"x")
    assert "unsalted" in weak_scheme("MD5", b"x")
    assert "DES" in weak_scheme("CRYPT", b"abJnggxhB/yWI")
    assert weak_scheme("CRYPT", b"$6$salt$hash") is None
    assert weak_scheme("SSHA", b"x") is None


# -- per-account findings --


def acct(**kw) -> Account:
    base = dict(
        dn=f"CN=Test,OU=Teachers,OU=Staff,{CFG.directory.base_dn}",
        username="tperson",
        given_name="Test",
        surname="Person",
        created=days_ago(400),
        password_changed=days_ago(30),
        last_logon=days_ago(2),
        uac=UAC_NORMAL_ACCOUNT,
    )
    base.update(kw)
    return Account(**base)


def checks(a: Account, *, lag: int = 14, changed_before=None, privileged=(), cfg=CFG) -> set[str]:
    found = account_findings(
        cfg, a, now=NOW, changed_before=changed_before, logon_lag_days=lag, privileged=list(privileged)
    )
    for f in found:
        assert f.clause == "6.2" and f.severity in ("high", "medium", "low", "info") and "Fix:" in f.detail
    return {f.check for f in found}


def test_a_clean_account_has_no_findings() -> None:
    assert checks(acct()) == set()


def test_stale_allows_for_the_ad_lag_and_counts_never_logged_on_from_creation() -> None:
    assert checks(acct(last_logon=days_ago(100)), lag=14) == set()  # inside 90 + 14
    assert checks(acct(last_logon=days_ago(100)), lag=0) == {"stale-account"}
    assert checks(acct(last_logon=days_ago(105)), lag=14) == {"stale-account"}
    assert checks(acct(last_logon=None, created=days_ago(91))) == {"stale-account"}
    assert checks(acct(last_logon=None, created=days_ago(89))) == set()
    # reset by an administrator 10 days ago (ppolicy then forgets the last logon): counted from the reset
    reset = acct(last_logon=None, created=days_ago(3000), must_change=True, password_changed=days_ago(10))
    assert checks(reset) == set()
    assert checks(acct(last_logon=days_ago(300), disabled=True)) == set()


def test_initial_password_never_changed() -> None:
    # AD: pwdLastSet 0 has no date; the creation date counts
    assert "initial-password-unchanged" in checks(acct(must_change=True, password_changed=None, created=days_ago(15)))
    assert checks(acct(must_change=True, password_changed=None, created=days_ago(13))) == set()
    # OpenLDAP: pwdReset with the date the first password was set
    assert "initial-password-unchanged" in checks(acct(must_change=True, password_changed=days_ago(20)))


def test_changed_before_an_incident() -> None:
    incident = days_ago(10)
    assert checks(acct(password_changed=days_ago(30)), changed_before=incident) == {"not-changed-since"}
    assert checks(acct(password_changed=days_ago(5)), changed_before=incident) == set()
    assert checks(acct(password_changed=None), changed_before=incident) == {"not-changed-since"}


def test_max_age_and_never_expires_only_when_the_school_sets_one() -> None:
    old = acct(password_changed=days_ago(400), uac=UAC_NORMAL_ACCOUNT | UAC_DONT_EXPIRE_PASSWORD)
    assert checks(old) == set()  # max_age_days = 0: NCSC, no forced expiry
    strict = dataclasses.replace(CFG, passwords=dataclasses.replace(CFG.passwords, max_age_days=365))
    assert checks(old, cfg=strict) == {"password-too-old", "password-never-expires"}


def test_shared_names_privileged_staff_and_ad_flags() -> None:
    found = account_findings(
        CFG, acct(username="Supply2"), now=NOW, changed_before=None, logon_lag_days=14, privileged=[]
    )
    assert [f.check for f in found] == ["shared-account"]
    assert "I will not use anyone's account except my own" in found[0].detail
    assert checks(acct(username="office")) == {"shared-account"}
    assert checks(acct(username="offices")) == set()
    assert checks(acct(), privileged=["Domain Admins"]) == {"privileged-staff-account"}
    admin = acct(dn=f"CN=Admin Kwame,OU=Admins,{CFG.directory.base_dn}")
    assert checks(admin, privileged=["Domain Admins"]) == set()  # a separate admin account is the fix
    assert checks(acct(uac=UAC_NORMAL_ACCOUNT | UAC_PASSWD_NOTREQD)) == {"password-not-required"}
    assert checks(acct(uac=UAC_NORMAL_ACCOUNT | UAC_ENCRYPTED_TEXT_PWD_ALLOWED)) == {"reversible-encryption"}
    assert checks(acct(uac=None)) == set()  # OpenLDAP has no UAC


# -- policies --


def test_policy_findings_count_the_accounts_each_policy_applies_to() -> None:
    domain = PasswordPolicy("domain policy", "DC=x", "domain", min_length=7, max_age_days=42, default=True)
    good = PasswordPolicy("Staff", "CN=Staff,CN=PSC", "fine-grained", min_length=14, lockout_threshold=5)
    weak = PasswordPolicy("Legacy", "CN=Legacy,CN=PSC", "fine-grained", min_length=6, lockout_threshold=5,
                          reversible=True)  # fmt: skip
    found = policy_findings(CFG, [domain, good, weak], {"DC=x": 3, "CN=Staff,CN=PSC": 100, "CN=Legacy,CN=PSC": 1}, "ad")
    by = {(f.subject, f.check) for f in found}
    assert by == {
        ("domain policy", "policy-min-length"),
        ("domain policy", "policy-no-lockout"),
        ("domain policy", "policy-forced-expiry"),
        ("fine-grained policy Legacy", "policy-min-length"),
        ("fine-grained policy Legacy", "policy-reversible-encryption"),
    }
    assert all("applies to" in f.detail for f in found)
    # a weak domain policy that no audited account falls under (every one has a PSO) is not reported
    assert policy_findings(CFG, [domain, good], {"CN=Staff,CN=PSC": 100}, "ad") == []
    none = policy_findings(CFG, [], {None: 5}, "openldap")
    assert [f.check for f in none] == ["no-password-policy"] and "5 account(s)" in none[0].detail


def test_password_audit_judges_a_policy_as_the_domain_audit_does() -> None:
    # one judge (aupctl.domain.policy): Cyber Essentials' lockout limit and length, the same names and words
    school8 = dataclasses.replace(CFG, passwords=dataclasses.replace(CFG.passwords, min_length=8))
    slack = PasswordPolicy("Slack", "CN=Slack,CN=PSC", "fine-grained", min_length=10, lockout_threshold=20)
    mine = policy_findings(school8, [slack], {"CN=Slack,CN=PSC": 4}, "ad")
    assert {f.check for f in mine} == {"policy-min-length", "policy-lockout-over-limit"}  # CE: 12 and at most 10
    assert mine == domain_judge(school8, [PolicyUse(slack, "4 account(s)", True)], "ad")
    assert all("applies to 4 account(s)" in f.detail for f in mine)
    domain = PasswordPolicy("domain policy", "DC=x", "domain", min_length=14)
    assert next(f for f in policy_findings(CFG, [domain], {"DC=x": 1}, "ad")).severity == "high"  # no lockout


def test_ad_interval_days() -> None:
    assert _interval_days("-36288000000000") == 42
    assert _interval_days("-9223372036854775808") == 0
    assert _interval_days("0") == 0


# -- the hash test, on both cores --


def _ssha(pw: bytes, salt: bytes, algo=hashlib.sha1) -> tuple[bytes, bytes]:
    return algo(pw + salt).digest(), salt


def test_hash_tester_finds_guessable_passwords_in_worker_processes() -> None:
    today = NOW.date()
    common = common_candidates(CFG, today)
    jobs = [
        HashJob(1, "SSHA", *_ssha(b"Welcome2024", b"ab12cd34"), "Test", "Person", "tperson"),
        HashJob(2, "SSHA", *_ssha(b"Zobrien1985!", b"x"), "Zoë", "O'Brien", "zobrien"),
        HashJob(3, "SSHA", *_ssha(b"Velvet-Harbor-Timber-12", b"saltsalt"), "Test", "Person", "tperson"),
        HashJob(4, "SHA", hashlib.sha1(b"letmein2019").digest(), b"", "A", "B", "ab"),
        HashJob(5, "MD5", hashlib.md5(b"Velvet-Harbor-Timber").digest(), b"", "A", "B", "ab"),
        HashJob(6, "CLEARTEXT", b"Aldhelm2024!", b"", "A", "B", "ab"),
        HashJob(7, "SSHA256", *_ssha(b"Kestrel123", b"s", hashlib.sha256), "A", "B", "ab"),
        HashJob(8, "SMD5", *_ssha(b"qwerty", b"salt", hashlib.md5), "A", "B", "ab"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        jobs.append(HashJob(9, "CRYPT", crypt.crypt("password", "ab").encode(), b"", "A", "B", "ab"))
        jobs.append(HashJob(10, "CRYPT", crypt.crypt("Velvet-Harbor", "$6$saltsalt$").encode(), b"", "A", "B", "ab"))
        # costly schemes get the likeliest candidates only: the school's name and common words with usual endings
        jobs.append(HashJob(11, "CRYPT", crypt.crypt("Welcome1", "$1$saltsalt$").encode(), b"", "A", "B", "ab"))
        year_pw = f"Aldhelm{NOW.year}!"
        jobs.append(HashJob(12, "CRYPT", crypt.crypt(year_pw, "$6$saltsalt$").encode(), b"", "A", "B", "ab"))
    tester = _HashTester(common, today, workers=2)
    for job in jobs * 5:  # more than one batch per worker
        tester.add(dataclasses.replace(job, key=job.key))
    guessed = tester.finish()
    assert guessed == {1, 2, 4, 6, 7, 8, 9, 11, 12}
    assert tester.computations > len(common)  # the salted misses tried everything


# -- reset destination --


def test_reset_needs_exactly_one_new_destination(tmp_path) -> None:
    from aupctl.errors import InputError

    with pytest.raises(InputError, match="say where"):
        check_destination(None, False)
    with pytest.raises(InputError, match="not both"):
        check_destination(str(tmp_path / "a.csv"), True)
    existing = tmp_path / "old.csv"
    existing.write_text("keep me")
    with pytest.raises(InputError, match="never overwritten"):
        check_destination(str(existing), False)
    with pytest.raises(InputError, match="does not exist"):
        check_destination(str(tmp_path / "no" / "a.csv"), False)
    assert check_destination(None, True) is None
    assert check_destination(str(tmp_path / "new.csv"), False) == tmp_path / "new.csv"
    assert existing.read_text() == "keep me"


def test_check_reads_from_a_hidden_prompt_on_a_terminal(tmp_path) -> None:
    """On a real terminal (a pty): the prompt does not echo what is typed, and the verdict never repeats it."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    config = tmp_path / "aupctl.toml"
    config.write_text(
        '[school]\nname = "Hollybank Primary School"\naup_version = "2024-09"\n'
        '[directory]\nflavour = "openldap"\nurl = "ldaps://127.0.0.1:1"\nbind_dn = "cn=x"\n'
        'base_dn = "dc=x"\nstaff_ou = "ou=Staff"\nleavers_ou = "ou=Leavers"\ngroups_ou = "ou=Groups"\n'
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aupctl.commands", "--config", str(config), "password", "check"],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 20.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break

    try:
        read_until(b"Password to check:")
        os.write(master, b"Hollybank2024!\n")
        assert proc.wait(timeout=30) == 1
        read_until(b"school's name", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"school's name" in seen
    assert b"Hollybank2024!" not in seen  # not echoed, not repeated
