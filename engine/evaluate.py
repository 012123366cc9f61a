"""evaluate(state, event, segments) -> changes: the one step every event goes through."""

from __future__ import annotations

from collections.abc import Iterable

from engine.changes import ENTER, EXIT, SegmentChange
from engine.segments import Segment
from engine.state import CustomerState
from streams.events import Event


def reconcile(
    state: CustomerState,
    segments: Iterable[Segment],
    now: int,
    cause_event_id: str | None,
) -> list[SegmentChange]:
    """Bring ``state.segments`` in line with the rules; return exactly the transitions made.

    Exits come before enters, so a consumer never sees a customer in two exclusive segments.
    """
    flips = [s.name for s in segments if s.holds(state, now) != (s.name in state.segments)]
    flips.sort(key=lambda name: name not in state.segments)
    changes: list[SegmentChange] = []
    for name in flips:
        member = name in state.segments
        state.version += 1
        if member:
            state.segments.discard(name)
        else:
            state.segments.add(name)
        changes.append(
            SegmentChange(
                customer_id=state.customer_id,
                segment=name,
                change=EXIT if member else ENTER,
                at=now,
                cause_event_id=cause_event_id,
                version=state.version,
            )
        )
    return changes


def apply_event(
    state: CustomerState, event: Event, topic: str, segments: Iterable[Segment]
) -> list[SegmentChange]:
    """Fold an event into ``state`` (in place) and return the segment changes it causes.

    A redelivered event (an id the customer has seen recently) changes nothing. Only the
    segments that events of ``topic`` can affect are re-evaluated, at the event's own time.
    """
    if state.has_seen(event.event_id):
        return []
    state.fold(event)
    affected = (segment for segment in segments if topic in segment.topics)
    return reconcile(state, affected, now=event.ts, cause_event_id=event.event_id)
