"""`domain audit`: the directory's password and lockout policies, its privileged groups and the accounts in
them, Kerberos weaknesses on AD, and the count of admin accounts since the last run.

Read-only towards the directory, and cheap enough for cron: the policies, one search of the privileged
groups by SID (AD), one read of every group (nesting followed in memory), one read per admin account, one
search for the admins' other accounts, and two filtered searches for the Kerberos checks. The only write is
one row in the state store's admin_counts (records/admins.py): an observation, not a change, so it is not
in the audit log (docs/domain.md says why); a store that cannot be written only loses the comparison.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ldap3.utils.conv import escape_filter_chars

from ..directory import (
    DirectoryError,
    as_text,
    first,
    group_name,
    normalise_dn,
    parse_filetime,
    same_dn,
    values,
)
from ..findings import Finding, sort_findings
from ..records import admins as admin_records
from .admins import (
    AD_ADMIN_ATTRS,
    OPENLDAP_ADMIN_ATTRS,
    Admin,
    PrivilegedGroup,
    configured_groups,
    effective_members,
    kind_of,
    mailbox_of,
    merge_groups,
    primary_group_members,
    well_known_groups,
)
from .policy import CE_PASSWORDS, DFE_ACCOUNTS, PolicyUse, no_policy_finding, policy_findings

if TYPE_CHECKING:
    import datetime as dt

    from ..config import Config
    from ..directory import Directory, PasswordPolicy
    from ..state import State

ADMIN_CLAUSE = "6.1"  # the security of the ICT system
PASSWORD_CLAUSE = "6.2"
CE_ADMIN = "Cyber Essentials: admin accounts used only for admin work"
UAC_DONT_REQ_PREAUTH = 0x400000
UAC_ACCOUNTDISABLE_BIT = "(userAccountControl:1.2.840.113556.1.4.803:=2)"
_OR_CHUNK = 30  # admins whose other accounts are looked for in one search


@dataclass
class AdminCountChange:
    now: int
    previous: int | None = None  # None: no earlier run recorded for this directory
    previous_at: str | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    recorded: bool = False  # this run's count was written to the store

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "previous": self.previous,
            "previous_at": self.previous_at,
            "change": None if self.previous is None else self.now - self.previous,
            "added": self.added,
            "removed": self.removed,
            "recorded": self.recorded,
        }


@dataclass
class DomainAuditResult:
    flavour: str
    policies: list[PolicyUse]
    groups: list[PrivilegedGroup]
    admins: list[Admin]
    count: AdminCountChange
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what could not be read or recorded, a config to mend
    notes: list[str] = field(default_factory=list)  # worth knowing, nothing wrong (not news for --quiet)

    def data(self) -> dict[str, Any]:
        """What --format json shows besides the findings."""
        return {
            "flavour": self.flavour,
            "policies": [policy_row(u) for u in self.policies],
            "privileged_groups": [
                {"label": g.label, "name": g.name, "dn": g.dn, "sid": g.sid or None, "source": g.source}
                for g in self.groups
            ],
            "admins": [a.row() for a in self.admins],
            "admin_count": self.count.as_dict(),
        }


def policy_row(use: PolicyUse) -> dict[str, Any]:
    p = use.policy
    return {
        "name": p.name,
        "kind": p.kind,
        "dn": p.dn,
        "min_length": p.min_length,
        "lockout_threshold": p.lockout_threshold,
        "lockout_minutes": p.lockout_minutes,
        "max_age_days": p.max_age_days,
        "complexity": p.complexity,
        "reversible": p.reversible,
        "precedence": p.precedence,
        "applies_to": use.applies,
        "in_use": use.in_use,
    }


def _finding(subject: str, check: str, severity: str, detail: str, clause: str = ADMIN_CLAUSE) -> Finding:
    return Finding(subject=subject, check=check, clause=clause, severity=severity, detail=detail)  # type: ignore[arg-type]


# -- policies --


def policy_uses(cfg: Config, directory: Directory, policies: list[PasswordPolicy]) -> tuple[list[PolicyUse], list[str]]:
    """Each policy with whom it applies to. AD: the domain policy applies to everyone without a fine-grained one; a
    fine-grained policy to the users and groups in msDS-PSOAppliesTo. OpenLDAP: the default to everyone without a
    pwdPolicySubentry, another to the accounts whose pwdPolicySubentry names it (counted)."""
    flavour = directory.flavour
    uses: list[PolicyUse] = []
    notes: list[str] = []
    default_known = any(p.default for p in policies)
    for p in policies:
        if p.default:
            uses.append(PolicyUse(p, "everyone without a more specific policy", True))
        elif p.kind == "fine-grained":
            n = len(p.applies_to)
            names = ", ".join(group_name(t) for t in p.applies_to[:5]) + (", ..." if n > 5 else "")
            uses.append(PolicyUse(p, names if n else "nobody (msDS-PSOAppliesTo is empty)", bool(n)))
        else:
            f = f"(&{flavour.person_filter}(pwdPolicySubentry={escape_filter_chars(p.dn)}))"
            n = sum(1 for _ in directory.search(cfg.directory.base_dn, f, ["1.1"]))
            if not default_known:  # which one is the default cannot be told: judge them all
                uses.append(PolicyUse(p, f"{n} account(s) by pwdPolicySubentry, perhaps everyone else", True))
            else:
                uses.append(PolicyUse(p, f"{n} account(s) (pwdPolicySubentry)" if n else "nobody", bool(n)))
    if flavour.name == "openldap" and policies and not default_known:
        notes.append(
            f"{len(policies)} ppolicy entries and none is known to be the default (slapd's cn=config is not readable "
            "by this bind and none is called cn=default): each is judged as if it applied; set [passwords] "
            "ppolicy_default to the DN slapd.conf's ppolicy_default names"
        )
    return uses, notes


# -- admins --


_ADMIN_WORDS = {"adm", "admin", "administrator", "a", "da", "sa", "ea", "priv", "it", "sys", "t0", "t1", "t2"}
_SPLIT = re.compile(r"[-_.\s]+")


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def plain_name(display: str) -> str:
    """A display name without what marks an admin account: "Kofi Mensah (Admin)", "ADM - Kofi Mensah" -> kofi mensah."""
    text = re.sub(r"[\(\[][^\)\]]*[\)\]]", " ", display)
    words = [w for w in _SPLIT.split(_norm(text)) if w and w not in _ADMIN_WORDS]
    return " ".join(words)


def username_stems(username: str) -> set[str]:
    """Everyday usernames an admin username may be made from: adm-kmensah, kmensah.admin, a_kmensah -> kmensah."""
    name = _norm(username)
    parts = [p for p in _SPLIT.split(name) if p]
    out = set()
    if len(parts) > 1:
        kept = [p for p in parts if p not in _ADMIN_WORDS]
        if kept and len(kept) < len(parts):
            out.add(".".join(kept) if len(kept) > 1 else kept[0])
            for sep in ("-", "_", "."):
                out.add(sep.join(kept))
    for affix in ("admin", "adm"):
        if name.endswith(affix) and len(name) > len(affix) + 2:
            out.add(name[: -len(affix)])
    out.discard(name)
    return out


def identity_keys(attrs: dict[str, list[Any]], flavour: str) -> set[str]:
    """What tells whose account this is: employee ID / number, and the person's name (display name stripped of
    admin markers, or given name and surname)."""
    keys = set()
    for attr in ("employeeID", "employeeNumber") if flavour == "ad" else ("employeeNumber",):
        value = _norm(as_text(first(attrs, attr, "")))
        if value:
            keys.add(f"id:{value}")
    display = plain_name(as_text(first(attrs, "displayName", "")))
    if len(display.split()) >= 2:  # one word ("Administrator", "Backup") names no person
        keys.add(f"name:{display}")
    given, sn = _norm(as_text(first(attrs, "givenName", ""))), _norm(as_text(first(attrs, "sn", "")))
    if given and sn:
        keys.add(f"name:{given} {sn}")
    return keys


def _identity_filter(admin: Admin, flavour: str, username_attr: str) -> list[str]:
    """Filter parts that find accounts of the same person."""
    raw = admin.account.raw
    parts = []
    for attr in ("employeeID", "employeeNumber") if flavour == "ad" else ("employeeNumber",):
        value = as_text(first(raw, attr, "")).strip()
        if value:
            parts.append(f"({attr}={escape_filter_chars(value)})")
    display = as_text(first(raw, "displayName", "")).strip()
    if display:
        parts.append(f"(displayName={escape_filter_chars(display)})")
        stripped = plain_name(display)
        if stripped and stripped != _norm(display):
            parts.append(f"(displayName={escape_filter_chars(stripped)})")
    given, sn = as_text(first(raw, "givenName", "")).strip(), as_text(first(raw, "sn", "")).strip()
    if given and sn:
        parts.append(f"(&(givenName={escape_filter_chars(given)})(sn={escape_filter_chars(sn)}))")
    for stem in username_stems(admin.account.username):
        parts.append(f"({username_attr}={escape_filter_chars(stem)})")
    return parts


def find_other_accounts(cfg: Config, directory: Directory, admins: list[Admin]) -> None:
    """Fill each enabled user admin's `identity` and `others` (enabled, unprivileged accounts of the same person)."""
    flavour = directory.flavour
    privileged = {normalise_dn(a.dn) for a in admins}
    people = [a for a in admins if a.kind == "user" and a.enabled]
    for a in people:
        a.identity = sorted(identity_keys(a.account.raw, flavour.name))
    wanted = [a for a in people if a.identity or username_stems(a.account.username)]
    attrs = list(dict.fromkeys([*flavour.user_attributes, "employeeID", "objectClass"]))
    if flavour.name != "ad":
        attrs.remove("employeeID")
    for i in range(0, len(wanted), _OR_CHUNK):
        chunk = wanted[i : i + _OR_CHUNK]
        parts = [p for a in chunk for p in _identity_filter(a, flavour.name, flavour.username_attr)]
        if not parts:
            continue
        f = f"(&{flavour.person_filter}(|{''.join(parts)}))"
        for dn, got in directory.search(cfg.directory.base_dn, f, attrs):
            if normalise_dn(dn) in privileged or kind_of(got) != "user":
                continue
            other = flavour.account(dn, got)
            if other.disabled:
                continue
            keys = identity_keys(got, flavour.name)
            name = _norm(other.username)
            for a in chunk:
                if same_dn(a.dn, dn):
                    continue
                if keys & set(a.identity) or (name and name in username_stems(a.account.username)):
                    if other.username not in a.others:
                        a.others.append(other.username or dn)


