"""What every audit returns: one Finding per problem, each citing the AUP clause it enforces."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["high", "medium", "low", "info"]
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


@dataclass(frozen=True)
class Finding:
    subject: str  # the account, laptop tag or licence the finding is about
    check: str  # a stable machine name, e.g. "no-approval"
    clause: str  # AUP clause, e.g. "1.3"
    severity: Severity
    detail: str  # plain words: what is wrong and what to do about it
    system: str | None = None  # for access findings; None elsewhere

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.system or "", f.check, f.subject))
