"""engine.evaluate: apply_event, reconcile and erase on one customer's state."""

from __future__ import annotations

import orjson
import pytest

from config import names
from engine.catalog import load_catalog, parse_catalog
from engine.changes import ENTER, EXIT, SegmentChange, Trigger
from engine.evaluate import advance, apply_event, erase, reconcile
from engine.state import (
    DEDUP_WINDOW_MS,
    LATE_FOR_CART,
    LATE_FOR_WINDOWS,
    MAX_ORDER_IDS,
    OPENS,
    ORDERS,
    RECENT_EVENT_IDS,
    SUPPORT,
    CustomerState,
)
from streams.events import CartEvent, Erasure, Event, Purchase
from tests.unit.engine_helpers import (
    CUSTOMER,
    DAY,
    HOUR,
    T0,
    Row,
    at,
    cart,
    consent,
    email_click,
    email_open,
    feed,
    item,
    profile,
    purchase,
    rows,
    support,
    topic_of,
)

FIRST = "first_time_buyers"
REPEAT = "repeat_buyers"


def _buyer(description: str, minimum: int, maximum: int | None) -> dict[str, object]:
    count: dict[str, object] = {"of": "orders", "min": minimum}
    if maximum is not None:
        count["max"] = maximum
    return {"description": description, "consent_required": False, "when": {"count": count}}


# Two segments that need no consent, so a purchase alone moves a customer.
BUYERS = parse_catalog(
    {"segments": {FIRST: _buyer("One order", 1, 1), REPEAT: _buyer("Two or more", 2, None)}},
    "buyers.yaml",
)
DEFAULT = load_catalog()


def run(events: list[Event], state: CustomerState | None = None) -> list[SegmentChange]:
    """Apply ``events`` in order to one customer's state (BUYERS); all changes, in order."""
    state = state if state is not None else CustomerState(CUSTOMER)
    return feed(state, events, BUYERS).changes


def p(event_id: str, ts: int = T0, total: float = 10.0) -> Event:
    return purchase(ts, item(unit_price=total), event_id=event_id)


def o(event_id: str, ts: int = T0) -> Event:
    return email_open(ts, event_id=event_id)


TWO_PURCHASES: list[Row] = [
    (FIRST, ENTER, 1, "p1"),
    (FIRST, EXIT, 2, "p2"),
    (REPEAT, ENTER, 3, "p2"),
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([p("p1")], [(FIRST, ENTER, 1, "p1")], id="first-purchase"),
        pytest.param([p("p1"), p("p2", T0 + 1)], TWO_PURCHASES, id="second-purchase"),
        pytest.param(
            [p("p1"), p("p2", T0 + 1), p("p3", T0 + 2)],
            TWO_PURCHASES,
            id="third-purchase-changes-nothing",
        ),
        pytest.param([p("p1"), p("p1")], [(FIRST, ENTER, 1, "p1")], id="redelivered-first"),
        pytest.param(
            [p("p1"), p("p2", T0 + 1), p("p2", T0 + 1)], TWO_PURCHASES, id="redelivered-second"
        ),
        pytest.param(
            [p("p1"), p("p1"), p("p1"), p("p2", T0 + 1)],
            TWO_PURCHASES,
            id="redelivery-does-not-count",
        ),
        pytest.param([o("m1")], [], id="email-open-only"),
        pytest.param(
            [o("m1"), p("p1", T0 + 1), o("m2", T0 + 2)],
            [(FIRST, ENTER, 1, "p1")],
            id="email-opens-around-a-purchase",
        ),
        pytest.param(
            [p("p1"), o("m1", T0 + 1), p("p2", T0 + 2)],
            TWO_PURCHASES,
            id="email-open-between-purchases",
        ),
        pytest.param(
            [p("p2", T0 + 10), p("p1", T0)],
            [(FIRST, ENTER, 1, "p2"), (FIRST, EXIT, 2, "p1"), (REPEAT, ENTER, 3, "p1")],
            id="out-of-order-purchases",
        ),
    ],
)
def test_purchase_sequences(events: list[Event], expected: list[Row]) -> None:
    assert rows(run(events)) == expected


