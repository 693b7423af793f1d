"""Everything LDAP. Jobs import these names from `aupctl.directory`, never from its modules.

- connection.py: Connection (TLS, bind, paged search, failover) and DirectoryError
- session.py: Directory (a Connection with its flavour), open_directory, flavour_for
- flavour.py: Flavour, the base every job talks to; openldap.py and ad.py: the two dialects
- account.py, policy.py: what is read (Account, PasswordPolicy)
- dn.py: DN comparison, splitting and building; values.py: attribute values -> Python
- groups.py: every group schema; posix.py: posixAccount numbers; pipeline.py: pipelined writes;
  entries.py: the lean entry decoder; lookup.py: username -> Account
"""

from . import pipeline
from .account import Account
from .ad import (
    UAC_ACCOUNTDISABLE,
    UAC_DONT_EXPIRE_PASSWORD,
    UAC_ENCRYPTED_TEXT_PWD_ALLOWED,
    UAC_NORMAL_ACCOUNT,
    UAC_PASSWD_NOTREQD,
    ActiveDirectory,
)
from .connection import Connection, DirectoryError
from .dn import child_dn, first_rdn, group_name, is_under, normalise_dn, parent_dn, same_dn, unescape_value
from .flavour import Flavour
from .groups import unresolved_dn, unresolved_username
from .lookup import require_account
from .nesting import walk_nested
from .openldap import OpenLDAP
from .policy import PasswordPolicy, interval_days
from .posix import PosixAccounts
from .session import Directory, flavour_for, open_directory
from .values import (
    Attrs,
    as_text,
    dn_text,
    first,
    parse_filetime,
    parse_generalized,
    values,
)

__all__ = [
    "UAC_ACCOUNTDISABLE",
    "UAC_DONT_EXPIRE_PASSWORD",
    "UAC_ENCRYPTED_TEXT_PWD_ALLOWED",
    "UAC_NORMAL_ACCOUNT",
    "UAC_PASSWD_NOTREQD",
    "Account",
    "ActiveDirectory",
    "Attrs",
    "Connection",
    "Directory",
    "DirectoryError",
    "Flavour",
    "OpenLDAP",
    "PasswordPolicy",
    "PosixAccounts",
    "as_text",
    "child_dn",
    "dn_text",
    "first",
    "first_rdn",
    "flavour_for",
    "group_name",
    "interval_days",
    "is_under",
    "normalise_dn",
    "open_directory",
    "parent_dn",
    "parse_filetime",
    "parse_generalized",
    "pipeline",
    "require_account",
    "same_dn",
    "unresolved_dn",
    "unresolved_username",
    "values",
    "unescape_value",
    "walk_nested",
]
