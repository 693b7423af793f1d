"""Password policies as the directory enforces them (the password audit, policy 6.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import int_value

AD_NEVER_AGE = -0x8000000000000000  # maxPwdAge "never" (and 0)
AD_PWD_PROPERTY_COMPLEX = 0x1
AD_PWD_PROPERTY_STORE_CLEARTEXT = 0x10  # DOMAIN_PASSWORD_STORE_CLEARTEXT: reversible encryption for all
PSO_CONTAINER = "CN=Password Settings Container,CN=System"


@dataclass(frozen=True)
class PasswordPolicy:
    """A password policy as the directory enforces it: AD's domain policy or a fine-grained policy (PSO),
    or an OpenLDAP ppolicy entry. 0 means 'none' for min_length, max_age_days and lockout_threshold."""

    name: str
    dn: str
    kind: str  # "domain", "fine-grained", "ppolicy"
    min_length: int = 0
    max_age_days: int = 0
    lockout_threshold: int = 0
    reversible: bool = False
    precedence: int | None = None  # fine-grained: lower wins
    applies_to: tuple[str, ...] = ()  # fine-grained: user and group DNs (msDS-PSOAppliesTo)
    default: bool = False  # the one that applies when nothing more specific does
    lockout_minutes: int | None = None  # how long a lockout lasts; 0 = until an administrator unlocks; None: unread
    complexity: bool | None = None  # AD's "must meet complexity requirements"; None where there is no such rule


def interval_days(value: Any) -> int:
    """AD's negative 100-ns intervals (maxPwdAge) -> whole days; 0 for 'never'."""
    n = int_value(value)
    if n in (0, AD_NEVER_AGE) or n > 0 and n == 0x7FFFFFFFFFFFFFFF:
        return 0
    return abs(n) // (10_000_000 * 86_400)


def interval_minutes(value: Any) -> int:
    """AD's negative 100-ns intervals (lockoutDuration) -> whole minutes; 0 for 'until an administrator unlocks'."""
    n = int_value(value)
    if n in (0, AD_NEVER_AGE):
        return 0
    return abs(n) // (10_000_000 * 60)
