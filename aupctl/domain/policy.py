"""Password and lockout policies against the school's config and Cyber Essentials (policy 6.2).

Cyber Essentials (User access control, password-based authentication) asks for: lockout (or throttling)
after no more than 10 failed attempts; a minimum length of 12, or 8 where common passwords are blocked by
a deny list; no maximum length; and no forced regular expiry. The school's config may ask for more
([passwords] min_length, [domain] max_lockout_attempts), never for less.

This is the one judge of a password policy: `password audit` (aupctl.passwords.audit) calls policy_findings and
no_policy_finding too, so both audits name, grade and word a weak policy the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..directory import PasswordPolicy
from ..findings import Finding

if TYPE_CHECKING:
    from ..config import Config

CLAUSE = "6.2"
CE_PASSWORDS = "Cyber Essentials: password-based authentication"
DFE_ACCOUNTS = "DfE cyber security standard: accounts have only the access their role needs"
CE_MIN_LENGTH = 12
CE_MIN_LENGTH_DENY_LIST = 8
CE_MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class PolicyUse:
    """A policy with whom it applies to, as far as the directory says."""

    policy: PasswordPolicy
    applies: str  # plain words: "everyone without a more specific policy", "2 group(s) and 1 user(s)", ...
    in_use: bool  # False: it applies to nobody, so it is listed but not judged


def required_length(cfg: Config) -> tuple[int, str]:
    """(the minimum length to ask for, why): the larger of the school's and Cyber Essentials'."""
    ce = CE_MIN_LENGTH_DENY_LIST if cfg.domain.deny_list else CE_MIN_LENGTH
    ce_why = (
        f"Cyber Essentials asks for {ce} with a deny list of common passwords ([domain] deny_list = true)"
        if cfg.domain.deny_list
        else f"Cyber Essentials asks for {ce} (or 8 where the directory blocks common passwords with a deny list)"
    )
    school = cfg.passwords.min_length
    if school > ce:
        return school, f"the school's [passwords] min_length is {school}; {ce_why}"
    return ce, ce_why + (f"; the school's [passwords] min_length is {school}" if school != ce else "")


def _finding(subject: str, check: str, severity: str, detail: str) -> Finding:
    return Finding(subject=subject, check=check, clause=CLAUSE, severity=severity, detail=detail)  # type: ignore[arg-type]


def subject_of(pol: PasswordPolicy) -> str:
    if pol.kind == "fine-grained":
        return f"fine-grained policy {pol.name}"
    if pol.kind == "ppolicy":
        return f"ppolicy {pol.name}"
    return pol.name


def _fix(flavour: str, pol: PasswordPolicy, what: str) -> str:
    """Where to change it, in the words of the tool the technician uses."""
    ad_names = {
        "length": ("Minimum password length", "msDS-MinimumPasswordLength"),
        "lockout": ("Account lockout threshold", "msDS-LockoutThreshold"),
        "expiry": ("Maximum password age", "msDS-MaximumPasswordAge"),
        "reversible": ("Store passwords using reversible encryption", "msDS-PasswordReversibleEncryptionEnabled"),
    }
    if flavour == "ad":
        gpo, attr = ad_names[what]
        if pol.kind == "fine-grained":
            return f"change {attr} on {pol.dn} (Active Directory Administrative Center > Password Settings)"
        return f"change '{gpo}' in the Default Domain Policy (Group Policy Management)"
    attr = {
        "length": "pwdMinLength",
        "lockout": "pwdLockout TRUE and pwdMaxFailure",
        "expiry": "pwdMaxAge 0",
        "reversible": "",
    }[what]
    return f"set {attr} on {pol.dn}"


# Owned here, not in passwords/: judging the directory's own settings against CE is the domain audit's subject.
def policy_findings(cfg: Config, uses: list[PolicyUse], flavour: str) -> list[Finding]:
    """Each policy in use that is weaker than the school's config or Cyber Essentials."""
    out: list[Finding] = []
    length, length_why = required_length(cfg)
    limit = cfg.domain.max_lockout_attempts
    for use in uses:
        if not use.in_use:
            continue
        pol, who = use.policy, f"applies to {use.applies}"
        subject = subject_of(pol)
        if pol.min_length < length:
            out.append(
                _finding(
                    subject,
                    "policy-min-length",
                    "medium",
                    f"the minimum password length is {pol.min_length} ({who}); {length_why}. Fix: "
                    f"{_fix(flavour, pol, 'length')} to {length}. {CE_PASSWORDS}; {DFE_ACCOUNTS}",
                )
            )
        if pol.lockout_threshold == 0:
            out.append(
                _finding(
                    subject,
                    "policy-no-lockout",
                    "high",
                    f"accounts are never locked after failed logons, so passwords can be guessed without limit ({who})."
                    f" Fix: {_fix(flavour, pol, 'lockout')} to {limit} (Cyber Essentials: at most "
                    f"{CE_MAX_ATTEMPTS}). {CE_PASSWORDS}; {DFE_ACCOUNTS}",
                )
            )
        elif pol.lockout_threshold > limit:
            why = (
                f"the school's [domain] max_lockout_attempts is {limit}"
                if limit < CE_MAX_ATTEMPTS
                else f"Cyber Essentials allows at most {CE_MAX_ATTEMPTS}"
            )
            out.append(
                _finding(
                    subject,
                    "policy-lockout-over-limit",
                    "medium",
                    f"accounts are locked only after {pol.lockout_threshold} failed logons ({who}); {why}. Fix: "
                    f"{_fix(flavour, pol, 'lockout')} to {limit}. {CE_PASSWORDS}",
                )
            )
        if pol.max_age_days and not cfg.passwords.max_age_days:
            out.append(
                _finding(
                    subject,
                    "policy-forced-expiry",
                    "low",
                    f"passwords are forced to expire every {pol.max_age_days} days ({who}); Cyber Essentials and the "
                    "NCSC advise against forced regular changes (people choose weaker, predictable passwords). Fix: "
                    f"{_fix(flavour, pol, 'expiry')} (never), or set [passwords] max_age_days if the school must "
                    f"keep expiry. {CE_PASSWORDS}",
                )
            )
        if pol.reversible:
            out.append(
                _finding(
                    subject,
                    "policy-reversible-encryption",
                    "high",
                    f"passwords are stored with reversible encryption ({who}): anyone with a copy of the directory "
                    f"database or a backup can read them. Fix: {_fix(flavour, pol, 'reversible')} to off, then have "
                    f"the people it applies to change their password. {DFE_ACCOUNTS}",
                )
            )
    return out


def no_policy_finding(cfg: Config, accounts: str) -> Finding:
    """OpenLDAP with no default ppolicy: most accounts have no lockout and no minimum length at all."""
    length, _ = required_length(cfg)
    return _finding(
        "password policy",
        "no-password-policy",
        "high",
        f"{accounts} no password policy: no minimum length, no lockout after failed guesses (no default ppolicy "
        "found: slapd's cn=config names none this bind may read, [passwords] ppolicy_default is not set and no "
        "pwdPolicy entry is called cn=default). Fix: load slapd's ppolicy overlay with ppolicy_default naming a "
        f"pwdPolicy entry with pwdMinLength {length}, pwdLockout TRUE and pwdMaxFailure "
        f"{cfg.domain.max_lockout_attempts}; if it has one, set [passwords] ppolicy_default to its DN. {CE_PASSWORDS}",
    )