def test_changes_carry_the_customer_and_the_event_time() -> None:
    changes = run([p("p1", T0 + 5), o("m1", T0 + 6), p("p2", T0 + 7)])
    assert [c.at for c in changes] == [T0 + 5, T0 + 7, T0 + 7]
    assert {c.customer_id for c in changes} == {CUSTOMER}


def test_a_late_event_is_evaluated_at_the_customers_clock() -> None:
    """The clock never goes back: a late event's changes are dated by the latest time seen."""
    changes = run([o("m1", T0 + 100), p("p1", T0 + 40)])
    assert [(c.segment, c.at) for c in changes] == [(FIRST, T0 + 100)]


def test_versions_rise_by_one_per_change_across_steps() -> None:
    state = CustomerState(CUSTOMER)
    events: list[Event] = [
        consent(T0),
        cart(at(minutes=1)),
        purchase(at(hours=3)),
        purchase(at(hours=4)),
        profile(at(hours=5), email_consent=False),
    ]
    outcome = feed(state, events, DEFAULT)
    assert len(outcome.changes) >= 8
    assert [c.version for c in outcome.changes] == list(range(1, len(outcome.changes) + 1))
    assert state.version == len(outcome.changes)
    assert state.segments == set()


def test_redelivered_event_leaves_the_state_alone() -> None:
    state = CustomerState(CUSTOMER)
    run([p("p1", total=25.0)], state)
    before = state.to_dict()
    assert run([p("p1", total=25.0)], state) == []
    assert state.to_dict() == before
    assert state.purchase_count == 1


def test_a_redelivered_event_does_not_move_time() -> None:
    """A duplicate is dropped before anything else, even if deadlines would have fallen due."""
    state = CustomerState(CUSTOMER)
    first = cart(T0)
    feed(state, [consent(T0), first], DEFAULT)
    duplicate = cart(T0 + 2 * HOUR, event_id=first.event_id)
    assert not apply_event(state, duplicate, names.CART_EVENTS, DEFAULT)
    assert state.clock == T0
    assert "cart_abandoners" not in state.segments


def test_non_purchase_event_is_remembered_but_not_counted() -> None:
    state = CustomerState(CUSTOMER)
    assert run([o("m1")], state) == []
    assert state.purchase_count == 0
    assert state.segments == set()
    assert state.version == 0
    assert state.has_seen("m1")
    assert run([o("m1")], state) == []


def test_an_event_on_a_topic_no_segment_watches_is_not_evaluated() -> None:
    """Once evaluated against the catalog, only the segments of the event's topic are."""
    state = CustomerState(CUSTOMER)
    run([o("m1")], state)
    event = p("p1", T0 + 1)
    outcome = apply_event(state, event, names.EMAIL_OPENS, BUYERS)
    assert (outcome.changes, outcome.triggers) == ([], [])  # (its report fact aside)
    assert state.purchase_count == 1
    assert state.segments == set()
    assert rows(run([p("p2", T0 + 2)], state)) == [(REPEAT, ENTER, 1, "p2")]


def test_the_first_event_evaluates_every_segment() -> None:
    """A new customer has no catalog digest: its first event re-evaluates all segments."""
    state = CustomerState(CUSTOMER)
    outcome = apply_event(state, p("p1"), names.EMAIL_OPENS, BUYERS)
    assert rows(outcome.changes) == [(FIRST, ENTER, 1, "p1")]
    assert state.catalog_digest == BUYERS.digest


