"""`password audit`: which accounts break policy 6.2, and what to do about each.

One streamed, paged read of every person under the base DN (no ldap3 Entry objects, nothing kept per
account but a few numbers), the directory's password policies, and the members of the privileged
groups. On OpenLDAP, readable userPassword hashes are tested against the deny list (aupctl.passwords.denylist)
in worker processes on every core, in bounded batches. A finding says that a password is easily
guessed or shared, never what it is; no password or hash leaves this module.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ldap3.utils.conv import escape_filter_chars

from ..directory import (
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
from ..domain.policy import PolicyUse, no_policy_finding
from ..domain.policy import policy_findings as judge_policies
from ..findings import Finding, sort_findings
from .denylist import HASH_COMMON_TOP, common_candidates
from .hashes import UNSALTED, HashJob, _HashTester, parse_user_password, weak_scheme

if TYPE_CHECKING:
    from ..config import Config
    from ..directory import Directory

CLAUSE = "6.2"
SHARED_DECLARATION = "I will not use anyone's account except my own"


@dataclass
class AuditResult:
    findings: list[Finding]
    accounts: int = 0  # accounts audited
    hashes_tested: int = 0  # accounts whose password hash was tested against the deny list
    hash_computations: int = 0
    candidates_common: int = 0  # deny-list candidates tried for every account (besides their own names)
    notes: list[str] = field(default_factory=list)


def _finding(subject: str, check: str, severity: str, detail: str) -> Finding:
    return Finding(subject=subject, check=check, clause=CLAUSE, severity=severity, detail=detail)  # type: ignore[arg-type]


def _days(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 86_400)


def _date(when: dt.datetime | None) -> str:
    return when.date().isoformat() if when else "never"


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


@dataclass(frozen=True)
class _Seen:
    """What the per-account checks are given besides the account."""

    cfg: Config
    now: dt.datetime
    changed_before: dt.datetime | None
    logon_lag_days: int
    privileged: list[str]


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
    seen = _Seen(cfg, now, changed_before, logon_lag_days, privileged)
    out: list[Finding] = []
    for check in ACCOUNT_CHECKS:
        out.extend(check(seen, acct))
    return out


def _shared_account(seen: _Seen, acct: Account) -> list[Finding]:
    for pattern in seen.cfg.passwords.shared_account_patterns:
        if fnmatch.fnmatchcase(acct.username.lower(), pattern.lower()):
            return [
                _finding(
                    acct.username or acct.dn,
                    "shared-account",
                    "medium",
                    f"the account name matches the shared-account pattern {pattern!r}: a shared login breaks the "
                    f'declaration "{SHARED_DECLARATION}" and nobody can tell who did what. Fix: give each person '
                    "their own account (supply staff too) and disable this one",
                )
            ]
    return []


def _not_changed_since(seen: _Seen, acct: Account) -> list[Finding]:
    changed, before = acct.password_changed, seen.changed_before
    if before is None or (changed is not None and changed >= before):
        return []
    when = f"last changed {_date(changed)}" if changed else "no change is recorded"
    return [
        _finding(
            acct.username or acct.dn,
            "not-changed-since",
            "high",
            f"the password was not changed since {before.date().isoformat()} ({when}). Fix: reset it "
            f"(`aupctl password reset {acct.username}`) so the person must choose a new one",
        )
    ]


def _initial_unchanged(seen: _Seen, acct: Account) -> list[Finding]:
    grace = seen.cfg.passwords.initial_grace_days
    since = acct.password_changed or acct.created
    if not acct.must_change or since is None or _days(seen.now - since) <= grace:
        return []
    return [
        _finding(
            acct.username or acct.dn,
            "initial-password-unchanged",
            "medium",
            f"the first password set on {_date(since)} has not been changed in {_days(seen.now - since)} days "
            f"(more than {grace}): the account was handed out and never used. Fix: check the "
            "person still needs it; if so reset it and hand the new one over in person, if not disable it",
        )
    ]


def _stale_account(seen: _Seen, acct: Account) -> list[Finding]:
    after = seen.cfg.passwords.stale_after_days
    stale = None if acct.disabled else _stale(acct, seen.now, after, seen.logon_lag_days)
    if not stale:
        return []
    return [
        _finding(
            acct.username or acct.dn,
            "stale-account",
            "medium",
            f"{stale} (more than {after} days): an unused account is a password nobody is "
            "watching. Fix: ask whether the person still needs it; disable it if not (`aupctl leaver`)",
        )
    ]


def _too_old(seen: _Seen, acct: Account) -> list[Finding]:
    max_age, changed = seen.cfg.passwords.max_age_days, acct.password_changed
    if not max_age or changed is None or _days(seen.now - changed) <= max_age:
        return []
    return [
        _finding(
            acct.username or acct.dn,
            "password-too-old",
            "low",
            f"the password was last changed {_date(changed)}, {_days(seen.now - changed)} days ago (the school's "
            f"maximum is {max_age}). Fix: ask the person to change it, or reset it",
        )
    ]


def _privileged_staff(seen: _Seen, acct: Account) -> list[Finding]:
    cfg = seen.cfg
    if not seen.privileged or not is_under(acct.dn, cfg.dn(cfg.directory.staff_ou)):
        return []
    return [
        _finding(
            acct.username or acct.dn,
            "privileged-staff-account",
            "high",
            f"this everyday staff account is in {', '.join(seen.privileged)}: a guessed or phished password gives "
            "away the whole network. Fix: remove it from those groups and give the person a separate admin "
            "account used only for admin work",
        )
    ]


def _ad_flags(seen: _Seen, acct: Account) -> list[Finding]:
    """userAccountControl bits that weaken the password (AD)."""
    if acct.uac is None:
        return []
    who, max_age = acct.username or acct.dn, seen.cfg.passwords.max_age_days
    out = []
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
    if max_age and acct.uac & UAC_DONT_EXPIRE_PASSWORD:
        out.append(
            _finding(
                who,
                "password-never-expires",
                "low",
                f"the account is set never to expire its password, but the school sets a maximum age of "
                f"{max_age} days. Fix: clear 'Password never expires' (or exempt it in the config "
                "by setting max_age_days = 0, as NCSC advises)",
            )
        )
    return out


# In the order the findings were always reported.
ACCOUNT_CHECKS: list[Callable[[_Seen, Account], list[Finding]]] = [
    _shared_account,
    _not_changed_since,
    _initial_unchanged,
    _stale_account,
    _too_old,
    _privileged_staff,
    _ad_flags,
]


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
    """The policies the audited accounts fall under, judged by the one judge the domain audit uses too, each
    counted by the accounts it applies to (0: listed, not judged); accounts under no policy at all first."""
    out = [no_policy_finding(cfg, f"{used[None]} account(s) have")] if used.get(None) else []
    uses = [PolicyUse(pol, f"{used.get(pol.dn, 0)} account(s)", bool(used.get(pol.dn))) for pol in policies]
    return out + judge_policies(cfg, uses, flavour_name)


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
            if progress and result.accounts % 100 == 0:
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
            findings.extend(_guessed(usernames[key]) for key in sorted(tester.finish()))
            result.hashes_tested = tester.tested
            result.hash_computations = tester.computations
    finally:
        if tester is not None:
            tester.close()
    findings.extend(_shared_passwords(shared_hashes))
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


def _guessed(username: str) -> Finding:
    return _finding(
        username,
        "easily-guessed-password",
        "high",
        "the password is easily guessed: it is on the deny list (common passwords, the school's "
        "name, the person's own names, with the usual endings). Fix: reset it "
        f"(`aupctl password reset {username}`) and help the person choose three random words",
    )


def _shared_passwords(shared_hashes: dict[bytes, list[str]]) -> list[Finding]:
    """Everyone whose unsalted hash (or cleartext) is someone else's too."""
    out = []
    for names in shared_hashes.values():
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                out.append(
                    _finding(
                        name,
                        "shared-password",
                        "high",
                        f"the password is the same as that of {others} (the same unsalted hash): one leak opens them "
                        "all, and it was probably handed out as a default. Fix: reset each of them",
                    )
                )
    return out


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
