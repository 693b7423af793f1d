"""What a Change's Check means in the directory: whether a change stands, asked later (by another run
or `aupctl log repair`) when the run that made it stopped before recording it.

A check says whether the directory is now as the change would leave it; it cannot say who made it so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ldap3

from .directory import as_text, same_dn
from .plan import Check

if TYPE_CHECKING:
    from .directory import Directory


def member(group_dn: str, member_dn: str, present: bool) -> Check:
    """add-member (present) or remove-member (not)."""
    return Check("member", {"group": group_dn, "member": member_dn, "present": present})


def moved(from_dn: str, to_dn: str) -> Check:
    return Check("moved", {"from": from_dn, "to": to_dn})


def attributes(dn: str, mods: dict[str, list[tuple[str, list[Any]]]]) -> Check | None:
    """A modify that replaces values (disable, enable, description, expiry, an update): the values it
    leaves. None when it adds or deletes single values or carries bytes (passwords): not checkable."""
    want: dict[str, list[str]] = {}
    for attr, ops in mods.items():
        if len(ops) != 1 or ops[0][0] != ldap3.MODIFY_REPLACE:
            return None
        values = list(ops[0][1])
        if any(isinstance(v, bytes | bytearray) for v in values):
            return None
        want[attr] = [str(v) for v in values]
    return Check("attributes", {"dn": dn, "values": want}) if want else None


def evaluate(directory: Directory, check: Check) -> bool | None:
    """True: the directory is as the change leaves it; False: it is not; None: cannot tell."""
    a = check.args
    if check.kind == "member":
        if not directory.exists(a["group"]):
            return None
        members = directory.flavour.group_members(directory, a["group"]) or []
        return any(same_dn(m, a["member"]) for m in members) == bool(a["present"])
    if check.kind == "moved":
        there, still = directory.exists(a["to"]), directory.exists(a["from"])
        if there != still:
            return there
        return None
    if check.kind == "attributes":
        got = directory.read(a["dn"], list(a["values"]), raw=True)
        if got is None:
            return None
        lowered = {k.lower(): sorted(as_text(v) for v in vals) for k, vals in got.items()}
        return all(lowered.get(attr.lower(), []) == sorted(vals) for attr, vals in a["values"].items())
    return None


def checker(directory_of: Any) -> Any:
    """A plan.reconcile checker that opens the directory only when an intent needs it."""
    opened: list[Directory] = []

    def run(check: Check) -> bool | None:
        if not opened:
            opened.append(directory_of())
        return evaluate(opened[0], check)

    return run