def test_fold_tracks_spend_and_purchase_times() -> None:
    state = CustomerState(CUSTOMER)
    run([p("p1", T0 + 50, 10.0), p("p2", T0 + 10, 2.5), p("p3", T0 + 30, 1)], state)
    assert state.purchase_count == 3
    assert state.total_spend == pytest.approx(13.5)
    assert (state.first_purchase_at, state.last_purchase_at) == (T0 + 10, T0 + 50)


def test_reconcile_puts_exits_before_enters() -> None:
    """A stale state: the rules say first-time buyer, the state says repeat buyer."""
    state = CustomerState(CUSTOMER, version=7, segments={REPEAT}, purchase_count=1)
    outcome = reconcile(state, BUYERS.segments, now=T0, cause_event_id=None)
    assert rows(outcome.changes) == [(REPEAT, EXIT, 8, None), (FIRST, ENTER, 9, None)]
    assert state.segments == {FIRST}
    assert state.version == 9


def test_reconcile_in_line_changes_nothing() -> None:
    state = CustomerState(CUSTOMER, version=3, segments={REPEAT}, purchase_count=4)
    assert not reconcile(state, BUYERS.segments, now=T0, cause_event_id="x")
    assert (state.version, state.segments) == (3, {REPEAT})


def test_reconcile_only_touches_the_segments_it_is_given() -> None:
    state = CustomerState(CUSTOMER, segments={REPEAT}, purchase_count=0)
    only_first = [s for s in BUYERS.segments if s.name == FIRST]
    assert not reconcile(state, only_first, now=T0, cause_event_id=None)
    assert state.segments == {REPEAT}


def test_reconcile_drops_removed_segments_first() -> None:
    state = CustomerState(CUSTOMER, version=1, segments={"gone", REPEAT}, purchase_count=1)
    outcome = reconcile(state, BUYERS.segments, T0, None, removed=["gone"])
    assert rows(outcome.changes) == [
        ("gone", EXIT, 2, None),
        (REPEAT, EXIT, 3, None),
        (FIRST, ENTER, 4, None),
    ]


@pytest.mark.parametrize(
    ("purchase_count", "members"),
    [
        pytest.param(0, set(), id="none"),
        pytest.param(1, {FIRST}, id="one"),
        pytest.param(2, {REPEAT}, id="two"),
        pytest.param(9, {REPEAT}, id="nine"),
    ],
)
def test_buyer_rules(purchase_count: int, members: set[str]) -> None:
    state = CustomerState(CUSTOMER, purchase_count=purchase_count)
    assert {s.name for s in BUYERS.segments if s.holds(state, T0)} == members


@pytest.mark.parametrize("consent_given", [True, False], ids=["consent", "no-consent"])
def test_the_default_buyer_segments_need_consent(consent_given: bool) -> None:
    state = CustomerState(CUSTOMER, purchase_count=1, traits={"email_consent": consent_given})
    held = {s.name for s in DEFAULT.segments if s.name in (FIRST, REPEAT) and s.holds(state, T0)}
    assert held == ({FIRST} if consent_given else set())


def test_segment_change_to_dict() -> None:
    change = SegmentChange(CUSTOMER, FIRST, ENTER, T0 + 42, "event", "p1", 1)
    assert change.to_dict() == {
        "customer_id": CUSTOMER,
        "segment": FIRST,
        "change": "enter",
        "at": "2026-01-01T00:00:00.042Z",
        "cause": "event",
        "cause_event_id": "p1",
        "version": 1,
    }
    assert orjson.loads(orjson.dumps(change.to_dict())) == change.to_dict()


def test_segment_change_to_dict_without_a_causing_event() -> None:
    record = SegmentChange(CUSTOMER, REPEAT, EXIT, T0, "time", None, 4).to_dict()
    assert (record["cause"], record["cause_event_id"]) == ("time", None)


def test_trigger_to_dict() -> None:
    line = {"sku": "sku-boot", "category": "shoes", "quantity": 1, "unit_price": 140.0}
    trigger = Trigger(CUSTOMER, "cart_abandoned", T0 + HOUR, [line], 3)
    assert trigger.to_dict() == {
        "customer_id": CUSTOMER,
        "trigger": "cart_abandoned",
        "at": "2026-01-01T01:00:00.000Z",
        "cart": [line],
        "version": 3,
    }