def read_admins(cfg: Config, directory: Directory) -> tuple[list[PrivilegedGroup], list[Admin], list[str], list[str]]:
    """The privileged groups found, every account in them (nesting followed), warnings and plain notes."""
    flavour = directory.flavour
    base = cfg.directory.base_dn
    notes: list[str] = []
    info: list[str] = []
    groups: list[PrivilegedGroup] = []
    if flavour.name == "ad":
        found, why, also = well_known_groups(directory, base)
        groups += found
        notes += why
        info += also
    found, why = configured_groups(cfg, directory)
    groups += found
    notes += why
    present = merge_groups(groups)
    if flavour.name != "ad" and not present:
        notes.append(
            "no privileged groups to audit: name the groups whose members administer the directory or the network "
            "in [directory] privileged_groups"
        )
    members = effective_members(present, flavour.all_groups(directory)) if present else {}
    if flavour.name == "ad":
        for dn, label in primary_group_members(directory, base, present).items():
            key = next((m for m in members if same_dn(m, dn)), dn)
            labels, vias = members.setdefault(key, ([], []))
            if label not in labels:
                labels.append(label)
            if "primaryGroupID" not in vias:
                vias.append("primaryGroupID")
    wanted = AD_ADMIN_ATTRS if flavour.name == "ad" else OPENLDAP_ADMIN_ATTRS
    admins: list[Admin] = []
    for dn, (labels, vias) in members.items():
        if dn.lower().startswith("memberuid="):  # a memberUid no account holds: nobody can use it
            notes.append(f"{', '.join(labels)} lists {group_name(dn)} by memberUid, but no account has that uid")
            continue
        try:
            attrs = directory.read(dn, wanted)
        except DirectoryError as exc:
            notes.append(f"could not read {dn}, a member of {', '.join(labels)}: {exc}")
            continue
        if attrs is None:
            notes.append(f"{', '.join(labels)} lists {dn}, which does not exist")
            continue
        kind = kind_of(attrs)
        acct = flavour.account(dn, attrs)
        admin = Admin(dn=dn, account=acct, kind=kind, groups=labels, via=vias)
        if kind == "user":
            admin.mailbox = mailbox_of(attrs)
        admins.append(admin)
    admins.sort(key=lambda a: (a.username.casefold(), a.dn))
    others = [a for a in admins if a.kind == "other"]
    if others:
        names = ", ".join(group_name(a.dn) for a in others[:5])
        info.append(f"{len(others)} member(s) of privileged groups are neither users nor computers (e.g. foreign "
                    f"security principals from a trusted domain): {names}; audit them where they live")  # fmt: skip
    find_other_accounts(cfg, directory, admins)
    return present, admins, notes, info


