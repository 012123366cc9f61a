"""Time-driven transitions: advance() fires deadlines exactly, in order, and once."""

from __future__ import annotations

import pytest

from engine.catalog import load_catalog
from engine.changes import ENTER, EXIT
from engine.evaluate import advance, apply_event, next_deadline
from engine.state import CustomerState
from streams.events import Event
from tests.unit.engine_helpers import (
    CUSTOMER,
    DAY,
    NEW_YEAR_2027,
    T0,
    at,
    cart,
    consent,
    feed,
    purchase,
    rows,
    timeline,
    topic_of,
)

CATALOG = load_catalog()
NEW_YEAR_2028 = NEW_YEAR_2027 + 365 * DAY
CART = "cart_abandoners"


def customer() -> CustomerState:
    """Born 2002 (24 in 2026), consented at T0, put a boot in the cart a minute later."""
    state = CustomerState(CUSTOMER)
    outcome = feed(state, [consent(T0, birth_year=2002), cart(at(minutes=1))], CATALOG)
    assert {c.segment for c in outcome.changes} == {
        "age_18_24",
        "never_purchased",
        "unknown_outbound",
    }
    return state


# The deadlines of that customer, in time order, and what each changes.
DUE = [
    (CART, ENTER, at(minutes=61), None),
    ("inactive_subscribers", ENTER, at(days=60), None),
    ("age_18_24", EXIT, NEW_YEAR_2027, None),
    ("age_25_34", ENTER, NEW_YEAR_2027, None),
]


def held(state: CustomerState, now: int) -> set[str]:
    return {segment.name for segment in CATALOG.segments if segment.holds(state, now)}


def test_advance_fires_deadlines_in_time_order_at_their_own_time() -> None:
    state = customer()
    outcome = advance(state, NEW_YEAR_2027 + DAY, CATALOG)
    assert timeline(outcome.changes) == DUE
    assert [c.version for c in outcome.changes] == [4, 5, 6, 7]
    assert [(t.trigger, t.at, t.version) for t in outcome.triggers] == [
        ("cart_abandoned", at(minutes=61), 4)
    ]
    assert state.clock == NEW_YEAR_2027 + DAY
    assert state.next_deadline == NEW_YEAR_2028


def test_advancing_step_by_step_gives_the_same_changes() -> None:
    state = customer()
    seen = []
    for now in range(T0, NEW_YEAR_2027 + DAY, 7 * DAY):
        seen += timeline(advance(state, now, CATALOG).changes)
    seen += timeline(advance(state, NEW_YEAR_2027 + DAY, CATALOG).changes)
    assert seen == DUE


def test_next_deadline_is_the_earliest_time_anything_changes() -> None:
    state = customer()
    expected_deadlines = [at(minutes=61), at(days=60), NEW_YEAR_2027, NEW_YEAR_2028]
    for due in expected_deadlines[:-1]:
        assert state.next_deadline == due
        assert next_deadline(state, state.clock, CATALOG) == due
        before = set(state.segments)
        for probe in (state.clock, (state.clock + due) // 2, due - 1):
            assert held(state, probe) == before, probe
        assert held(state, due) != before
        assert not advance(state, due - 1, CATALOG)
        assert state.next_deadline == due
        assert advance(state, due, CATALOG)
    assert state.next_deadline == expected_deadlines[-1]


def test_a_deadline_fires_once() -> None:
    state = customer()
    first = advance(state, at(minutes=61), CATALOG)
    assert rows(first.changes) == [(CART, ENTER, 4, None)]
    assert len(first.triggers) == 1
    again = advance(state, at(minutes=61), CATALOG)
    assert not again
    assert again.changes == [] and again.triggers == []
    assert not advance(state, at(minutes=62), CATALOG)
    assert state.version == 4


def test_advancing_backwards_changes_nothing() -> None:
    state = customer()
    advance(state, at(days=61), CATALOG)
    snapshot = state.to_dict()
    assert not advance(state, at(days=1), CATALOG)
    assert state.to_dict() == snapshot


def test_an_early_deadline_publishes_nothing_and_moves_on() -> None:
    """Born 2000: 26, then 27 at the new year, still 25-34; the order's day also leaves the
    365-day windows then (no member of those). The deadline is early and harmless."""
    state = CustomerState(CUSTOMER)
    feed(state, [consent(T0, birth_year=2000), purchase(at(hours=1))], CATALOG)
    advance(state, at(days=359), CATALOG)
    assert state.next_deadline == NEW_YEAR_2027
    assert not advance(state, NEW_YEAR_2027, CATALOG)
    assert "age_25_34" in state.segments
    # Next: the purchase is a year old (within 365d is exclusive).
    assert state.next_deadline == NEW_YEAR_2027 + at(hours=1) - T0
    outcome = advance(state, NEW_YEAR_2027 + at(hours=1) - T0, CATALOG)
    assert [(c.segment, c.change) for c in outcome.changes] == [("purchased_last_year", EXIT)]


def test_an_event_after_several_deadlines_fires_them_first() -> None:
    state = customer()
    paid = purchase(NEW_YEAR_2027 + 5 * DAY)
    outcome = apply_event(state, paid, topic_of(paid), CATALOG)
    ts = paid.ts
    assert timeline(outcome.changes) == [
        *DUE,
        (CART, EXIT, ts, paid.event_id),  # segments in order of name, references first
        ("never_purchased", EXIT, ts, paid.event_id),
        ("unknown_outbound", EXIT, ts, paid.event_id),
        ("first_time_buyers", ENTER, ts, paid.event_id),
        ("purchased_last_year", ENTER, ts, paid.event_id),
    ]
    assert [c.version for c in outcome.changes] == list(range(4, 13))
    assert [t.at for t in outcome.triggers] == [at(minutes=61)]
    # Next: the order's day leaves the 90-day window (the earliest of the windows).
    assert state.next_deadline == NEW_YEAR_2027 + 95 * DAY


@pytest.mark.parametrize(
    ("events", "segment", "change", "due"),
    [
        pytest.param(
            [consent(), purchase(T0), purchase(at(days=10)), purchase(at(days=20))],
            "frequent_buyers",
            EXIT,
            at(days=90),
            id="window-expiry",
        ),
        pytest.param(
            [consent(), purchase(at(hours=6))],
            "lapsed_customers",
            ENTER,
            at(days=180, hours=6),
            id="recency-more-than",
        ),
        pytest.param(
            [consent(), purchase(at(hours=6))],
            "purchased_last_year",
            EXIT,
            at(days=365, hours=6),
            id="recency-within",
        ),
    ],
)
def test_time_driven_change_happens_exactly_at_the_deadline(
    events: list[Event], segment: str, change: str, due: int
) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, events, CATALOG)
    before = advance(state, due - 1, CATALOG)
    assert segment not in {c.segment for c in before.changes}
    outcome = advance(state, due, CATALOG)
    assert (segment, change, due, None) in timeline(outcome.changes)
