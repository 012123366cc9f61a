"""Every change says its cause: an event, the passage of time, a definition change, an erasure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.catalog import parse_catalog
from engine.changes import ENTER, EXIT, Outcome, SegmentChange
from engine.evaluate import advance, apply_event, erase
from engine.state import CustomerState
from streams.events import Erasure
from tests.unit.engine_helpers import (
    CUSTOMER,
    at,
    email_open,
    feed,
    purchase,
    topic_of,
)


def _segment(when: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": "A segment", "consent_required": False, "when": when, **extra}


V1 = parse_catalog(
    {
        "segments": {
            "buyers": _segment({"count": {"of": "orders", "min": 1}}),
            "recent_openers": _segment({"last": {"of": "open", "within": "1d"}}),
        }
    },
    "v1.yaml",
)
# Buyers now need two orders; a new segment, with a trigger, for anyone who opened.
V2 = parse_catalog(
    {
        "segments": {
            "buyers": _segment({"count": {"of": "orders", "min": 2}}),
            "recent_openers": _segment({"last": {"of": "open", "within": "1d"}}),
            "openers": _segment({"count": {"of": "opens", "min": 1}}, trigger="cart_abandoned"),
        }
    },
    "v2.yaml",
)
# When the worker applied V2 (its wall clock): a month after the customer's last event.
APPLIED = at(days=30)


def customer() -> CustomerState:
    """Bought at T0 and opened a mail an hour later, evaluated against V1 (versions 1 and 2)."""
    state = CustomerState(CUSTOMER)
    feed(state, [purchase(at(), event_id="p1")], V1)
    return state


def opened(state: CustomerState) -> Outcome:
    event = email_open(at(hours=1), event_id="m1")
    return apply_event(state, event, topic_of(event), V1, catalog_at=APPLIED)


def opened_customer() -> CustomerState:
    state = customer()
    opened(state)
    return state


def bought_again_after_v2(state: CustomerState) -> Outcome:
    event = purchase(at(hours=3), event_id="p2")
    return apply_event(state, event, topic_of(event), V2, catalog_at=APPLIED)


Row = tuple[str, str, int, str, str | None, int]


def table(changes: list[SegmentChange]) -> list[Row]:
    return [(c.segment, c.change, c.at, c.cause, c.cause_event_id, c.version) for c in changes]


ERASURE = Erasure(CUSTOMER, at(hours=5))
CASES: list[Any] = [
    pytest.param(
        customer,
        opened,
        [("recent_openers", ENTER, at(hours=1), "event", "m1", 2)],
        id="event-at-its-own-time",
    ),
    pytest.param(
        opened_customer,
        lambda state: advance(state, at(days=3), V1, catalog_at=APPLIED),
        [("recent_openers", EXIT, at(days=1, hours=1), "time", None, 3)],
        id="time-at-the-deadline",
    ),
    pytest.param(
        # Evaluated at the customer's clock (recent_openers still holds there), stamped when
        # the worker applied the definitions; exits before enters, versions +1 each.
        opened_customer,
        lambda state: advance(state, 0, V2, catalog_at=APPLIED),
        [
            ("buyers", EXIT, APPLIED, "catalog", None, 3),
            ("openers", ENTER, APPLIED, "catalog", None, 4),
        ],
        id="catalog-by-a-tick-at-the-applied-time",
    ),
    pytest.param(
        opened_customer,
        lambda state: advance(state, 0, V2),
        [
            ("buyers", EXIT, at(hours=1), "catalog", None, 3),
            ("openers", ENTER, at(hours=1), "catalog", None, 4),
        ],
        id="catalog-without-an-applied-time-at-the-customers-clock",
    ),
    pytest.param(
        # The event's change is earlier than the catalog change before it: order by version.
        opened_customer,
        bought_again_after_v2,
        [
            ("buyers", EXIT, APPLIED, "catalog", None, 3),
            ("openers", ENTER, APPLIED, "catalog", None, 4),
            ("buyers", ENTER, at(hours=3), "event", "p2", 5),
        ],
        id="catalog-before-the-next-event",
    ),
    pytest.param(
        opened_customer,
        lambda state: erase(state, ERASURE),
        [
            ("buyers", EXIT, at(hours=5), "erasure", ERASURE.event_id, 3),
            ("recent_openers", EXIT, at(hours=5), "erasure", ERASURE.event_id, 4),
        ],
        id="erasure-with-its-erasure-id",
    ),
]


@pytest.mark.parametrize(("given", "step", "expected"), CASES)
def test_each_change_says_its_cause(
    given: Callable[[], CustomerState],
    step: Callable[[CustomerState], Outcome],
    expected: list[Row],
) -> None:
    outcome = step(given())
    assert table(outcome.changes) == expected
    assert [c.to_dict()["cause"] for c in outcome.changes] == [row[3] for row in expected]


def test_a_new_customer_is_evaluated_by_their_first_event_not_as_a_catalog_change() -> None:
    state = CustomerState(CUSTOMER)
    event = purchase(at(), event_id="p1")
    outcome = apply_event(state, event, topic_of(event), V1, catalog_at=APPLIED)
    assert table(outcome.changes) == [("buyers", ENTER, at(), "event", "p1", 1)]


def test_a_catalog_trigger_is_stamped_with_the_applied_time() -> None:
    state = opened_customer()
    outcome = advance(state, 0, V2, catalog_at=APPLIED)
    assert [(t.trigger, t.at, t.version) for t in outcome.triggers] == [
        ("cart_abandoned", APPLIED, 4)
    ]


def test_a_catalog_change_leaves_the_customers_clock_alone() -> None:
    state = opened_customer()
    advance(state, 0, V2, catalog_at=APPLIED)
    assert state.clock == at(hours=1)
    assert state.next_deadline == at(days=1, hours=1)