# A customer with traits, several day buckets, a cart and bought SKUs.
RICH: list[Event] = [
    consent(T0, birth_year=1990, interests=["running"], source="social_ads"),
    purchase(at(days=1), item("sku-a", "shoes", 2, 5.0), item("sku-b", "socks", 1, 3.5)),
    cart(at(days=2), sku="sku-c", category="outdoor", quantity=3, unit_price=7.25),
    cart(at(days=2, minutes=1), sku="sku-d"),
    support(at(days=3)),
    email_open(at(days=4)),
]

ROUND_TRIPS = [
    pytest.param([], id="new"),
    pytest.param([p("p1")], id="one-purchase"),
    pytest.param(
        [p("p1", T0, 9.99), o("m1", T0 + 1), p("p2", T0 + 2, 0.01)],
        id="repeat-buyer",
    ),
    pytest.param(RICH, id="days-cart-skus-traits"),
]


@pytest.mark.parametrize("events", ROUND_TRIPS)
def test_state_round_trips_through_json(events: list[Event]) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, events, DEFAULT)
    stored = orjson.loads(orjson.dumps(state.to_dict()))
    restored = CustomerState.from_dict(stored)
    assert restored == state
    assert restored.to_dict() == state.to_dict()


def test_round_trip_keeps_days_cart_and_skus() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, RICH, DEFAULT)
    restored = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    day = T0 // 86_400_000
    assert sorted(restored.days) == [day, day + 1, day + 2, day + 3, day + 4]
    assert restored.days[day + 1][:2] == [1, 13.5]
    assert {sku: line[:3] for sku, line in restored.cart.items()} == {
        "sku-c": ["outdoor", 3, 7.25],
        "sku-d": ["shoes", 1, 140.0],
    }
    assert restored.cart == state.cart
    assert restored.skus == {"sku-a": [1, at(days=1)], "sku-b": [1, at(days=1)]}
    assert restored.categories == {"shoes": [1, at(days=1)], "socks": [1, at(days=1)]}
    assert restored.segments == state.segments
    assert restored.next_deadline == state.next_deadline is not None


def test_a_restored_state_behaves_like_the_original() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(T0), cart(at(minutes=5)), email_open(at(minutes=6))], DEFAULT)
    restored = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    later = purchase(at(hours=3))
    assert apply_event(restored, later, names.PURCHASES, DEFAULT) == apply_event(
        state, later, names.PURCHASES, DEFAULT
    )
    assert restored == state


def test_state_to_dict_is_sorted() -> None:
    state = CustomerState(
        CUSTOMER, segments={REPEAT, FIRST}, days={20_001: [0] * 7, 20_000: [1] * 7}
    )
    data = state.to_dict()
    assert data["segments"] == [FIRST, REPEAT]
    assert [row[0] for row in data["days"]] == [20_000, 20_001]


def test_state_to_dict_and_from_dict_are_detached() -> None:
    """The table keeps the dict: changing a loaded state must not change the stored value."""
    state = CustomerState(CUSTOMER)
    feed(state, RICH, DEFAULT)
    data = state.to_dict()
    snapshot = orjson.loads(orjson.dumps(data))
    feed(state, [email_open(at(days=5)), profile(at(days=5), city="Berlin")], DEFAULT)
    state.cart.clear()
    assert orjson.loads(orjson.dumps(data)) == snapshot
    restored = CustomerState.from_dict(data)
    feed(restored, [purchase(at(days=6), item("sku-a", "shoes"))], DEFAULT)
    assert orjson.loads(orjson.dumps(data)) == snapshot


