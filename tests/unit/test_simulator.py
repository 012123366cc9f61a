"""The synthetic shop: seeded, valid by the event contract, every event topic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from config import names
from engine.catalog import load_catalog
from engine.evaluate import apply_event
from engine.state import CustomerState
from segstream.offline.simulator import SyntheticShop, new_run_id
from streams.events import (
    CartEvent,
    EmailClick,
    EmailOpen,
    Erasure,
    Event,
    PageView,
    ProfileUpdate,
    Purchase,
    SupportContact,
    decode,
)
from streams.records import Record

COUNT = 2000
CATALOG = load_catalog()
EVENT_TYPES: dict[str, type] = {
    names.PURCHASES: Purchase,
    names.EMAIL_OPENS: EmailOpen,
    names.EMAIL_CLICKS: EmailClick,
    names.CART_EVENTS: CartEvent,
    names.PROFILE_UPDATES: ProfileUpdate,
    names.SUPPORT_CONTACTS: SupportContact,
    names.PAGE_VIEWS: PageView,
}


def decoded(records: list[Record]) -> Iterator[tuple[Record, Event]]:
    """Each record beside what the decoder makes of it, as Kafka would deliver it."""
    for record in records:
        event = decode(record.topic, record.key.encode(), orjson.dumps(record.value))
        assert not isinstance(event, Erasure), "the shop sends no erasures"
        yield record, event


def buyer_segments(purchase_count: int, consent: bool) -> set[str]:
    """The buyer segments of a customer with ``purchase_count`` purchases (consent needed)."""
    if purchase_count == 0 or not consent:
        return set()
    return {"first_time_buyers"} if purchase_count == 1 else {"repeat_buyers"}


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return list(SyntheticShop(seed=11).events(COUNT))


def test_same_seed_gives_identical_events() -> None:
    assert list(SyntheticShop(seed=5).events(500)) == list(SyntheticShop(seed=5).events(500))


def test_other_seed_gives_other_events() -> None:
    first = [(r.topic, r.key) for r in SyntheticShop(seed=5).events(200)]
    second = [(r.topic, r.key) for r in SyntheticShop(seed=6).events(200)]
    assert first != second


def test_count_is_honoured_and_unbounded_stream_continues() -> None:
    assert len(list(SyntheticShop().events(37))) == 37
    endless = SyntheticShop().events()
    assert len([next(endless) for _ in range(COUNT + 1)]) == COUNT + 1


def test_every_event_decodes_for_its_topic_with_its_key(records: list[Record]) -> None:
    for record, event in decoded(records):
        assert type(event) is EVENT_TYPES[record.topic], record
        assert event.event_id == record.value["event_id"]
        assert event.customer_id == record.key


def test_the_mix_covers_every_event_topic(records: list[Record]) -> None:
    counts = Counter(record.topic for record in records)
    assert set(counts) == set(EVENT_TYPES) == set(names.EVENT_TOPICS)


def test_event_ids_are_unique_and_time_moves_on(records: list[Record]) -> None:
    assert len({record.value["event_id"] for record in records}) == len(records)
    shop = SyntheticShop(start_ms=1_767_225_600_000, step_ms=250)
    times = [record.value["ts"] for record in shop.events(10)]
    assert times == [1_767_225_600_000 + 250 * i for i in range(1, 11)]


def test_customers_come_from_the_configured_range() -> None:
    shop = SyntheticShop(customers=3, seed=2)
    keys = {record.key for record in shop.events(300)}
    assert keys == {shop.customer_id(i) for i in range(3)}


def test_a_clock_sets_the_event_time() -> None:
    ticks = iter(range(1_800_000_000_000, 1_800_000_000_000 + 5))
    shop = SyntheticShop(clock=lambda: next(ticks))
    assert [r.value["ts"] for r in shop.events(5)] == list(
        range(1_800_000_000_000, 1_800_000_000_005)
    )


def test_purchase_totals_match_their_items(records: list[Record]) -> None:
    for record, event in decoded(records):
        if isinstance(event, Purchase):
            expected = sum(item.quantity * item.unit_price for item in event.items)
            assert event.total == pytest.approx(expected), record


def test_the_engine_keeps_buyer_segments_consistent(records: list[Record]) -> None:
    states: dict[str, CustomerState] = {}
    purchases: Counter[str] = Counter()
    last_version: dict[str, int] = {}
    for record, event in decoded(records):
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        purchases[event.customer_id] += isinstance(event, Purchase)
        for change in apply_event(state, event, record.topic, CATALOG).changes:
            assert change.version == last_version.get(change.customer_id, 0) + 1
            if change.cause_event_id is None:
                assert change.at <= event.ts
            else:
                assert (change.cause_event_id, change.at) == (event.event_id, event.ts)
            last_version[change.customer_id] = change.version
        assert not {"first_time_buyers", "repeat_buyers"} <= state.segments
    assert any(state.purchase_count >= 2 for state in states.values())
    for customer, state in states.items():
        assert state.purchase_count == purchases[customer]
        buyers = state.segments & {"first_time_buyers", "repeat_buyers"}
        assert buyers == buyer_segments(state.purchase_count, state.email_consent)
    assert any(state.email_consent and state.purchase_count for state in states.values())


def test_runs_with_their_own_run_id_share_no_event_or_order_id() -> None:
    """A second live run with the same seed must not look like a redelivery of the first."""

    def ids(shop: SyntheticShop) -> set[str]:
        found = set()
        for record in shop.events(300):
            found.add(record.value["event_id"])
            if "order_id" in record.value:
                found.add(record.value["order_id"])
        return found

    first, second = ids(SyntheticShop(seed=7, run_id="a")), ids(SyntheticShop(seed=7, run_id="b"))
    assert first and second and not first & second


def test_a_new_run_id_differs_each_time() -> None:
    assert len({new_run_id() for _ in range(50)}) == 50


def test_cart_abandoners_leave_their_carts_long_enough_to_fall_due() -> None:
    """At the demo's pace (30 customers, 10 events a second, a 2-minute quiet period) several
    carts are abandoned within its first three minutes: the engine, fed by the shop, says so."""
    catalog = load_catalog(cart_quiet_ms=2 * 60_000)
    start = 1_767_225_600_000
    shop = SyntheticShop(customers=30, seed=3, start_ms=start, step_ms=100)
    states: dict[str, CustomerState] = {}
    abandoned = []
    for record, event in decoded(list(shop.events(10 * 60 * 3))):
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        for trigger in apply_event(state, event, record.topic, catalog).triggers:
            abandoned.append(trigger.customer_id)
    assert len(abandoned) >= 3, abandoned
