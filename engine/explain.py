"""Why a customer is or is not in a segment: the segment's condition tree with, at each node,
what the customer has, the rule, whether it holds, and when the passage of time alone can
change the answer (``GET /v1/customers/{id}/explain``, ``segstream customer explain``).

Evaluated on the stored state at ``now``, with the engine's own conditions: what it says is
what the engine decides. ``changes_at`` is the condition's deadline, the earliest time the
answer can change with no new event (the engine re-evaluates then; for windows of day buckets
it may find the answer unchanged, when a newer bucket still holds enough).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.catalog import Catalog, Segment
from engine.conditions import Condition, InSegment
from engine.conditions.base import earliest
from engine.conditions.form import At
from engine.state import CustomerState
from streams.timestamps import format_ts

CONSENT_RULE = "email consent given (the segment requires it)"


@dataclass(frozen=True)
class Explanation:
    rule: str
    holds: bool
    value: Any = None
    changes_at: int | None = None
    parts: tuple[Explanation, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, At):
            value = None if value.ms is None else format_ts(value.ms)
        shown: dict[str, Any] = {"rule": self.rule, "holds": self.holds, "value": value}
        if self.changes_at is not None:
            shown["changes_at"] = format_ts(self.changes_at)
        if self.parts:
            shown["parts"] = [part.to_dict() for part in self.parts]
        return shown


def explain(
    condition: Condition, state: CustomerState, now: int, catalog: Catalog | None = None
) -> Explanation:
    """The condition's answer for the customer at ``now``, node by node. With ``catalog``, a
    ``segment:`` reference is explained by the referenced segment's own rule (time can change
    it through that rule); a node changes at the earliest of its own deadline and its parts'."""
    parts = tuple(explain(part, state, now, catalog) for part in condition.parts())
    if isinstance(condition, InSegment) and catalog is not None:
        referenced = catalog.get(condition.segment)
        if referenced is not None:
            parts = (_with_consent(referenced, state, now, catalog),)
    own = condition.deadline(state, now) if condition.timed() else None
    return Explanation(
        condition.rule(),
        condition.holds(state, now),
        condition.observed(state, now),
        earliest([own, *(part.changes_at for part in parts)]),
        parts,
    )


def _with_consent(
    segment: Segment, state: CustomerState, now: int, catalog: Catalog
) -> Explanation:
    """The segment's rule, with the consent check first when the segment requires it."""
    reasons = explain(segment.when, state, now, catalog)
    if not segment.consent_required:
        return reasons
    consent = Explanation(CONSENT_RULE, state.email_consent, state.email_consent)
    both = consent.holds and reasons.holds
    return Explanation("all of", both, changes_at=reasons.changes_at, parts=(consent, reasons))


def explain_segment(
    segment: Segment, state: CustomerState, now: int, catalog: Catalog
) -> dict[str, Any]:
    """One segment for one customer: whether they are a member (as stored), whether the
    definition holds at ``now``, and why."""
    return {
        "segment": segment.name,
        "description": segment.description,
        "member": segment.name in state.segments,
        "holds": segment.holds(state, now),
        "at": format_ts(now),
        "why": _with_consent(segment, state, now, catalog).to_dict(),
    }


def explain_customer(
    catalog: Catalog, state: CustomerState, now: int, segment: str | None = None
) -> list[dict[str, Any]]:
    """The named segment, or every segment the customer is in, each with its reasons."""
    chosen = (
        [catalog.get(segment)]
        if segment is not None
        else [s for s in catalog.segments if s.name in state.segments]
    )
    return [explain_segment(s, state, now, catalog) for s in chosen if s is not None]


def rule_tree(segment: Segment) -> dict[str, Any]:
    """The segment's rule in words, node by node (the consent check first when it requires
    consent), for showing a segment rather than a customer."""

    def node(condition: Condition) -> dict[str, Any]:
        parts = [node(part) for part in condition.parts()]
        return {"rule": condition.rule(), **({"parts": parts} if parts else {})}

    rule = node(segment.when)
    if not segment.consent_required:
        return rule
    return {"rule": "all of", "parts": [{"rule": CONSENT_RULE}, rule]}