def test_the_snapshot_form_shares_containers_and_says_the_same() -> None:
    """Step.snapshot serializes at once and Step.restore parses afresh, so neither copies."""
    state = CustomerState(CUSTOMER)
    feed(state, RICH, DEFAULT)
    shared = state.to_dict(detached=False)
    assert shared == state.to_dict()
    assert shared["cart"] is state.cart
    data = orjson.loads(orjson.dumps(shared))
    restored = CustomerState.from_dict(data, detached=False)
    assert restored == CustomerState.from_dict(orjson.loads(orjson.dumps(shared)))
    assert restored.cart is data["cart"]


def test_recent_event_ids_are_bounded_by_count() -> None:
    state = CustomerState(CUSTOMER)
    ids = [f"m{i}" for i in range(RECENT_EVENT_IDS + 5)]
    run([o(event_id) for event_id in ids], state)
    assert list(state.recent_event_ids) == ids[-RECENT_EVENT_IDS:]
    assert all(state.has_seen(event_id) for event_id in ids[-RECENT_EVENT_IDS:])
    assert not any(state.has_seen(event_id) for event_id in ids[:5])


@pytest.mark.parametrize(
    ("later_ms", "seen"),
    [
        (0, True),  # an SDK's immediate retry
        (HOUR, True),
        (DEDUP_WINDOW_MS - 1, True),  # the customer's clock moved on by less than the window
        (DEDUP_WINDOW_MS + 1, False),  # beyond it: forgotten
    ],
)
def test_recent_event_ids_are_kept_for_the_window_of_the_customers_clock(
    later_ms: int, seen: bool
) -> None:
    state = CustomerState(CUSTOMER)
    run([p("p1"), o("m-later", ts=T0 + later_ms), o("m-last", ts=T0 + later_ms)], state)
    assert state.has_seen("p1") is seen
    assert state.has_seen("m-later") and state.has_seen("m-last")


def test_redelivery_within_the_window_is_ignored_and_beyond_it_counts_again() -> None:
    """The bound is the contract: an event older than RECENT_EVENT_IDS ids is new again (an
    order is not: its id is remembered apart)."""
    clicked = [email_click(T0, event_id="k1")]
    within = [*clicked, *(o(f"m{i}") for i in range(RECENT_EVENT_IDS - 1))]
    state = CustomerState(CUSTOMER)
    run(within, state)
    assert state.click_count == 1
    run(clicked, state)
    assert state.click_count == 1
    beyond = [*clicked, *(o(f"m{i}") for i in range(RECENT_EVENT_IDS))]
    state = CustomerState(CUSTOMER)
    run(beyond, state)
    run(clicked, state)
    assert state.click_count == 2


def test_a_redelivery_a_day_later_by_the_clock_counts_again() -> None:
    state = CustomerState(CUSTOMER)
    run([email_click(T0, event_id="k1"), o("m1", ts=T0 + DEDUP_WINDOW_MS + HOUR)], state)
    run([email_click(T0, event_id="k1")], state)
    assert state.click_count == 2


def test_an_order_counts_once_however_late_it_comes_back() -> None:
    later = [p("p1"), *(o(f"m{i}") for i in range(RECENT_EVENT_IDS)), o("m-day", T0 + 2 * DAY)]
    state = CustomerState(CUSTOMER)
    run(later, state)
    assert not state.has_seen("p1")  # its event id is forgotten: beyond the count and the day
    assert run([p("p1")], state) == []
    # The same order under another event id (a producer that made up a new one on retry).
    again = Purchase("p1-retry", CUSTOMER, T0, "o-p1", 10.0, "EUR", (item(),))
    assert run([again], state) == []
    assert state.purchase_count == 1


def test_order_ids_are_bounded() -> None:
    state = CustomerState(CUSTOMER)
    run([p(f"p{i}") for i in range(MAX_ORDER_IDS + 3)], state)
    assert state.order_ids == [f"o-p{i}" for i in range(3, MAX_ORDER_IDS + 3)]


