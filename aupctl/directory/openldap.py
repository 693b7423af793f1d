"""OpenLDAP: inetOrgPerson / posixAccount people, ppolicy for locking and password policy, every group schema."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from .account import Account
from .connection import Connection, DirectoryError
from .dn import child_dn, normalise_dn, same_dn
from .flavour import Flavour
from .groups import READ_ATTRS
from .policy import PasswordPolicy
from .values import (
    LOCKED_FOREVER,
    Attrs,
    as_text,
    dn_text,
    first,
    int_value,
    is_true,
    one,
    parse_generalized,
    ssha,
    values,
)


class OpenLDAP(Flavour):
    name = "openldap"
    username_attr = "uid"
    person_filter = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
    group_filter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    member_attrs = ["member", "uniqueMember", "memberUid"]
    # What a review of thousands needs (name, enabled, DN): fewer attributes to decode than user_attributes
    brief_attributes = ["uid", "cn", "displayName", "pwdAccountLockedTime"]
    lean_attributes = [*brief_attributes, "givenName", "sn", "mail", "employeeNumber", "description", "pwdReset"]
    user_attributes = [
        "uid",
        "givenName",
        "sn",
        "cn",
        "displayName",
        "mail",
        "employeeNumber",
        "description",
        "pwdAccountLockedTime",
        "pwdReset",
        "createTimestamp",
        "pwdChangedTime",
        "pwdLastSuccess",
        "authTimestamp",
        "objectClass",
    ]

    def account(self, dn: str, attrs: Attrs) -> Account:
        locked = as_text(first(attrs, "pwdAccountLockedTime", ""))
        must_change = as_text(first(attrs, "pwdReset", "")).upper() == "TRUE"
        created = parse_generalized(first(attrs, "createTimestamp"))
        changed = parse_generalized(first(attrs, "pwdChangedTime"))
        if changed is None and must_change:
            # ppolicy stamps pwdChangedTime on every password change but, without password aging, not on an add:
            # a first password given in the add (the intake's) dates from the entry's creation
            changed = created
        return Account(
            dn=dn,
            username=as_text(first(attrs, "uid", "")),
            given_name=as_text(first(attrs, "givenName", "")),
            surname=as_text(first(attrs, "sn", "")),
            display_name=as_text(first(attrs, "displayName", "") or first(attrs, "cn", "")),
            email=as_text(first(attrs, "mail", "")),
            staff_code=as_text(first(attrs, "employeeNumber", "")),
            description=as_text(first(attrs, "description", "")),
            disabled=bool(locked),
            must_change=must_change,
            created=created,
            password_changed=changed,
            last_logon=parse_generalized(first(attrs, "pwdLastSuccess") or first(attrs, "authTimestamp")),
            raw=attrs,
        )

    def brief_account(self, dn: str, attrs: Attrs) -> Account:
        got = {k.lower(): v for k, v in attrs.items()}  # one pass, not a case-blind scan per absent attribute
        return Account(
            dn=dn,
            username=as_text(one(got, "uid")),
            display_name=as_text(one(got, "displayname") or one(got, "cn")),
            disabled=bool(one(got, "pwdaccountlockedtime")),
            raw=attrs,
        )

    def _lean_state(self, got: Attrs) -> dict[str, Any]:
        return {"disabled": bool(one(got, "pwdaccountlockedtime")), "must_change": is_true(one(got, "pwdreset"))}

    def fill_groups(self, directory: Connection, accounts: list[Account]) -> None:
        """Direct groups of each account, of every schema: member / uniqueMember by DN, memberUid by username."""
        if not accounts:
            return
        if len(accounts) <= 5:
            with_uid = self._unique_members_with_uid(directory)
            for acct in accounts:
                dn = escape_filter_chars(acct.dn)
                by_uid = f"(memberUid={escape_filter_chars(acct.username)})" if acct.username else ""
                f = f"(&{self.group_filter}(|(member={dn})(uniqueMember={dn}){by_uid}))"
                acct.groups = [gdn for gdn, _ in directory.search(self.cfg.directory.base_dn, f, [])]
                own, seen = normalise_dn(acct.dn), {normalise_dn(g) for g in acct.groups}
                acct.groups += [g for g, dns in with_uid.items() if own in dns and normalise_dn(g) not in seen]
            return
        # Many accounts: read every group once and invert, instead of one search per person.
        by_dn = {normalise_dn(a.dn): a for a in accounts}
        by_user = {a.username.lower(): a for a in accounts if a.username}
        schema = self.groups
        for gdn, attrs in directory.search(self.cfg.directory.base_dn, self.group_filter, READ_ATTRS, raw=True):
            group = schema.parse(gdn, attrs)
            found = {id(a): a for a in map(by_dn.get, map(normalise_dn, schema.dn_members(group))) if a}
            for u in group.values.get("memberUid", ()):
                hit = by_user.get(u.lower())
                if hit is not None:
                    found[id(hit)] = hit
            for acct in found.values():
                acct.groups.append(gdn)

    def _unique_members_with_uid(self, directory: Connection) -> dict[str, set[str]]:
        """groupOfUniqueNames DN -> its members' normalised DNs, for the groups where some value carries a
        #'..'B UID: slapd's (uniqueMember=DN) does not match such a value, so they are read and matched here."""
        out: dict[str, set[str]] = {}
        f = "(&(objectClass=groupOfUniqueNames)(uniqueMember=*))"
        for gdn, attrs in directory.search(self.cfg.directory.base_dn, f, ["uniqueMember"], raw=True):
            vals = [dn_text(v) for v in values(attrs, "uniqueMember")]
            if any("#'" in v for v in vals):
                out[gdn] = {normalise_dn(v.split("#'", 1)[0]) for v in vals}
        return out

    def disable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [LOCKED_FOREVER])]}

    def enable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [])]}

    withdrawal_attributes = ["description", "pwdAccountLockedTime"]
    restorable_attributes = ["description"]
    # ppolicy deletes pwdAccountLockedTime when an administrator sets a password: lock after setting it.
    password_change_unlocks = True

    def set_password(self, directory: Connection, dn: str, password: str) -> None:
        directory.password_modify(dn, password)

    def force_change(self, directory: Connection, dn: str) -> None:
        directory.modify(dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})

    # -- intake --
    department_attr = "departmentNumber"

    def force_change_changes(self) -> dict[str, list[tuple[str, list[Any]]]]:
        """The change that force_change makes, to send with others in one request (the intake's enable)."""
        return {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]}

    pipelined_writes = True  # slapd answers pipelined requests on one connection (measured: bench/import.py)

    def ready_user(self, attributes: dict[str, Any], password: str) -> dict[str, Any] | None:
        # The password salted and hashed here ({SSHA}, as an LDIF for ldapadd carries it), so it is never
        # stored in clear whether or not the server's ppolicy hashes cleartext; it is a first password only
        # (pwdReset: the person chooses their own, hashed by the server's scheme, at first logon). Never
        # locked: it is born with its password.
        ready = {k: v for k, v in attributes.items() if k != "pwdAccountLockedTime"}
        ready["userPassword"] = ssha(password)
        ready["pwdReset"] = "TRUE"
        return ready

    def new_user(
        self,
        *,
        username: str,
        given_name: str,
        surname: str,
        display_name: str,
        email: str,
        staff_code: str,
        ou_dn: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, list[str], dict]:
        dn = child_dn("uid", username, ou_dn)
        attrs: dict[str, Any] = {
            "uid": username,
            "givenName": given_name,
            "sn": surname,
            "cn": display_name,
            "displayName": display_name,
            # Created locked: it gets a password, then is unlocked (never an open account without one).
            "pwdAccountLockedTime": LOCKED_FOREVER,
        }
        if email:
            attrs["mail"] = email
        if staff_code:
            attrs["employeeNumber"] = staff_code
        attrs.update(extra or {})
        return dn, ["inetOrgPerson"], attrs

    # -- password policy (ppolicy overlay) --
    _ppolicy_attrs = [
        "cn",
        "pwdMinLength",
        "pwdMaxAge",
        "pwdMaxFailure",
        "pwdLockout",
        "pwdCheckQuality",
        "pwdLockoutDuration",
    ]

    def password_attributes(self) -> list[str]:
        # userPassword: the audit tests readable hashes; pwdPolicySubentry: a per-account policy
        return [*self.user_attributes, "userPassword", "pwdPolicySubentry"]

    def password_policies(self, directory: Connection) -> list[PasswordPolicy]:
        """pwdPolicy entries under the base. The default is the one slapd's config names (when the bind may
        read cn=config), else [passwords] ppolicy_default, else the one called cn=default, else the only one."""
        found: list[PasswordPolicy] = []
        for dn, attrs in directory.search(self.cfg.directory.base_dn, "(objectClass=pwdPolicy)", self._ppolicy_attrs):
            lockout = is_true(first(attrs, "pwdLockout")) and int_value(first(attrs, "pwdMaxFailure")) > 0
            found.append(
                PasswordPolicy(
                    name=as_text(first(attrs, "cn", "")) or dn,
                    dn=dn,
                    kind="ppolicy",
                    min_length=int_value(first(attrs, "pwdMinLength")),
                    max_age_days=int_value(first(attrs, "pwdMaxAge")) // 86_400,
                    lockout_threshold=int_value(first(attrs, "pwdMaxFailure")) if lockout else 0,
                    # seconds; 0 = until an administrator unlocks (ppolicy's own meaning)
                    lockout_minutes=-(-int_value(first(attrs, "pwdLockoutDuration")) // 60) if lockout else None,
                )
            )
        configured = self._ppolicy_default_dn(directory)
        if not configured and self.cfg.passwords.ppolicy_default:
            configured = self.cfg.dn(self.cfg.passwords.ppolicy_default)
        default = None
        if configured:
            default = next((p for p in found if same_dn(p.dn, configured)), None)
        if default is None:
            named = [p for p in found if p.name.lower() == "default"]
            default = named[0] if len(named) == 1 else (found[0] if len(found) == 1 else None)
        return [dataclasses.replace(p, default=p is default) for p in found]

    def _ppolicy_default_dn(self, directory: Connection) -> str | None:
        """olcPPolicyDefault from cn=config, if this bind may read it (most may not: then None)."""
        try:
            for _, attrs in directory.search("cn=config", "(olcPPolicyDefault=*)", ["olcPPolicyDefault"]):
                return as_text(first(attrs, "olcPPolicyDefault")) or None
        except DirectoryError:
            return None
        return None

    def policy_resolver(
        self, directory: Connection, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        by_dn = {normalise_dn(p.dn): p for p in policies}
        default = next((p for p in policies if p.default), None)

        def resolve(dn: str, attrs: Attrs) -> PasswordPolicy | None:
            own = first(attrs, "pwdPolicySubentry")
            if own:
                return by_dn.get(normalise_dn(as_text(own)), default)
            return default

        return resolve