def admin_findings(admins: list[Admin], now: dt.datetime) -> list[Finding]:
    """Per admin account: a mailbox, the person's only account, a password that never expires (pure)."""
    out: list[Finding] = []
    for a in admins:
        if a.kind != "user" or not a.enabled:
            continue
        where = " and ".join(a.groups) + (f", through {' and '.join(a.via)}" if a.via else "")
        if a.mailbox:
            out.append(
                _finding(
                    a.username,
                    "admin-has-mailbox",
                    "medium",
                    f"this admin account (in {where}) has a mailbox ({a.mailbox} is set): mail read as an admin "
                    "puts the whole network one phishing link away. Fix: keep the mailbox on the person's everyday "
                    f"account and clear it from this one. {CE_ADMIN}; {DFE_ACCOUNTS}",
                )
            )
        if a.identity and not a.others:
            out.append(
                _finding(
                    a.username,
                    "admin-only-account",
                    "high",
                    f"this admin account (in {where}) is its owner's only enabled account, so everyday work (mail, "
                    "the web, documents) is done with admin rights. Fix: give the person an everyday account without "
                    f"admin rights and keep this one for admin work only. {CE_ADMIN}; {DFE_ACCOUNTS}",
                )
            )
        if a.never_expires:
            changed = a.account.password_changed
            age = f"; it was last set {changed.date().isoformat()}, {(now - changed).days} days ago" if changed else ""
            out.append(
                _finding(
                    a.username,
                    "admin-password-never-expires",
                    "low",
                    f"this admin account (in {where}) is set never to expire its password (DONT_EXPIRE_PASSWORD){age}: "
                    "an admin password nobody is ever asked to change is often shared or written down. Fix: clear "
                    "'Password never expires' where the domain sets a maximum age, and change it whenever someone "
                    f"who knew it leaves. {DFE_ACCOUNTS}",
                    PASSWORD_CLAUSE,
                )
            )
    return out


