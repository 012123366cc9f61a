"""engine: customer state, the default segments, apply_event and reconcile."""

from __future__ import annotations

import orjson
import pytest

from config import names
from engine.changes import ENTER, EXIT, SegmentChange
from engine.evaluate import apply_event, reconcile
from engine.segments import DEFAULT_SEGMENTS
from engine.state import RECENT_EVENT_IDS, CustomerState
from streams.events import EmailOpen, Event, LineItem, Purchase

CUSTOMER = "c000001"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FIRST = "first_time_buyers"
REPEAT = "repeat_buyers"

Step = tuple[str, Event]
Row = tuple[str, str, int, str | None]


def purchase(event_id: str, ts: int = T0, total: float = 10.0) -> Step:
    item = LineItem(sku="sku-lamp", category="outdoor", quantity=1, unit_price=total)
    return names.PURCHASES, Purchase(event_id, CUSTOMER, ts, f"o-{event_id}", total, "EUR", (item,))


def email_open(event_id: str, ts: int = T0) -> Step:
    return names.EMAIL_OPENS, EmailOpen(event_id, CUSTOMER, ts, "camp-1")


def run(steps: list[Step], state: CustomerState | None = None) -> list[SegmentChange]:
    """Apply ``steps`` in order to one customer's state; all changes, in order."""
    state = state or CustomerState(CUSTOMER)
    changes: list[SegmentChange] = []
    for topic, event in steps:
        changes += apply_event(state, event, topic, DEFAULT_SEGMENTS)
    return changes


def rows(changes: list[SegmentChange]) -> list[Row]:
    return [(c.segment, c.change, c.version, c.cause_event_id) for c in changes]


TWO_PURCHASES: list[Row] = [
    (FIRST, ENTER, 1, "p1"),
    (FIRST, EXIT, 2, "p2"),
    (REPEAT, ENTER, 3, "p2"),
]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([purchase("p1")], [(FIRST, ENTER, 1, "p1")], id="first-purchase"),
        pytest.param([purchase("p1"), purchase("p2", T0 + 1)], TWO_PURCHASES, id="second-purchase"),
        pytest.param(
            [purchase("p1"), purchase("p2", T0 + 1), purchase("p3", T0 + 2)],
            TWO_PURCHASES,
            id="third-purchase-changes-nothing",
        ),
        pytest.param(
            [purchase("p1"), purchase("p1")], [(FIRST, ENTER, 1, "p1")], id="redelivered-first"
        ),
        pytest.param(
            [purchase("p1"), purchase("p2", T0 + 1), purchase("p2", T0 + 1)],
            TWO_PURCHASES,
            id="redelivered-second",
        ),
        pytest.param(
            [purchase("p1"), purchase("p1"), purchase("p1"), purchase("p2", T0 + 1)],
            TWO_PURCHASES,
            id="redelivery-does-not-count",
        ),
        pytest.param([email_open("m1")], [], id="email-open-only"),
        pytest.param(
            [email_open("m1"), purchase("p1", T0 + 1), email_open("m2", T0 + 2)],
            [(FIRST, ENTER, 1, "p1")],
            id="email-opens-around-a-purchase",
        ),
        pytest.param(
            [purchase("p1"), email_open("m1", T0 + 1), purchase("p2", T0 + 2)],
            TWO_PURCHASES,
            id="email-open-between-purchases",
        ),
        pytest.param(
            [purchase("p2", T0 + 10), purchase("p1", T0)],
            [(FIRST, ENTER, 1, "p2"), (FIRST, EXIT, 2, "p1"), (REPEAT, ENTER, 3, "p1")],
            id="out-of-order-purchases",
        ),
    ],
)
def test_purchase_sequences(steps: list[Step], expected: list[Row]) -> None:
    assert rows(run(steps)) == expected


def test_changes_carry_the_customer_and_the_event_time() -> None:
    steps = [purchase("p1", T0 + 5), email_open("m1", T0 + 6), purchase("p2", T0 + 7)]
    changes = run(steps)
    assert [c.at for c in changes] == [T0 + 5, T0 + 7, T0 + 7]
    assert {c.customer_id for c in changes} == {CUSTOMER}


def test_redelivered_event_leaves_the_state_alone() -> None:
    state = CustomerState(CUSTOMER)
    run([purchase("p1", total=25.0)], state)
    before = state.to_dict()
    assert run([purchase("p1", total=25.0)], state) == []
    assert state.to_dict() == before
    assert state.purchase_count == 1


def test_non_purchase_event_is_remembered_but_not_counted() -> None:
    state = CustomerState(CUSTOMER)
    assert run([email_open("m1")], state) == []
    assert state.purchase_count == 0
    assert state.segments == set()
    assert state.version == 0
    assert state.has_seen("m1")
    assert run([email_open("m1")], state) == []


def test_a_purchase_on_a_topic_no_segment_watches_is_not_evaluated() -> None:
    """Only segments whose topics include the event's topic are re-evaluated."""
    state = CustomerState(CUSTOMER)
    _, event = purchase("p1")
    assert apply_event(state, event, names.EMAIL_OPENS, DEFAULT_SEGMENTS) == []
    assert state.purchase_count == 1
    assert state.segments == set()


def test_fold_tracks_spend_and_purchase_times() -> None:
    state = CustomerState(CUSTOMER)
    run(
        [purchase("p1", T0 + 50, 10.0), purchase("p2", T0 + 10, 2.5), purchase("p3", T0 + 30, 1)],
        state,
    )
    assert state.purchase_count == 3
    assert state.total_spend == pytest.approx(13.5)
    assert (state.first_purchase_at, state.last_purchase_at) == (T0 + 10, T0 + 50)


