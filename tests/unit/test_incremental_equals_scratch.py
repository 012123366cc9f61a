"""The property the design rests on: membership kept up incrementally by the customer step
(events one at a time, deadlines fired when they fall due, or not until the next call) equals
membership evaluated from scratch: every event up to ``t`` folded into a new state, and every
segment evaluated at ``t``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import evaluate
from engine.catalog import load_catalog
from engine.evaluate import reconcile
from engine.state import CustomerState
from engine.step import Step
from streams.events import Event
from tests.unit.engine_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NEW_YEAR_2027,
    cart,
    consent,
    email_click,
    email_open,
    item,
    profile,
    purchase,
    support,
    topic_of,
)

CATALOG = load_catalog()
STEP = Step(CATALOG)
CUSTOMERS = ("c1", "c2")
# Two months before a New Year, so birthdays (age segments) fall due inside the span.
START = NEW_YEAR_2027 - 60 * DAY
# Gaps between events, and from an event to a look: the catalog's periods and either side.
SHORT = [0, 1, MINUTE, 59 * MINUTE, HOUR, HOUR + 1, DAY - 1, DAY, 2 * DAY]
LONG = [29 * DAY, 30 * DAY, 31 * DAY, 59 * DAY, 60 * DAY, 61 * DAY, 90 * DAY, 181 * DAY, 365 * DAY]
GAPS = SHORT + LONG
# Between events, short gaps come more often: several orders or opens inside one window.
EVENT_GAPS = st.sampled_from(SHORT) | st.sampled_from(GAPS)
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

purchases = st.builds(
    lambda sku, category, quantity, price: purchase(0, item(sku, category, quantity, price)),
    st.sampled_from(["sku-boot", "sku-sock"]),
    st.sampled_from(["shoes", "socks"]),
    st.sampled_from([1, 10]),
    st.sampled_from([10.0, 60.0, 1_200.0]),
)
carts = st.builds(
    lambda action, sku: cart(0, action, sku),
    st.sampled_from(["add", "add", "remove", "checkout_started"]),
    st.sampled_from(["sku-boot", "sku-sock"]),
)
traits = st.fixed_dictionaries(
    {},
    optional={
        "birth_year": st.sampled_from([1971, 1972, 1992, 2002, 2003, 2009]),
        "email_consent": st.booleans(),
        "source": st.sampled_from(["shop", "ads"]),
        "gender": st.just("female"),
        "interests": st.just(["running"]),
    },
)
# Most segments need email consent, and many need several orders: both come often.
bodies = st.one_of(
    purchases,
    purchases,
    st.builds(lambda: consent(0)),
    carts,
    st.builds(lambda: email_open(0)),
    st.builds(lambda: email_click(0)),
    st.builds(lambda: support(0)),
    st.builds(lambda t: profile(0, **t), traits),
    st.builds(lambda: consent(0)),
)
# A look a gap after an event, or around a UTC midnight some days later (windows end there).
looks_after = st.sampled_from(GAPS).map(lambda gap: lambda ts: ts + gap) | st.builds(
    lambda days, delta: lambda ts: ts // DAY * DAY + days * DAY + delta,
    st.sampled_from([1, 2, 30, 31, 60, 61, 90, 91, 180, 181, 365, 366]),
    st.sampled_from([-1, 0, 1]),
)
# (customer, gap since the previous event, the event's body, sent twice)
steps = st.tuples(st.sampled_from(CUSTOMERS), EVENT_GAPS, bodies, st.booleans())


@st.composite
def histories(draw: Any) -> tuple[list[Event], list[int], bool, bool]:
    """Events in time order (a redelivery right after its original), the times to look at,
    whether deadlines fire on time (a timer per deadline) or only at the next call, and
    whether each step starts from the stored state (as the worker does: no deadlines per
    segment kept from the step before) or from the state object the last step left."""
    events: list[Event] = []
    ts = START
    for customer, gap, body, twice in draw(st.lists(steps, min_size=1, max_size=16)):
        ts += gap
        event = replace(body, customer_id=customer, ts=ts)
        events += [event, event] if twice else [event]
    looks = draw(st.lists(st.tuples(st.sampled_from(events), looks_after), min_size=1, max_size=8))
    times = sorted({later(event.ts) for event, later in looks})
    return events, times, draw(st.booleans()), draw(st.booleans())


def from_scratch(events: list[Event], customer: str, now: int) -> set[str]:
    """Every segment evaluated at ``now`` on a new state folded from the customer's events
    up to ``now`` (each event once)."""
    state = CustomerState(customer)
    seen: set[str] = set()
    for event in events:
        if event.customer_id == customer and event.ts <= now and event.event_id not in seen:
            seen.add(event.event_id)
            state.fold(event)
    state.clock = now
    state.prune(now)
    reconcile(state, CATALOG.segments, now, None)
    return state.segments


Members = dict[str, set[str]]


def incremental(
    events: list[Event], times: list[int], on_time: bool, stored: bool
) -> dict[int, Members]:
    """Per look at time t, each customer's membership (customers seen by t) kept by the step."""
    states: dict[str, CustomerState] = {}
    looks: dict[int, Members] = {}

    def restored() -> None:
        for customer, state in states.items():
            if stored:
                states[customer] = STEP.restore(STEP.snapshot(state))

    def fire_until(now: int) -> None:
        while on_time:
            due = [(s.next_deadline, c) for c, s in states.items() if s.next_deadline is not None]
            if not due or min(due)[0] > now:
                return
            at, customer = min(due)
            STEP.on_time(states[customer], at)
            restored()

    pending = list(times)
    for event in events:
        while pending and pending[0] < event.ts:
            look(states, looks, pending.pop(0), fire_until)
        fire_until(event.ts)
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        STEP.on_event(state, event, topic_of(event))
        restored()
    for now in pending:
        look(states, looks, now, fire_until)
    return looks


def look(
    states: dict[str, CustomerState],
    looks: dict[int, Members],
    now: int,
    fire: Callable[[int], None],
) -> None:
    """Every customer's membership at ``now``, after the step's own passage of time."""
    fire(now)
    for state in states.values():
        STEP.on_time(state, now)
    looks[now] = {customer: set(state.segments) for customer, state in states.items()}


def mismatches(
    events: list[Event], times: list[int], on_time: bool, stored: bool = False
) -> list[Any]:
    """(t, customer, incremental, from scratch) wherever the two differ."""
    found = []
    for now, members in incremental(events, times, on_time, stored).items():
        for customer, segments in members.items():
            expected = from_scratch(events, customer, now)
            if segments != expected:
                found.append((now, customer, sorted(segments), sorted(expected)))
    return found


@PROPERTY
@given(history=histories())
def test_incremental_membership_equals_membership_from_scratch(
    history: tuple[list[Event], list[int], bool, bool],
) -> None:
    assert mismatches(*history) == []


@pytest.mark.parametrize("stored", [False, True])
def test_the_property_catches_a_deadline_never_set(
    monkeypatch: pytest.MonkeyPatch, stored: bool
) -> None:
    """Guard against a comparison that can never fail: without deadlines, an open's 30 days
    of active_subscribers never end."""
    monkeypatch.setattr(evaluate, "_deadlines_after", lambda state, now, catalog, segments: None)
    events: list[Event] = [
        replace(consent(0), customer_id="c1", ts=START),
        replace(email_open(0), customer_id="c1", ts=START + HOUR),
    ]
    found = mismatches(events, [START + 40 * DAY], on_time=True, stored=stored)
    assert found and "active_subscribers" in found[0][2]
