"""Segment definitions: a name, the rule that decides membership, and what can change it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from config import names
from engine.state import CustomerState

Rule = Callable[[CustomerState, int], bool]


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    description: str
    rule: Rule
    # Input topics whose events can change this segment's membership.
    topics: frozenset[str]

    def holds(self, state: CustomerState, now: int) -> bool:
        return self.rule(state, now)


DEFAULT_SEGMENTS: tuple[Segment, ...] = (
    Segment(
        name="first_time_buyers",
        description="Customers with exactly one purchase",
        rule=lambda state, now: state.purchase_count == 1,
        topics=frozenset({names.PURCHASES}),
    ),
    Segment(
        name="repeat_buyers",
        description="Customers with two or more purchases",
        rule=lambda state, now: state.purchase_count >= 2,
        topics=frozenset({names.PURCHASES}),
    ),
)
