"""Per-case access: which cases a reviewer may see, from an operator's mapping of roles to cases.

The mapping (setting ``case_access``) names, per role, the cases its members see (``"*"``: all).
Unset, everyone who may read the review pages sees every case. Set, a user sees the union of
their roles' cases and nothing when no role of theirs is named. An item is visible when it was
submitted to a visible case; what other cases' submissions say about it is withheld.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, exists, select
from sqlalchemy.orm import Session

from verification.ledger.models import Submission

ALL_CASES = "*"


@dataclass(frozen=True, slots=True)
class CaseScope:
    """The cases one user may see; ``cases`` None means every case."""

    cases: frozenset[str] | None = None

    @property
    def unrestricted(self) -> bool:
        """True when the user sees every case."""
        return self.cases is None

    def allows(self, case: str | None) -> bool:
        """Whether ``case`` is visible."""
        return self.cases is None or (case is not None and case in self.cases)


def scope_for(roles: Iterable[str], mapping: Mapping[str, Sequence[str]] | None) -> CaseScope:
    """The scope of a user holding ``roles`` (names compared case-insensitively)."""
    if mapping is None:
        return CaseScope()
    by_role = {role.lower(): list(cases) for role, cases in mapping.items()}
    cases: set[str] = set()
    for role in roles:
        granted = by_role.get(role.lower(), [])
        if ALL_CASES in granted:
            return CaseScope()
        cases.update(granted)
    return CaseScope(frozenset(cases))


def item_visible(engine: Engine, sha: str, scope: CaseScope) -> bool:
    """True when ``sha`` was submitted to a case of ``scope``."""
    if scope.cases is None:
        return True
    if not scope.cases:
        return False
    with Session(engine) as session:
        query = select(
            exists().where(Submission.item_sha256 == sha, Submission.case_id.in_(scope.cases))
        )
        return bool(session.scalar(query))


def scoped_report(report: Mapping[str, Any], scope: CaseScope) -> Mapping[str, Any]:
    """``report`` as ``scope`` may see it: other cases' submissions and the findings about them
    withheld, near-duplicates in cases it cannot see left out."""
    from verification.exports.scope import withhold_other_cases

    if scope.cases is None:
        return report
    scoped = withhold_other_cases(report, scope.cases)
    record = scoped["record"]
    record["duplicates"] = [
        d for d in record.get("duplicates", []) if scope.allows(d.get("case_id"))
    ]
    earliest = record.get("earliest_copy")
    if earliest and not scope.allows(earliest.get("case_id")):
        record["earliest_copy"] = None
    return scoped