def test_reconcile_puts_exits_before_enters() -> None:
    """A stale state: the rules say first-time buyer, the state says repeat buyer."""
    state = CustomerState(CUSTOMER, version=7, segments={REPEAT}, purchase_count=1)
    changes = reconcile(state, DEFAULT_SEGMENTS, now=T0, cause_event_id=None)
    assert rows(changes) == [(REPEAT, EXIT, 8, None), (FIRST, ENTER, 9, None)]
    assert state.segments == {FIRST}
    assert state.version == 9


def test_reconcile_in_line_changes_nothing() -> None:
    state = CustomerState(CUSTOMER, version=3, segments={REPEAT}, purchase_count=4)
    assert reconcile(state, DEFAULT_SEGMENTS, now=T0, cause_event_id="x") == []
    assert (state.version, state.segments) == (3, {REPEAT})


def test_reconcile_only_touches_the_segments_it_is_given() -> None:
    state = CustomerState(CUSTOMER, segments={REPEAT}, purchase_count=0)
    only_first = [s for s in DEFAULT_SEGMENTS if s.name == FIRST]
    assert reconcile(state, only_first, now=T0, cause_event_id=None) == []
    assert state.segments == {REPEAT}


@pytest.mark.parametrize(
    ("purchase_count", "members"),
    [
        pytest.param(0, set(), id="none"),
        pytest.param(1, {FIRST}, id="one"),
        pytest.param(2, {REPEAT}, id="two"),
        pytest.param(9, {REPEAT}, id="nine"),
    ],
)
def test_default_segment_rules(purchase_count: int, members: set[str]) -> None:
    state = CustomerState(CUSTOMER, purchase_count=purchase_count)
    assert {s.name for s in DEFAULT_SEGMENTS if s.holds(state, T0)} == members


def test_default_segments_are_named_once_and_watch_input_topics() -> None:
    segment_names = [s.name for s in DEFAULT_SEGMENTS]
    assert sorted(segment_names) == [FIRST, REPEAT]
    for segment in DEFAULT_SEGMENTS:
        assert segment.topics == {names.PURCHASES}
        assert segment.topics <= set(names.INPUT_TOPICS)
        assert segment.description


def test_segment_change_to_dict() -> None:
    change = SegmentChange(CUSTOMER, FIRST, ENTER, T0 + 42, "p1", 1)
    assert change.to_dict() == {
        "customer_id": CUSTOMER,
        "segment": FIRST,
        "change": "enter",
        "at": "2026-01-01T00:00:00.042Z",
        "cause_event_id": "p1",
        "version": 1,
    }
    assert orjson.loads(orjson.dumps(change.to_dict())) == change.to_dict()


def test_segment_change_to_dict_without_cause() -> None:
    assert SegmentChange(CUSTOMER, REPEAT, EXIT, T0, None, 4).to_dict()["cause_event_id"] is None


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([], id="new"),
        pytest.param([purchase("p1")], id="one-purchase"),
        pytest.param(
            [purchase("p1", T0, 9.99), email_open("m1", T0 + 1), purchase("p2", T0 + 2, 0.01)],
            id="repeat-buyer",
        ),
    ],
)
def test_state_round_trips_through_json(steps: list[Step]) -> None:
    state = CustomerState(CUSTOMER)
    run(steps, state)
    stored = orjson.loads(orjson.dumps(state.to_dict()))
    assert CustomerState.from_dict(stored) == state
    assert CustomerState.from_dict(stored).to_dict() == state.to_dict()


def test_state_to_dict_is_sorted_and_detached() -> None:
    state = CustomerState(CUSTOMER, segments={REPEAT, FIRST}, recent_event_ids=["a"])
    data = state.to_dict()
    assert data["segments"] == [FIRST, REPEAT]
    data["recent_event_ids"].append("b")
    assert state.recent_event_ids == ["a"]
    restored = CustomerState.from_dict(data)
    restored.recent_event_ids.append("c")
    assert data["recent_event_ids"] == ["a", "b"]


def test_recent_event_ids_are_bounded() -> None:
    state = CustomerState(CUSTOMER)
    ids = [f"m{i}" for i in range(RECENT_EVENT_IDS + 5)]
    run([email_open(event_id) for event_id in ids], state)
    assert state.recent_event_ids == ids[-RECENT_EVENT_IDS:]
    assert all(state.has_seen(event_id) for event_id in ids[-RECENT_EVENT_IDS:])
    assert not any(state.has_seen(event_id) for event_id in ids[:5])


def test_redelivery_within_the_window_is_ignored_and_beyond_it_counts_again() -> None:
    """The bound is the contract: a duplicate older than RECENT_EVENT_IDS ids is new again."""
    within = [purchase("p1")] + [email_open(f"m{i}") for i in range(RECENT_EVENT_IDS - 1)]
    state = CustomerState(CUSTOMER)
    run(within, state)
    assert run([purchase("p1")], state) == []
    beyond = [purchase("p1")] + [email_open(f"m{i}") for i in range(RECENT_EVENT_IDS)]
    state = CustomerState(CUSTOMER)
    run(beyond, state)
    assert rows(run([purchase("p1")], state)) == [(FIRST, EXIT, 2, "p1"), (REPEAT, ENTER, 3, "p1")]