def test_recent_event_ids_stored_as_a_list_are_read_as_seen_at_the_clock() -> None:
    state = CustomerState.from_dict(
        {"customer_id": CUSTOMER, "clock": T0, "recent_event_ids": ["p1", "m1"]}
    )
    assert state.recent_event_ids == {"p1": T0, "m1": T0}
    assert state.has_seen("p1")
    assert CustomerState.from_dict(state.to_dict()).recent_event_ids == {"p1": T0, "m1": T0}


# -- erase ------------------------------------------------------------------------------------


def test_erase_exits_every_segment_with_the_erasure_as_cause() -> None:
    state = CustomerState(CUSTOMER)
    events: list[Event] = [
        consent(T0, birth_year=1990, gender="female", interests=["running"]),
        purchase(at(hours=1)),
        email_open(at(hours=2)),
    ]
    feed(state, events, DEFAULT)
    members = set(state.segments)
    assert {"age_35_54", "gender_female", "interest_running", FIRST} <= members
    request = Erasure(CUSTOMER, at(hours=5))
    outcome = erase(state, request)
    assert request.event_id == f"erasure:{CUSTOMER}:{at(hours=5)}"
    assert [c.segment for c in outcome.changes] == sorted(members)
    assert {(c.change, c.cause, c.cause_event_id, c.at) for c in outcome.changes} == {
        (EXIT, "erasure", request.event_id, at(hours=5))
    }
    assert [c.version for c in outcome.changes] == list(
        range(state.version - len(members) + 1, state.version + 1)
    )
    assert outcome.triggers == []
    assert state.segments == set()
    assert state.next_deadline is None


def test_erase_is_dated_no_earlier_than_the_customers_clock() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at(days=2))], DEFAULT)
    outcome = erase(state, Erasure(CUSTOMER, at(days=1)))
    assert outcome.changes
    assert {c.at for c in outcome.changes} == {at(days=2)}


def test_erase_of_a_customer_in_no_segment_publishes_nothing() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [email_open(T0)], DEFAULT)
    assert state.segments == set()
    assert not erase(state, Erasure(CUSTOMER, at(hours=1)))


# -- states stored before the catalog existed --------------------------------------------------


def test_a_state_stored_by_the_previous_version_is_re_evaluated_by_a_tick() -> None:
    stored = {
        "customer_id": CUSTOMER,
        "version": 1,
        "segments": [FIRST],
        "purchase_count": 1,
        "total_spend": 10.0,
        "first_purchase_at": T0,
        "last_purchase_at": T0,
        "recent_event_ids": ["p1"],
    }
    state = CustomerState.from_dict(stored)
    assert state.catalog_digest != DEFAULT.digest
    outcome = advance(state, 0, DEFAULT)
    # No consent on record: the default first_time_buyers segment no longer holds.
    assert rows(outcome.changes) == [(FIRST, EXIT, 2, None)]
    assert state.catalog_digest == DEFAULT.digest


# One customer's cart events and purchases travel on two topics, so the worker may see a
# purchase before a cart event that happened earlier, or after one that happened later. Each
# case lists the events in time order; every interleaving that keeps each topic's order must end
# in the same cart and the same cart_abandoners membership as time order does.
CART_ORDERS = [
    pytest.param(
        [
            cart(at(minutes=1), sku="a"),
            purchase(at(minutes=2), item()),
            cart(at(minutes=3), sku="b"),
        ],
        id="add-buy-add",
    ),
    pytest.param(
        [
            cart(at(minutes=1), sku="a"),
            purchase(at(minutes=2), item()),
            cart(at(minutes=3), sku="b"),
            cart(at(minutes=4), "remove", sku="b"),
        ],
        id="add-buy-add-remove",
    ),
    pytest.param(
        [
            cart(at(minutes=1), sku="a"),
            cart(at(minutes=2), "checkout_started"),
            purchase(at(minutes=3), item()),
        ],
        id="add-checkout-buy",
    ),
    pytest.param(
        [
            purchase(at(minutes=1), item()),
            cart(at(minutes=2), sku="a"),
            purchase(at(minutes=3), item()),
        ],
        id="buy-add-buy",
    ),
]


