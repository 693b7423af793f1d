"""The AUP clauses a reminder cites (shared/policy: the staff Acceptable Use of ICT Policy), quoted short."""

from __future__ import annotations

CLAUSES: dict[str, str] = {
    "1.3": (
        "Access to certain software packages and systems will be restricted to nominated staff and unless "
        "permission and access has been provided, staff must not access these systems."
    ),
    "1.4": (
        "Staff must also ensure that they bring their laptop/equipment in as required for updating of software, "
        "licences and virus protection."
    ),
    "7.2.3": "The school reserves the right to gain access to communications, where necessary, where a user is absent from work.",
    "9.1": (
        "Staff are required to read and sign a declaration to confirm they have had access to the acceptable use "
        "policy and that they accept and will follow its terms."
    ),
}


def cite(clause: str) -> dict[str, str]:
    """What a template shows: the clause number and its words."""
    return {"clause": clause, "clause_text": CLAUSES.get(clause, "")}