def kerberos_findings(cfg: Config, directory: Directory, admins: list[Admin]) -> list[Finding]:
    """AD: enabled accounts that need no Kerberos pre-authentication (AS-REP roastable), and enabled user accounts
    (not computers, not krbtgt) with a service principal name (Kerberoastable)."""
    base = cfg.directory.base_dn
    privileged = {normalise_dn(a.dn): a for a in admins}
    out: list[Finding] = []
    no_preauth = f"(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:={UAC_DONT_REQ_PREAUTH})(!{UAC_ACCOUNTDISABLE_BIT}))"
    for dn, attrs in directory.search(base, no_preauth, ["sAMAccountName"]):
        name = as_text(first(attrs, "sAMAccountName", "")) or dn
        admin = privileged.get(normalise_dn(dn))
        also = f" It is an admin account (in {', '.join(admin.groups)})." if admin else ""
        out.append(
            _finding(
                name,
                "no-kerberos-preauth",
                "high",
                "the account does not require Kerberos pre-authentication (DONT_REQ_PREAUTH): anyone on the network "
                "can ask the domain for data encrypted with its password and guess the password offline, with no "
                f"lockout.{also} Fix: untick 'Do not require Kerberos preauthentication' (userAccountControl bit "
                f"0x400000), and change the password. {CE_PASSWORDS}",
                PASSWORD_CLAUSE,
            )
        )
    spn = (
        "(&(objectCategory=person)(objectClass=user)(servicePrincipalName=*)"
        f"(!(sAMAccountName=krbtgt))(!{UAC_ACCOUNTDISABLE_BIT}))"
    )
    for dn, attrs in directory.search(base, spn, ["sAMAccountName", "servicePrincipalName", "pwdLastSet"]):
        name = as_text(first(attrs, "sAMAccountName", "")) or dn
        admin = privileged.get(normalise_dn(dn))
        spns = [as_text(v) for v in values(attrs, "servicePrincipalName")]
        shown = ", ".join(spns[:3]) + (f" and {len(spns) - 3} more" if len(spns) > 3 else "")
        changed = parse_filetime(first(attrs, "pwdLastSet"))
        when = f" Its password was last set {changed.date().isoformat()}." if changed else ""
        also = ""
        if admin:
            also = f" It is an admin account (in {', '.join(admin.groups)}): a cracked password gives away the domain."
        out.append(
            _finding(
                name,
                "kerberoastable-account",
                "high" if admin else "medium",
                f"this user account has a service principal name ({shown}): any domain user can ask for a ticket "
                f"encrypted with its password and guess the password offline.{when}{also} Fix: run the service as a "
                "group managed service account (gMSA), or give this account a random password of 25+ characters "
                f"and remove SPNs it no longer needs. {CE_PASSWORDS}",
                PASSWORD_CLAUSE,
            )
        )
    return out