def interleavings(events: list[Event]) -> list[list[Event]]:
    carts = [e for e in events if topic_of(e) == names.CART_EVENTS]
    buys = [e for e in events if topic_of(e) != names.CART_EVENTS]
    if not carts or not buys:
        return [carts + buys]
    return [[carts[0], *rest] for rest in interleavings(events_without(events, carts[0]))] + [
        [buys[0], *rest] for rest in interleavings(events_without(events, buys[0]))
    ]


def events_without(events: list[Event], gone: Event) -> list[Event]:
    return [e for e in events if e is not gone]


@pytest.mark.parametrize("events", CART_ORDERS)
def test_the_cart_ends_the_same_whatever_order_the_two_topics_deliver_in(
    events: list[Event],
) -> None:
    def end(order: list[Event]) -> tuple[object, set[str]]:
        state = CustomerState(CUSTOMER)
        feed(state, [consent(at()), *order], DEFAULT)
        advance(state, at(hours=3), DEFAULT)
        return state.cart_items(), {s for s in state.segments if s == "cart_abandoners"}

    expected = end(events)
    orders = interleavings(events)
    assert len(orders) > 1
    for order in orders:
        assert end(order) == expected, [type(e).__name__ for e in order]


@pytest.mark.parametrize(
    ("applied", "source", "position", "seen"),
    [
        ({}, "purchases", 0, False),
        ({"purchases": 7}, "purchases", 7, True),
        ({"purchases": 7}, "purchases", 3, True),
        ({"purchases": 7}, "purchases", 8, False),
        ({"purchases": 7}, "email-opens", 2, False),
    ],
)
def test_a_redelivered_position_is_recognised_however_far_back(
    applied: dict[str, int], source: str, position: int, seen: bool
) -> None:
    state = CustomerState(CUSTOMER)
    for name, at_position in applied.items():
        state.mark_applied(name, at_position)
    restored = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored.has_applied(source, position) is seen


# The customer's clock stands at day 400 (a purchase then); each case sends one more event.
LATE_CASES = [
    (email_open(at(days=399)), None, "opens", 1),
    (email_open(at(days=30)), LATE_FOR_WINDOWS, "opens", 0),
    (purchase(at(days=30)), LATE_FOR_WINDOWS, "orders", 0),
    (purchase(at(days=36)), None, "orders", 1),
    (support(at(days=20)), LATE_FOR_WINDOWS, "support", 0),
    (profile(at(days=1), gender="f"), None, None, 0),
    (cart(at(days=399)), LATE_FOR_CART, None, 0),
    (cart(at(days=400, hours=1)), None, None, 0),
]


@pytest.mark.parametrize(("event", "reason", "counted_in", "in_windows"), LATE_CASES)
def test_an_event_too_late_to_count_says_why_and_still_counts_in_lifetime_totals(
    event: Event, reason: str | None, counted_in: str | None, in_windows: int
) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at()), purchase(at(days=400), event_id="recent")], DEFAULT)
    outcome = apply_event(state, event, topic_of(event), DEFAULT)

    assert outcome.late == reason
    if counted_in == "opens":
        assert state.open_count == 1 and state.window_total(state.clock, 365, OPENS) == in_windows
    elif counted_in == "orders":
        assert state.purchase_count == 2
        assert state.window_total(state.clock, 365, ORDERS) == 1 + in_windows
    elif counted_in == "support":
        assert state.support_count == 1
        assert state.window_total(state.clock, 365, SUPPORT) == in_windows
    if reason == LATE_FOR_CART:
        assert state.cart == {}
    elif isinstance(event, CartEvent):
        assert list(state.cart) == ["sku-boot"]
