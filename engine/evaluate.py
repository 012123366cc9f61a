"""The engine's steps. Each takes a customer's state (changed in place) and returns exactly the
transitions it causes:

- ``apply_event``: a new event, at its own time;
- ``advance``: the passage of time up to ``now`` (deadlines that fell due);
- ``apply_merge``: an anonymous visitor's events, at the link that named this customer;
- ``erase``: a right-to-be-forgotten request.

A step first fires whatever fell due before it, so the result does not depend on when a timer
happens to run: the live worker and offline replay publish the same changes. Callers outside
the engine run them through ``engine.step.Step``, the one customer step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from engine.catalog import Catalog, Segment
from engine.changes import (
    ENTER,
    EXIT,
    TRIGGER_EPISODES,
    Cause,
    Outcome,
    SegmentChange,
    Trigger,
)
from engine.state import CustomerState
from streams.events import Erasure, Event, Merge, ProfileUpdate

# A customer's deadlines strictly increase; this only guards against a faulty condition.
MAX_DEADLINES_PER_STEP = 10_000


def reconcile(
    state: CustomerState,
    segments: Iterable[Segment],
    now: int,
    cause_event_id: str | None,
    removed: Iterable[str] = (),
    *,
    cause: Cause | None = None,
    at: int | None = None,
) -> Outcome:
    """Bring ``state.segments`` in line with ``segments`` (in dependency order) as they hold at
    ``now``, and drop the ``removed`` ones; return exactly the transitions made, exits before
    enters. They are stamped ``at`` (default ``now``) with ``cause`` (default ``"event"`` if an
    event caused them, else ``"time"``)."""
    why: Cause = cause or ("event" if cause_event_id else "time")
    stamp = now if at is None else at
    exits = [name for name in removed if name in state.segments]
    enters: list[Segment] = []
    for name in exits:
        state.segments.discard(name)
    members, consented = state.segments, state.email_consent
    for segment in segments:  # Segment.holds, without a call per segment
        member = segment.name in members
        if member == (
            (consented or not segment.consent_required) and segment.when.holds(state, now)
        ):
            continue
        if member:
            members.discard(segment.name)
            exits.append(segment.name)
        else:
            members.add(segment.name)
            enters.append(segment)
    outcome = Outcome()
    for name in exits:
        outcome.changes.append(_change(state, name, EXIT, stamp, why, cause_event_id))
    for segment in enters:
        change = _change(state, segment.name, ENTER, stamp, why, cause_event_id)
        outcome.changes.append(change)
        if segment.trigger is not None and new_episode(state, segment.name, segment.trigger, stamp):
            items = trigger_items(state, segment.trigger)
            outcome.triggers.append(
                Trigger(state.customer_id, segment.trigger, stamp, items, change.version)
            )
    return outcome


def new_episode(state: CustomerState, segment: str, trigger: str, at: int) -> bool:
    """Whether entering ``segment`` fires its ``trigger``: once per episode (an abandoned cart, an
    abandoned browse) and once per moment, however often the customer leaves and re-enters the
    segment meanwhile (consent withdrawn and given back, changed definitions, records of other
    topics read after the tick). Records what it fires for."""
    episode = getattr(state, TRIGGER_EPISODES[trigger])
    last = state.fired.get(segment)
    if last is not None and (last[1] == at or (episode is not None and last[0] == episode)):
        return False
    state.fired[segment] = [episode, at]
    return True


def trigger_items(state: CustomerState, trigger: str) -> list[dict[str, Any]]:
    """A trigger's payload: the cart's lines, or the products viewed since the customer's last
    cart activity or purchase."""
    if trigger == "browse_abandoned":
        shopped = [t for t in (state.last_cart_at, state.last_purchase_at) if t is not None]
        return state.viewed_products(max(shopped) if shopped else None)
    return state.cart_items()


def _change(
    state: CustomerState,
    segment: str,
    kind: str,
    at: int,
    cause: Cause,
    cause_event_id: str | None,
) -> SegmentChange:
    state.version += 1
    return SegmentChange(
        customer_id=state.customer_id,
        segment=segment,
        change=ENTER if kind == ENTER else EXIT,
        at=at,
        cause=cause,
        cause_event_id=cause_event_id,
        version=state.version,
    )


def next_deadline(state: CustomerState, now: int, catalog: Catalog) -> int | None:
    """The earliest deadline after ``now`` of any segment; the customer's deadlines per segment
    are computed afresh (``CustomerState.deadlines``)."""
    state.deadlines = None
    return _deadlines_after(state, now, catalog, ())


def _deadlines_after(
    state: CustomerState, now: int, catalog: Catalog, segments: Iterable[Segment]
) -> int | None:
    """Recompute the deadlines of ``segments`` after a step that evaluated them (every other
    segment's stand: their inputs did not change) and return the earliest of all; all of them
    when they are not known (``engine.plan``)."""
    deadlines = state.deadlines
    if deadlines is None:
        deadlines = state.deadlines = {}
        segments = catalog.timed
    for segment in segments:
        t = segment.deadline(state, now)
        if t is not None and t > now:
            deadlines[segment.name] = t
        else:
            deadlines.pop(segment.name, None)
    earliest = min(deadlines.values()) if deadlines else None
    if earliest is not None and earliest <= now:
        # Every deadline up to now fell due and was computed afresh: one still here names no
        # timed segment (stored by other code), and nothing would ever move it.
        for name in [name for name, t in deadlines.items() if t <= now]:
            del deadlines[name]
        earliest = min(deadlines.values()) if deadlines else None
    return earliest


def sync_catalog(
    state: CustomerState, now: int, catalog: Catalog, *, catalog_at: int | None = None
) -> Outcome:
    """Re-evaluate at ``now`` the segments whose definitions changed since this customer was
    last seen (``Catalog.changed_since``); a removed segment means an exit. The changes are
    stamped ``catalog_at``, when the caller applied the definitions (default ``now``)."""
    if state.catalog_digest == catalog.digest:
        return Outcome()
    known = set(catalog.names())
    removed = sorted(name for name in state.segments if name not in known)
    changed = catalog.changed_since(state.catalog_digest)
    state.catalog_digest = catalog.digest
    outcome = reconcile(state, changed, now, None, removed, cause="catalog", at=catalog_at)
    state.next_deadline = next_deadline(state, now, catalog)
    return outcome


def advance(
    state: CustomerState, now: int, catalog: Catalog, *, catalog_at: int | None = None
) -> Outcome:
    """Fire, in time order, every deadline at or before ``now``. A customer evaluated against
    other definitions is first re-evaluated at their own clock, so replay and the live worker
    agree; those changes are stamped ``catalog_at`` (the live worker: its wall clock)."""
    if state.packed_deadlines is not None:  # a restored state: its deadlines as stored
        if state.catalog_digest == catalog.digest:
            state.deadlines = catalog.plan.unpack(state.packed_deadlines)
        state.packed_deadlines = None
    outcome = sync_catalog(state, state.clock, catalog, catalog_at=catalog_at)
    for _ in range(MAX_DEADLINES_PER_STEP):
        due = state.next_deadline
        if due is None or due > now:
            break
        state.clock = max(state.clock, due)
        state.prune(due)
        fallen = catalog.plan.fallen_due(state.deadlines, due)
        outcome.extend(reconcile(state, fallen, due, None, cause="time"))
        state.next_deadline = _deadlines_after(state, due, catalog, fallen)
    state.clock = max(state.clock, now)
    return outcome


def apply_event(
    state: CustomerState,
    event: Event,
    topic: str,
    catalog: Catalog,
    *,
    catalog_at: int | None = None,
) -> Outcome:
    """Fold an event into the state and return the changes it causes.

    A redelivered event (an id the customer has seen recently) changes nothing. Deadlines due
    before the event fire first (and a re-evaluation against changed definitions, stamped
    ``catalog_at``: see ``advance``); then only the segments ``topic`` can affect are
    re-evaluated, at the event's time (or at the customer's clock, for an event that arrives
    late). The outcome says if part of the event came too late to count (``Outcome.late``).
    """
    if state.has_counted(event):
        return Outcome()
    fresh = state.first_seen_at is None and not state.version and not state.segments
    outcome = Outcome() if fresh else advance(state, event.ts, catalog, catalog_at=catalog_at)
    outcome.late = state.fold(event)
    now = state.clock = max(state.clock, event.ts)
    if fresh:  # a new customer: every segment is evaluated once, at their first event
        state.catalog_digest = catalog.digest
        state.deadlines = {}
    segments, timed = catalog.plan.for_event("" if fresh else topic, state.email_consent)
    outcome.extend(reconcile(state, segments, now, event.event_id, cause="event"))
    state.next_deadline = _deadlines_after(state, now, catalog, timed)
    return outcome


def apply_merge(
    state: CustomerState, merge: Merge, catalog: Catalog, *, catalog_at: int | None = None
) -> Outcome:
    """Fold an anonymous visitor's events into the customer, as if the customer had sent them,
    and re-evaluate every segment at the link's time (a merge can touch any of them).

    A merge applied before changes nothing; events the customer counted already (the same
    event id under both ids) are skipped. Of a trait both sides have, the customer's own value
    wins: the visitor's profile updates only fill the gaps. A merge with no new events records
    the alias and evaluates nothing."""
    if state.aliases.get(merge.anonymous_id) == merge.merge_id:
        return Outcome()
    state.add_alias(merge.anonymous_id, merge.merge_id)
    events = sorted(
        (event for _, event in merge.events if not state.has_counted(event)),
        key=lambda event: event.ts,
    )
    if not events:
        return Outcome()
    fresh = state.first_seen_at is None and not state.version and not state.segments
    outcome = Outcome() if fresh else advance(state, merge.ts, catalog, catalog_at=catalog_at)
    own_traits = set(state.traits)
    for event in events:
        if isinstance(event, ProfileUpdate):
            gaps = {k: v for k, v in event.traits.items() if k not in own_traits}
            event = replace(event, traits=gaps)
        state.fold(event)
    now = state.clock = max(state.clock, merge.ts, events[-1].ts)
    if fresh:
        state.catalog_digest = catalog.digest
    outcome.extend(reconcile(state, catalog.segments, now, merge.link_event_id, cause="event"))
    state.next_deadline = next_deadline(state, now, catalog)
    return outcome


def erase(state: CustomerState, request: Erasure) -> Outcome:
    """Exit every segment; the caller then deletes the state."""
    now = max(state.clock, request.ts)
    removed = sorted(state.segments)
    outcome = reconcile(state, (), now, request.event_id, removed, cause="erasure")
    state.next_deadline = state.deadlines = None
    return outcome
