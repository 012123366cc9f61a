"""One customer step, the only one: the live worker, replay, the benchmarks and the footprint
all run a customer through ``Step``, so replay is the live worker's code by construction.

Shaped like bytewax's ``StatefulLogic``. For one customer, in this order:

1. the state comes from ``restore`` (a stored snapshot) or is new (``CustomerState(id)``);
2. each of the customer's records goes to ``on_event``, in the order they arrive; whenever the
   clock reaches ``notify_at`` (the ``next_deadline`` the last call returned), ``on_time``.
   Each call first fires every deadline due before it, so when a timer runs changes nothing;
3. after each call the caller publishes the outcome's changes and triggers, in order, stores
   ``snapshot(state)`` and schedules ``on_time`` at the returned ``next_deadline`` (None: no
   timer);
4. ``on_erasure`` is the customer's last call: every segment exits, and the caller deletes
   the state.

``catalog_at`` is when the caller applied the definitions (the live worker: its wall clock);
a customer evaluated against other definitions is re-evaluated first, and those changes are
stamped with it (default: the customer's own clock, which is all replay ever needs).
"""

from __future__ import annotations

from typing import NamedTuple

from engine.attribution import DEFAULT_RULE, AttributionRule, report_fact
from engine.catalog import Catalog
from engine.changes import Outcome
from engine.evaluate import advance, apply_event, apply_merge, erase
from engine.identity import AnonymousProfile
from engine.state import CustomerState
from streams import codec
from streams.events import EmailClick, EmailOpen, EmailSend, Erasure, Event, Merge, Purchase

# The events that can change a customer's part of the campaign report.
REPORTED = (EmailSend, EmailOpen, EmailClick, Purchase)


class StepResult(NamedTuple):
    """What one call publishes, and when to call ``on_time`` next (None: nothing is due)."""

    outcome: Outcome
    next_deadline: int | None


class Step:
    """A catalog's customer step; holds no customer state of its own."""

    def __init__(self, catalog: Catalog, attribution: AttributionRule = DEFAULT_RULE) -> None:
        self.catalog = catalog
        self.attribution = attribution

    def on_event(
        self, state: CustomerState, event: Event, topic: str, *, catalog_at: int | None = None
    ) -> StepResult:
        """Fold ``event`` (read from ``topic``) into ``state``: bytewax's ``on_item``."""
        outcome = apply_event(state, event, topic, self.catalog, catalog_at=catalog_at)
        if isinstance(event, REPORTED) or self._moves_holdouts(outcome):
            self._report(state, outcome, state.clock)
        return StepResult(outcome, state.next_deadline)

    def on_merge(
        self, state: CustomerState, merge: Merge, *, catalog_at: int | None = None
    ) -> StepResult:
        """Fold an anonymous visitor's events in, at the link that named this customer."""
        outcome = apply_merge(state, merge, self.catalog, catalog_at=catalog_at)
        self._report(state, outcome, state.clock)
        return StepResult(outcome, state.next_deadline)

    def on_time(
        self, state: CustomerState, now: int, *, catalog_at: int | None = None
    ) -> StepResult:
        """Fire every deadline at or before ``now``: bytewax's ``on_notify``."""
        outcome = advance(state, now, self.catalog, catalog_at=catalog_at)
        if self._moves_holdouts(outcome):
            self._report(state, outcome, now)
        return StepResult(outcome, state.next_deadline)

    def _moves_holdouts(self, outcome: Outcome) -> bool:
        """Whether a step moved the customer in or out of a segment with a holdout (whose
        purchases the report counts by group, for its members)."""
        holdouts = self.catalog.holdouts
        return bool(holdouts) and any(c.segment in holdouts for c in outcome.changes)

    def _report(self, state: CustomerState, outcome: Outcome, now: int) -> None:
        catalog = self.catalog
        fact = report_fact(state, now, self.attribution, catalog.holdouts, catalog.held_out)
        if fact is not None:
            outcome.facts.append(fact)

    def on_erasure(self, state: CustomerState, request: Erasure) -> StepResult:
        """Exit every segment; nothing is due after it (the caller deletes the state)."""
        return StepResult(erase(state, request), None)

    @staticmethod
    def notify_at(state: CustomerState) -> int | None:
        """When the passage of time alone may next change a segment."""
        return state.next_deadline

    def snapshot(self, state: CustomerState | AnonymousProfile) -> bytes:
        """The stored form (the table's value and its changelog record), with the customer's
        deadlines per segment when they are known for this catalog."""
        if not isinstance(state, CustomerState):
            return codec.dumps_kept(state.to_dict())
        data = state.to_dict(detached=False)
        if state.deadlines is not None and state.catalog_digest == self.catalog.digest:
            data["deadlines"] = self.catalog.plan.pack(state.deadlines)
        elif state.packed_deadlines is not None:  # restored, and no step read them since
            data["deadlines"] = state.packed_deadlines
        return codec.dumps_kept(data)

    @staticmethod
    def restore(snapshot: bytes) -> CustomerState:
        """The state a ``snapshot`` holds (its stored deadlines are read by its next step)."""
        return CustomerState.from_dict(codec.loads(snapshot), detached=False)
