"""Active Directory: users and groups, userAccountControl (always tested with masks, never by value),
accountExpires, nested groups, and the domain's and fine-grained password policies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import ldap3

from .account import Account
from .connection import Connection
from .dn import child_dn, normalise_dn
from .flavour import Flavour
from .nesting import walk_nested
from .policy import (
    AD_PWD_PROPERTY_COMPLEX,
    AD_PWD_PROPERTY_STORE_CLEARTEXT,
    PSO_CONTAINER,
    PasswordPolicy,
    interval_days,
    interval_minutes,
)
from .values import (
    Attrs,
    as_text,
    dn_text,
    first,
    int_value,
    is_true,
    one,
    parse_filetime,
    parse_generalized,
    to_filetime,
    values,
)

# userAccountControl bits (MS-ADTS 2.2.16)
UAC_ACCOUNTDISABLE = 0x0002
UAC_PASSWD_NOTREQD = 0x0020
UAC_ENCRYPTED_TEXT_PWD_ALLOWED = 0x0080
UAC_NORMAL_ACCOUNT = 0x0200
UAC_DONT_EXPIRE_PASSWORD = 0x10000


class ActiveDirectory(Flavour):
    name = "ad"
    username_attr = "sAMAccountName"
    person_filter = "(&(objectCategory=person)(objectClass=user))"
    group_filter = "(objectClass=group)"
    brief_attributes = ["sAMAccountName", "cn", "displayName", "userAccountControl", "memberOf"]
    members_follow_renames = True  # member/memberOf are linked: the DC rewrites them on a rename or move
    lean_attributes = [*brief_attributes, "givenName", "sn", "mail", "employeeNumber", "description", "pwdLastSet"]
    user_attributes = [
        "sAMAccountName",
        "givenName",
        "sn",
        "cn",
        "displayName",
        "mail",
        "employeeNumber",
        "description",
        "userAccountControl",
        "whenCreated",
        "pwdLastSet",
        "lastLogonTimestamp",
        "memberOf",
        "userPrincipalName",
        "accountExpires",
        "primaryGroupID",
    ]

    def account(self, dn: str, attrs: Attrs) -> Account:
        uac = int(first(attrs, "userAccountControl", 0) or 0)
        pwd_last_set_raw = first(attrs, "pwdLastSet")
        return Account(
            dn=dn,
            username=as_text(first(attrs, "sAMAccountName", "")),
            given_name=as_text(first(attrs, "givenName", "")),
            surname=as_text(first(attrs, "sn", "")),
            display_name=as_text(first(attrs, "displayName", "") or first(attrs, "cn", "")),
            email=as_text(first(attrs, "mail", "")),
            staff_code=as_text(first(attrs, "employeeNumber", "")),
            description=as_text(first(attrs, "description", "")),
            disabled=bool(uac & UAC_ACCOUNTDISABLE),
            must_change=str(pwd_last_set_raw) == "0",
            groups=[as_text(g) for g in values(attrs, "memberOf")],
            created=parse_generalized(first(attrs, "whenCreated")),
            password_changed=parse_filetime(pwd_last_set_raw),
            last_logon=parse_filetime(first(attrs, "lastLogonTimestamp")),
            uac=uac,
            raw=attrs,
        )

    def brief_account(self, dn: str, attrs: Attrs) -> Account:
        got = {k.lower(): v for k, v in attrs.items()}  # one pass, not a case-blind scan per absent attribute
        uac = int(one(got, "useraccountcontrol") or 0)  # int() takes the raw b"514" too
        return Account(
            dn=dn,
            username=as_text(one(got, "samaccountname")),
            display_name=as_text(one(got, "displayname") or one(got, "cn")),
            disabled=bool(uac & UAC_ACCOUNTDISABLE),
            groups=[dn_text(g) for g in got.get("memberof") or ()],
            uac=uac,
            raw=attrs,
        )

    def _lean_state(self, got: Attrs) -> dict[str, Any]:
        uac = int(one(got, "useraccountcontrol") or 0)
        return {
            "disabled": bool(uac & UAC_ACCOUNTDISABLE),
            "must_change": as_text(one(got, "pwdlastset")) == "0",
            "groups": [dn_text(g) for g in got.get("memberof") or ()],
            "uac": uac,
        }

    def effective_members(
        self, directory: Connection, group_dn: str, groups: dict[str, list[str]] | None = None
    ) -> dict[str, str | None] | None:
        """Nested groups count on AD; say which group brought each person in (first one found)."""
        direct = self.group_members(directory, group_dn)
        if direct is None:
            return None
        groups = groups if groups is not None else self.all_groups(directory)
        out: dict[str, str | None] = {}
        for member, via, _ in walk_nested(groups, normalise_dn(group_dn), direct):
            out.setdefault(member, via)
        return out

    def members_of_groups(
        self, directory: Connection, group_dns: list[str], known: dict[str, str] | None = None
    ) -> dict[str, dict[str, str | None] | None]:
        """One search of every group (auto_range follows ranged reads of groups over 1,500 members), then
        nesting resolved in memory: no group is read twice however many systems share it."""
        groups = self.all_groups(directory)
        out: dict[str, dict[str, str | None] | None] = {}
        for gdn in group_dns:
            top = normalise_dn(gdn)
            if top not in groups:
                out[gdn] = None
                continue
            found: dict[str, str | None] = {}
            for member, via, _ in walk_nested(groups, top, groups[top]):
                found.setdefault(member, via)
            out[gdn] = found
        return out

    def disable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        return {
            "userAccountControl": [(ldap3.MODIFY_REPLACE, [str((acct.uac or UAC_NORMAL_ACCOUNT) | UAC_ACCOUNTDISABLE)])]
        }

    def enable_changes(self, acct: Account) -> dict[str, list[tuple[str, list[Any]]]]:
        uac = (acct.uac or UAC_NORMAL_ACCOUNT) & ~UAC_ACCOUNTDISABLE & ~UAC_PASSWD_NOTREQD
        return {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(uac | UAC_NORMAL_ACCOUNT)])]}

    # The primary group (primaryGroupID, usually Domain Users) is not in memberOf, so a leaver keeps it.
    withdrawal_attributes = ["description", "userAccountControl", "accountExpires"]
    restorable_attributes = ["description", "accountExpires"]

    def expiry_changes(self, current: str | None, on: dt.date) -> dict[str, list[tuple[str, list[Any]]]]:
        # Like "End of: <date>" in Active Directory Users and Computers: midnight after the leaving day.
        end = dt.datetime.combine(on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        value = str(to_filetime(end))
        if current == value:
            return {}
        return {"accountExpires": [(ldap3.MODIFY_REPLACE, [value])]}

    def set_password(self, directory: Connection, dn: str, password: str) -> None:
        encoded = f'"{password}"'.encode("utf-16-le")  # AD takes a quoted UTF-16LE string, over TLS only
        directory.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [encoded])]})

    def force_change(self, directory: Connection, dn: str) -> None:
        directory.modify(dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})

    # -- intake --
    department_attr = "department"

    def force_change_changes(self) -> dict[str, list[tuple[str, list[Any]]]]:
        """The change that force_change makes, to send with others in one request (the intake's enable)."""
        return {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]}

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
        dn = child_dn("CN", display_name, ou_dn)
        attrs: dict[str, Any] = {
            "sAMAccountName": username,
            "givenName": given_name,
            "sn": surname,
            "displayName": display_name,
            "userAccountControl": str(UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE),
        }
        # The UPN people sign in with: accounts.upn_suffix, else the domain's DNS name (DC=school,DC=example).
        suffix = self.cfg.accounts.upn_suffix or ".".join(
            part.split("=", 1)[1].strip()
            for part in self.cfg.directory.base_dn.split(",")
            if part.strip().lower().startswith("dc=")
        )
        if suffix:
            attrs["userPrincipalName"] = f"{username}@{suffix.lstrip('@')}"
        if email:
            attrs["mail"] = email
        if staff_code:
            attrs["employeeNumber"] = staff_code
        attrs.update(extra or {})
        return dn, ["top", "person", "organizationalPerson", "user"], attrs

    # -- password policy: the domain's, and fine-grained policies (PSOs) --
    # lastLogonTimestamp is only rewritten when older than ms-DS-Logon-Time-Sync-Interval (14 days less up to
    # 5 random days), so it may be up to 14 days behind the real last logon.
    logon_lag_days = 14

    _pso_attrs = [
        "cn",
        "msDS-MinimumPasswordLength",
        "msDS-MaximumPasswordAge",
        "msDS-LockoutThreshold",
        "msDS-PasswordReversibleEncryptionEnabled",
        "msDS-PasswordSettingsPrecedence",
        "msDS-PSOAppliesTo",
        "msDS-LockoutDuration",
        "msDS-PasswordComplexityEnabled",
    ]

    def password_policies(self, directory: Connection) -> list[PasswordPolicy]:
        """The domain policy (on the domain root) and each msDS-PasswordSettings object."""
        base = self.cfg.directory.base_dn
        wanted = ["minPwdLength", "maxPwdAge", "pwdProperties", "lockoutThreshold", "lockoutDuration"]
        root = directory.read(base, wanted) or {}
        properties = int_value(first(root, "pwdProperties"))
        out = [
            PasswordPolicy(
                name="domain policy",
                dn=base,
                kind="domain",
                min_length=int_value(first(root, "minPwdLength")),
                max_age_days=interval_days(first(root, "maxPwdAge")),
                lockout_threshold=int_value(first(root, "lockoutThreshold")),
                reversible=bool(properties & AD_PWD_PROPERTY_STORE_CLEARTEXT),
                default=True,
                lockout_minutes=interval_minutes(first(root, "lockoutDuration")),
                complexity=bool(properties & AD_PWD_PROPERTY_COMPLEX),
            )
        ]
        container = f"{PSO_CONTAINER},{base}"
        for dn, attrs in directory.search(container, "(objectClass=msDS-PasswordSettings)", self._pso_attrs):
            out.append(
                PasswordPolicy(
                    name=as_text(first(attrs, "cn", "")) or dn,
                    dn=dn,
                    kind="fine-grained",
                    min_length=int_value(first(attrs, "msDS-MinimumPasswordLength")),
                    max_age_days=interval_days(first(attrs, "msDS-MaximumPasswordAge")),
                    lockout_threshold=int_value(first(attrs, "msDS-LockoutThreshold")),
                    reversible=is_true(first(attrs, "msDS-PasswordReversibleEncryptionEnabled")),
                    precedence=int_value(first(attrs, "msDS-PasswordSettingsPrecedence"), 0),
                    applies_to=tuple(as_text(v) for v in values(attrs, "msDS-PSOAppliesTo")),
                    lockout_minutes=interval_minutes(first(attrs, "msDS-LockoutDuration")),
                    complexity=is_true(first(attrs, "msDS-PasswordComplexityEnabled")),
                )
            )
        return out

    def policy_resolver(
        self, directory: Connection, policies: list[PasswordPolicy]
    ) -> Callable[[str, Attrs], PasswordPolicy | None]:
        """AD's rule: a PSO applied to the user beats any applied through a group (nested groups count);
        among several, the lowest precedence wins; with none, the domain policy applies."""
        default = next((p for p in policies if p.default), None)
        psos = [p for p in policies if p.kind == "fine-grained" and p.applies_to]
        if not psos:
            return lambda dn, attrs: default
        groups = self.all_groups(directory)
        direct: dict[str, PasswordPolicy] = {}
        via_group: dict[str, PasswordPolicy] = {}

        def better(current: PasswordPolicy | None, new: PasswordPolicy) -> bool:
            return current is None or (new.precedence or 0) < (current.precedence or 0)

        for pso in psos:
            for target in pso.applies_to:
                key = normalise_dn(target)
                if key not in groups:
                    if better(direct.get(key), pso):
                        direct[key] = pso
                    continue
                for member_dn, _, _ in walk_nested(groups, key, groups[key]):
                    member = normalise_dn(member_dn)
                    if better(via_group.get(member), pso):
                        via_group[member] = pso

        def resolve(dn: str, attrs: Attrs) -> PasswordPolicy | None:
            key = normalise_dn(dn)
            return direct.get(key) or via_group.get(key) or default

        return resolve