# -- the count --


def count_change(state: State | None, directory_key: str, names: list[str]) -> tuple[AdminCountChange, list[str]]:
    """Compare with the last count recorded for this directory, then record this one. A store that cannot be read
    or written (read-only, locked, damaged) costs the comparison or the record, never the audit."""
    change = AdminCountChange(now=len({n.casefold() for n in names}))
    notes: list[str] = []
    if state is None:
        return change, ["no state store: the count of admin accounts was neither compared nor recorded"]
    try:
        last = admin_records.last_count(state, directory_key)
    except Exception as exc:  # any store (SQLite, PostgreSQL) that cannot give the count costs only the comparison
        return change, [f"could not read the last count of admin accounts from the state store: {exc}"]
    if last is not None:
        change.previous, change.previous_at = last.admins, last.at
        before = {n.casefold() for n in last.accounts}
        after = {n.casefold() for n in names}
        change.added = sorted({n for n in names if n.casefold() not in before}, key=str.casefold)
        change.removed = sorted((n for n in last.accounts if n.casefold() not in after), key=str.casefold)
        if not last.accounts and last.admins:  # names unreadable: the count alone still compares
            change.added = change.removed = []
    try:
        admin_records.record_count(state, directory_key, names)
        change.recorded = True
    except Exception as exc:  # read-only, locked, full, or another store's error: the audit still reports
        notes.append(
            f"could not record this run's count of admin accounts in the state store ({exc}); the next run compares "
            "with the last count that was recorded"
        )
    return change, notes


def count_findings(change: AdminCountChange) -> list[Finding]:
    if change.previous is None:
        return []
    when = (change.previous_at or "")[:10]
    if change.added:
        shown = ", ".join(change.added[:10]) + (f" and {len(change.added) - 10} more" if len(change.added) > 10 else "")
        return [
            _finding(
                "admin accounts",
                "admin-accounts-added",
                "medium",
                f"{len(change.added)} account(s) gained admin rights since the last audit on {when}: {shown} "
                f"({change.previous} then, {change.now} now). Fix: check each was meant and is recorded; remove any "
                f"that was not, and find out who added it. {DFE_ACCOUNTS}",
            )
        ]
    if change.now > change.previous and not change.removed:
        return [
            _finding(
                "admin accounts",
                "admin-accounts-added",
                "medium",
                f"there are {change.now} admin accounts, {change.now - change.previous} more than at the last audit "
                f"on {when}. Fix: check each new one was meant. {DFE_ACCOUNTS}",
            )
        ]
    return []


# -- the audit --


def audit(
    cfg: Config, directory: Directory, state: State | None = None, *, now: dt.datetime | None = None
) -> DomainAuditResult:
    """Every finding about the directory's own settings and admin accounts (exit 1 on any, for cron)."""
    import datetime as _dt

    now = now or _dt.datetime.now(_dt.UTC)
    flavour = directory.flavour
    notes: list[str] = []
    policies = flavour.password_policies(directory)
    uses, why = policy_uses(cfg, directory, policies)
    notes += why
    findings = policy_findings(cfg, uses, flavour.name)
    if flavour.name != "ad" and not policies:
        findings.append(no_policy_finding(cfg, "every account has"))
    groups, admins, why, info = read_admins(cfg, directory)
    notes += why
    findings += admin_findings(admins, now)
    if flavour.name == "ad":
        findings += kerberos_findings(cfg, directory, admins)
    counted = [a for a in admins if a.kind in ("user", "computer") and a.enabled]
    change, why = count_change(state, normalise_dn(cfg.directory.base_dn), [a.username for a in counted])
    notes += why
    findings += count_findings(change)
    unknown = [a.username for a in counted if a.kind == "user" and not a.identity]
    if unknown:
        info.append(
            f"{len(unknown)} admin account(s) carry no name or employee ID, so whose they are cannot be told and "
            f"whether their owner has an everyday account was not checked: {', '.join(unknown[:10])}"
        )
    return DomainAuditResult(
        flavour=flavour.name,
        policies=uses,
        groups=groups,
        admins=admins,
        count=change,
        findings=sort_findings(findings),
        warnings=notes,
        notes=info,
    )
