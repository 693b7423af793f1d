"""`password audit`: which accounts break policy 6.2, and what to do about each.

One streamed, paged read of every person under the base DN (no ldap3 Entry objects, nothing kept per
account but a few numbers), the directory's password policies, and the members of the privileged
groups. On OpenLDAP, readable userPassword hashes are tested against the deny list (aupctl.passwords)
in worker processes on every core, in bounded batches. A finding says that a password is easily
guessed or shared, never what it is; no password or hash leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import hashlib
import multiprocessing
import os
import signal
import warnings
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ldap3.utils.conv import escape_filter_chars

from .directory import (
    UAC_DONT_EXPIRE_PASSWORD,
    UAC_ENCRYPTED_TEXT_PWD_ALLOWED,
    UAC_PASSWD_NOTREQD,
    Account,
    PasswordPolicy,
    group_name,
    is_under,
    normalise_dn,
    values,
)
from .findings import Finding, sort_findings
from .passwords import HASH_COMMON_TOP, common_candidates, personal_candidates

if TYPE_CHECKING:
    from .config import Config
    from .directory import Directory

CLAUSE = "6.2"
SHARED_DECLARATION = "I will not use anyone's account except my own"

# Schemes whose hashes we can compute (and so test); salted ones need the work per account.
UNSALTED = {"SHA": (hashlib.sha1, 20), "MD5": (hashlib.md5, 16)}
SALTED = {
    "SSHA": (hashlib.sha1, 20),
    "SMD5": (hashlib.md5, 16),
    "SSHA256": (hashlib.sha256, 32),
    "SSHA512": (hashlib.sha512, 64),
}
# crypt(3) hashes cost far more than a salted SHA-1 (DES ~20x, md5crypt ~250x, sha512crypt/bcrypt
# thousands of times): (own-name candidates, common candidates) tried for each, likeliest first.
CRYPT_BUDGET = {"des": (400, 2000), "md5": (50, 300), "slow": (10, 40)}
BATCH = 32  # accounts per task sent to a worker


@dataclass
class AuditResult:
    findings: list[Finding]
    accounts: int = 0  # accounts audited
    hashes_tested: int = 0  # accounts whose password hash was tested against the deny list
    hash_computations: int = 0
    candidates_common: int = 0  # deny-list candidates tried for every account (besides their own names)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HashJob:
    """What a worker needs to test one account: never sent back, never logged."""

    key: int
    scheme: str  # "CLEARTEXT", "SHA", "SSHA", "CRYPT", ...
    payload: bytes = field(repr=False)  # the digest (or cleartext, or crypt string): never in a repr
    salt: bytes = field(repr=False)
    given: str
    surname: str
    username: str


def _finding(subject: str, check: str, severity: str, detail: str) -> Finding:
    return Finding(subject=subject, check=check, clause=CLAUSE, severity=severity, detail=detail)  # type: ignore[arg-type]


def _days(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 86_400)


def _date(when: dt.datetime | None) -> str:
    return when.date().isoformat() if when else "never"


def parse_user_password(value: Any) -> tuple[str, bytes, bytes] | None:
    """One userPassword value -> (scheme, payload, salt); scheme CLEARTEXT when no {SCHEME} prefix.

    None for a scheme we cannot test ({SASL}, {PBKDF2...}, {ARGON2}...)."""
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not raw.startswith(b"{") or b"}" not in raw:
        return "CLEARTEXT", raw, b""
    end = raw.index(b"}")
    scheme = raw[1:end].decode("ascii", "replace").upper()
    body = raw[end + 1 :]
    if scheme == "CRYPT":
        return "CRYPT", body, b""
    algo = UNSALTED.get(scheme) or SALTED.get(scheme)
    if algo is None:
        return None
    try:
        decoded = base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        return None
    size = algo[1]
    if len(decoded) < size:
        return None
    return scheme, decoded[:size], decoded[size:]


def weak_scheme(scheme: str, payload: bytes) -> str | None:
    """Why a storage scheme is weak, or None."""
    if scheme in UNSALTED:
        return f"{{{scheme}}} is an unsalted fast hash: one lookup table cracks every such password at once"
    if scheme == "CRYPT" and not payload.startswith(b"$") and len(payload) == 13:
        return "{CRYPT} with DES uses only the first 8 characters and is cracked in minutes"
    return None


# -- the worker side: runs in other processes --

_COMMON: list[bytes] = []
_COMMON_SET: frozenset[bytes] = frozenset()
_UNSALTED_DIGESTS: dict[str, frozenset[bytes]] = {}
_TODAY: dt.date = dt.date.today()


def _init_worker(common: list[bytes], today: dt.date) -> None:
    global _COMMON, _COMMON_SET, _TODAY
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it ends the pool)
    _COMMON, _COMMON_SET, _TODAY = common, frozenset(common), today
    _UNSALTED_DIGESTS.clear()


def _unsalted_digests(scheme: str) -> frozenset[bytes]:
    if scheme not in _UNSALTED_DIGESTS:
        fn = UNSALTED[scheme][0]
        _UNSALTED_DIGESTS[scheme] = frozenset(fn(c).digest() for c in _COMMON)
    return _UNSALTED_DIGESTS[scheme]


def _crypt(word: bytes, setting: str) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11, gone in 3.13: then {CRYPT} hashes are reported as untested

        try:
            return crypt.crypt(word.decode("utf-8", "replace"), setting)
        except (OSError, ValueError):
            return None


def _test_one(job: HashJob) -> tuple[bool, int]:
    """(guessed, hash computations) for one account."""
    mine = personal_candidates(job.given, job.surname, job.username, _TODAY)
    if job.scheme == "CLEARTEXT":
        return job.payload in _COMMON_SET or job.payload in set(mine), 0
    if job.scheme in UNSALTED:
        fn = UNSALTED[job.scheme][0]
        if job.payload in _unsalted_digests(job.scheme):
            return True, 0
        for n, c in enumerate(mine, 1):
            if fn(c).digest() == job.payload:
                return True, n
        return False, len(mine)
    if job.scheme in SALTED:
        fn, salt, target = SALTED[job.scheme][0], job.salt, job.payload
        count = 0
        for pool in (mine, _COMMON):
            for c in pool:
                count += 1
                if fn(c + salt).digest() == target:
                    return True, count
        return False, count
    if job.scheme == "CRYPT":
        setting = job.payload.decode("ascii", "replace")
        kind = "md5" if setting.startswith("$1$") else "slow" if setting.startswith("$") else "des"
        own, common = CRYPT_BUDGET[kind]
        pool = mine[:own] + _COMMON[:common]
        for n, c in enumerate(pool, 1):
            if _crypt(c, setting) == setting:
                return True, n
        return False, len(pool)
    return False, 0


def _test_batch(jobs: list[HashJob]) -> list[tuple[int, bool, int]]:
    out = []
    for job in jobs:
        guessed, count = _test_one(job)
        out.append((job.key, guessed, count))
    return out


class _HashTester:
    """Batches of jobs to a process pool, at most a few in flight (bounded memory), results by key."""

    def __init__(self, common: list[bytes], today: dt.date, workers: int | None) -> None:
        self.common, self.today = common, today
        if workers is None:  # every core this process may use
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.workers = max(1, workers)
        self.pool: Any = None
        self.batch: list[HashJob] = []
        self.pending: deque[Any] = deque()
        self.guessed: set[int] = set()
        self.computations = 0
        self.tested = 0

    def add(self, job: HashJob) -> None:
        self.batch.append(job)
        if len(self.batch) >= BATCH:
            self._send()

    def _send(self) -> None:
        if not self.batch:
            return
        if self.pool is None:
            ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
            self.pool = (ctx or multiprocessing).Pool(
                processes=self.workers, initializer=_init_worker, initargs=(self.common, self.today)
            )
        self.pending.append(self.pool.apply_async(_test_batch, (self.batch,)))
        self.tested += len(self.batch)
        self.batch = []
        while len(self.pending) > self.workers * 4:
            self._collect(self.pending.popleft())

    def _collect(self, result: Any) -> None:
        for key, guessed, count in result.get():
            self.computations += count
            if guessed:
                self.guessed.add(key)

    def finish(self) -> set[int]:
        self._send()
        while self.pending:
            self._collect(self.pending.popleft())
        self.close()
        return self.guessed

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


# -- the audit --


def privileged_members(cfg: Config, directory: Directory) -> dict[str, list[str]]:
    """normalised member DN -> names of the privileged groups they are in (nested membership on AD)."""
    flavour = directory.flavour
    out: dict[str, list[str]] = defaultdict(list)
    for name in cfg.directory.privileged_groups:
        if "=" in name:
            dns = [cfg.dn(name)]
        else:
            f = f"(&{flavour.group_filter}(cn={escape_filter_chars(name)}))"
            dns = [dn for dn, _ in directory.search(cfg.directory.base_dn, f, None)]
        label = group_name(name) if "=" in name else name
        for gdn in dns:
            members = flavour.effective_members(directory, gdn) or {}
            for member in members:
                key = normalise_dn(member)
                if label not in out[key]:
                    out[key].append(label)
    return out


def account_findings(
    cfg: Config,
    acct: Account,
    *,
    now: dt.datetime,
    changed_before: dt.datetime | None,
    logon_lag_days: int,
    privileged: list[str],
) -> list[Finding]:
    """The per-account checks that need nothing but the account (pure: unit-tested without a server)."""
    p = cfg.passwords
    out: list[Finding] = []
    who = acct.username or acct.dn
    changed = acct.password_changed

    for pattern in p.shared_account_patterns:
        if fnmatch.fnmatchcase(acct.username.lower(), pattern.lower()):
            out.append(
                _finding(
                    who,
                    "shared-account",
                    "medium",
                    f"the account name matches the shared-account pattern {pattern!r}: a shared login breaks the "
                    f'declaration "{SHARED_DECLARATION}" and nobody can tell who did what. Fix: give each person '
                    "their own account (supply staff too) and disable this one",
                )
            )
            break

    if changed_before is not None and (changed is None or changed < changed_before):
        when = f"last changed {_date(changed)}" if changed else "no change is recorded"
        out.append(
            _finding(
                who,
                "not-changed-since",
                "high",
                f"the password was not changed since {changed_before.date().isoformat()} ({when}). Fix: reset it "
                f"(`aupctl password reset {acct.username}`) so the person must choose a new one",
            )
        )

    if acct.must_change:
        since = changed or acct.created
        if since is not None and _days(now - since) > p.initial_grace_days:
            out.append(
                _finding(
                    who,
                    "initial-password-unchanged",
                    "medium",
                    f"the first password set on {_date(since)} has not been changed in {_days(now - since)} days "
                    f"(more than {p.initial_grace_days}): the account was handed out and never used. Fix: check the "
                    "person still needs it; if so reset it and hand the new one over in person, if not disable it",
                )
            )

    if not acct.disabled:
        stale = _stale(acct, now, p.stale_after_days, logon_lag_days)
        if stale:
            out.append(
                _finding(
                    who,
                    "stale-account",
                    "medium",
                    f"{stale} (more than {p.stale_after_days} days): an unused account is a password nobody is "
                    "watching. Fix: ask whether the person still needs it; disable it if not (`aupctl leaver`)",
                )
            )

    if p.max_age_days and changed is not None and _days(now - changed) > p.max_age_days:
        out.append(
            _finding(
                who,
                "password-too-old",
                "low",
                f"the password was last changed {_date(changed)}, {_days(now - changed)} days ago (the school's "
                f"maximum is {p.max_age_days}). Fix: ask the person to change it, or reset it",
            )
        )

    if privileged and is_under(acct.dn, cfg.dn(cfg.directory.staff_ou)):
        out.append(
            _finding(
                who,
                "privileged-staff-account",
                "high",
                f"this everyday staff account is in {', '.join(privileged)}: a guessed or phished password gives "
                "away the whole network. Fix: remove it from those groups and give the person a separate admin "
                "account used only for admin work",
            )
        )

    if acct.uac is not None:
        if acct.uac & UAC_PASSWD_NOTREQD:
            out.append(
                _finding(
                    who,
                    "password-not-required",
                    "high",
                    "the account is flagged PASSWD_NOTREQD, so it may have an empty password. Fix: set a password "
                    "(`aupctl password reset`) and clear the flag (userAccountControl bit 0x20)",
                )
            )
        if acct.uac & UAC_ENCRYPTED_TEXT_PWD_ALLOWED:
            out.append(
                _finding(
                    who,
                    "reversible-encryption",
                    "high",
                    "the account stores its password with reversible encryption (readable by any domain admin "
                    "or backup). Fix: clear 'Store password using reversible encryption', then reset the password",
                )
            )
        if p.max_age_days and acct.uac & UAC_DONT_EXPIRE_PASSWORD:
            out.append(
                _finding(
                    who,
                    "password-never-expires",
                    "low",
                    f"the account is set never to expire its password, but the school sets a maximum age of "
                    f"{p.max_age_days} days. Fix: clear 'Password never expires' (or exempt it in the config "
                    "by setting max_age_days = 0, as NCSC advises)",
                )
            )
    return out


def _stale(acct: Account, now: dt.datetime, after_days: int, lag_days: int) -> str | None:
    if acct.last_logon is not None:
        idle = _days(now - acct.last_logon)
        if idle > after_days + lag_days:
            lag = f", allowing {lag_days} days for the directory's lag in recording it" if lag_days else ""
            return f"last logon {_date(acct.last_logon)}, {idle} days ago{lag}"
        return None
    # No logon recorded: count from its creation, or from an administrator's reset if later (OpenLDAP's
    # ppolicy deletes pwdLastSuccess when an administrator resets the password).
    since, what = acct.created, "it was created on"
    if acct.must_change and acct.password_changed and (since is None or acct.password_changed > since):
        since, what = acct.password_changed, "its password was reset on"
    if since is not None and _days(now - since) > after_days:
        return f"no logon recorded since {what} {_date(since)}, {_days(now - since)} days ago"
    return None


def policy_findings(
    cfg: Config, policies: list[PasswordPolicy], used: dict[str | None, int], flavour_name: str
) -> list[Finding]:
    """Policies weaker than the config, each counted by the accounts it applies to (0: not reported)."""
    p = cfg.passwords
    out: list[Finding] = []
    unpoliced = used.get(None, 0)
    if unpoliced:
        out.append(
            _finding(
                "password policy",
                "no-password-policy",
                "high",
                f"{unpoliced} account(s) have no password policy at all: no minimum length, no lockout after "
                "failed guesses. Fix: load slapd's ppolicy overlay with a default policy (ppolicy_default), "
                f"pwdMinLength {p.min_length}, pwdLockout TRUE and pwdMaxFailure 10",
            )
        )
    for pol in policies:
        n = used.get(pol.dn, 0)
        if not n:
            continue
        subject = pol.name if pol.kind != "fine-grained" else f"fine-grained policy {pol.name}"
        applies = f"applies to {n} account(s)"
        if pol.min_length < p.min_length:
            out.append(
                _finding(
                    subject,
                    "policy-min-length",
                    "medium",
                    f"the minimum length is {pol.min_length}, below the school's {p.min_length} ({applies}). Fix: "
                    + _fix(flavour_name, pol, "length", p.min_length),
                )
            )
        if pol.lockout_threshold == 0:
            out.append(
                _finding(
                    subject,
                    "policy-no-lockout",
                    "medium",
                    f"there is no lockout after failed logons, so passwords can be guessed without limit ({applies})."
                    " Fix: " + _fix(flavour_name, pol, "lockout", 10),
                )
            )
        if pol.reversible:
            out.append(
                _finding(
                    subject,
                    "policy-reversible-encryption",
                    "high",
                    f"the policy stores passwords with reversible encryption ({applies}). Fix: turn off 'Store "
                    "passwords using reversible encryption', then have the affected people change their password",
                )
            )
        if pol.max_age_days and not p.max_age_days:
            out.append(
                _finding(
                    subject,
                    "policy-forced-expiry",
                    "low",
                    f"passwords are forced to expire every {pol.max_age_days} days ({applies}); NCSC advises "
                    "against regular forced changes (people pick weaker, predictable passwords). Fix: set the "
                    "maximum age to never, or set [passwords] max_age_days if the school must keep it",
                )
            )
    return out


def _fix(flavour_name: str, pol: PasswordPolicy, what: str, value: int) -> str:
    if flavour_name == "ad":
        if pol.kind == "fine-grained":
            attr = "msDS-MinimumPasswordLength" if what == "length" else "msDS-LockoutThreshold"
            return f"set {attr} to {value} on {pol.name}"
        gpo = "Minimum password length" if what == "length" else "Account lockout threshold"
        return f"set '{gpo}' to {value} in the Default Domain Policy"
    attr = "pwdMinLength" if what == "length" else "pwdLockout TRUE and pwdMaxFailure"
    return f"set {attr} {value} on {pol.dn}"


def audit(
    cfg: Config,
    directory: Directory,
    *,
    now: dt.datetime | None = None,
    changed_before: dt.datetime | None = None,
    include_disabled: bool = False,
    hash_check: bool = True,
    workers: int | None = None,
    common_top: int = HASH_COMMON_TOP,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """Every finding for every person under the base DN. `now` is injectable so tests can move time."""
    now = now or dt.datetime.now(dt.UTC)
    flavour = directory.flavour
    policies = flavour.password_policies(directory)
    resolve = flavour.policy_resolver(directory, policies)
    privileged = privileged_members(cfg, directory)
    result = AuditResult(findings=[])
    findings = result.findings
    used: dict[str | None, int] = defaultdict(int)
    shared_hashes: dict[bytes, list[str]] = defaultdict(list)  # sha256 of an unsalted value -> usernames
    usernames: dict[int, str] = {}
    never_logged_on: list[Finding] = []
    logons_recorded = flavour.name == "ad"
    tester: _HashTester | None = None
    if hash_check:
        common = common_candidates(cfg, now.date(), common_top)
        result.candidates_common = len(common)
        tester = _HashTester(common, now.date(), workers)
    try:
        for dn, attrs in directory.search(cfg.directory.base_dn, flavour.person_filter, flavour.password_attributes()):
            acct = flavour.account(dn, attrs)
            if acct.disabled and not include_disabled:
                continue
            result.accounts += 1
            if progress and result.accounts % 500 == 0:
                progress(result.accounts)
            if acct.last_logon is not None:
                logons_recorded = True
            policy = resolve(dn, attrs)
            used[policy.dn if policy else None] += 1
            for f in account_findings(
                cfg,
                acct,
                now=now,
                changed_before=changed_before,
                logon_lag_days=flavour.logon_lag_days,
                privileged=privileged.get(normalise_dn(dn), []),
            ):
                (never_logged_on if f.check == "stale-account" and acct.last_logon is None else findings).append(f)
            _password_values(acct, attrs, findings, shared_hashes, tester, usernames, result.accounts)
        if tester is not None:
            for key in sorted(tester.finish()):
                findings.append(
                    _finding(
                        usernames[key],
                        "easily-guessed-password",
                        "high",
                        "the password is easily guessed: it is on the deny list (common passwords, the school's "
                        "name, the person's own names, with the usual endings). Fix: reset it "
                        f"(`aupctl password reset {usernames[key]}`) and help the person choose three random words",
                    )
                )
            result.hashes_tested = tester.tested
            result.hash_computations = tester.computations
    finally:
        if tester is not None:
            tester.close()
    for names in shared_hashes.values():
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                findings.append(
                    _finding(
                        name,
                        "shared-password",
                        "high",
                        f"the password is the same as that of {others} (the same unsalted hash): one leak opens them "
                        "all, and it was probably handed out as a default. Fix: reset each of them",
                    )
                )
    if logons_recorded:
        findings.extend(never_logged_on)
    elif result.accounts:
        result.notes.append(
            "this directory records no logons (no pwdLastSuccess or authTimestamp on any account), so stale "
            "accounts cannot be found: turn on ppolicy's pwdLastSuccess tracking or the lastbind overlay"
        )
    readable = "userPassword" in flavour.password_attributes()
    if tester is not None and readable and result.accounts and tester.tested < result.accounts / 10:
        result.notes.append(
            f"only {tester.tested} of {result.accounts} accounts' password hashes could be read and tested against "
            'the deny list: give the bind account read access to userPassword (slapd ACL `by dn.exact="BIND DN" '
            "read`) for this test"
        )
    findings.extend(policy_findings(cfg, policies, used, flavour.name))
    result.findings = sort_findings(findings)
    return result


def _password_values(
    acct: Account,
    attrs: dict[str, list[Any]],
    findings: list[Finding],
    shared_hashes: dict[bytes, list[str]],
    tester: _HashTester | None,
    usernames: dict[int, str],
    key: int,
) -> None:
    """Findings about how userPassword is stored, and a hash job for the deny-list test."""
    who = acct.username or acct.dn
    for value in values(attrs, "userPassword"):
        parsed = parse_user_password(value)
        if parsed is None:
            continue
        scheme, payload, salt = parsed
        if scheme == "CLEARTEXT":
            findings.append(
                _finding(
                    who,
                    "cleartext-password",
                    "high",
                    "the password is stored in clear text: anyone who can read the directory or a backup can read "
                    "it. Fix: reset it (`aupctl password reset`, which stores a salted hash) and turn on "
                    "ppolicy_hash_cleartext",
                )
            )
        else:
            why = weak_scheme(scheme, payload)
            if why:
                findings.append(
                    _finding(
                        who,
                        "weak-password-scheme",
                        "medium",
                        f"the password is stored with a weak scheme: {why}. Fix: reset it so it is stored as "
                        "{SSHA} or better (password-hash in slapd.conf)",
                    )
                )
        if scheme == "CLEARTEXT" or scheme in UNSALTED:
            shared_hashes[hashlib.sha256(scheme.encode() + b"\0" + payload).digest()].append(who)
        if tester is not None:
            usernames[key] = who
            tester.add(HashJob(key, scheme, payload, salt, acct.given_name, acct.surname, acct.username))
        break  # one password per account is what people have; more values are the same person's
