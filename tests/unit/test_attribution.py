"""Campaign attribution and the report: which campaign a purchase is, what a customer adds to
the report whatever order their events come in, and facts that count once (tables of cases,
an injected clock)."""

from __future__ import annotations

import itertools

import pytest

from engine.attribution import (
    DEFAULT_RULE,
    HELD,
    MAILED,
    AttributionRule,
    CampaignReport,
    attributed,
    campaign_rows,
    contribution,
    lift,
    report_fact,
    settle,
)
from engine.state import DAY_MS, MAX_TOUCHES, CustomerState
from streams.events import EmailClick, EmailOpen, EmailSend, Event, LineItem, Purchase

T0 = 1_796_000_000_000
HOUR = 3_600_000
NOBODY_HELD = lambda _segment, _customer: False  # noqa: E731


def touches(*items: tuple[int, str, str]) -> list[list[object]]:
    return [list(item) for item in items]


@pytest.mark.parametrize(
    ("touched", "at", "rule", "campaign"),
    [
        pytest.param(touches((T0, "click", "a")), T0 + HOUR, DEFAULT_RULE, "a", id="clicked"),
        pytest.param(touches((T0, "open", "a")), T0 + HOUR, DEFAULT_RULE, None, id="opened-only"),
        pytest.param(
            touches((T0, "open", "a")), T0 + HOUR, AttributionRule(by="open"), "a", id="by-open"
        ),
        pytest.param(
            touches((T0, "click", "a"), (T0 + 1, "click", "b")),
            T0 + HOUR,
            DEFAULT_RULE,
            "b",
            id="the-last-click",
        ),
        pytest.param(
            touches((T0, "click", "a"), (T0 + 2 * HOUR, "click", "b")),
            T0 + HOUR,
            DEFAULT_RULE,
            "a",
            id="a-later-click-is-not-it",
        ),
        pytest.param(touches((T0, "click", "a")), T0 + 5 * DAY_MS, DEFAULT_RULE, "a", id="day-5"),
        pytest.param(
            touches((T0, "click", "a")), T0 + 5 * DAY_MS + 1, DEFAULT_RULE, None, id="too-late"
        ),
        pytest.param([], T0, DEFAULT_RULE, None, id="no-touch"),
    ],
)
def test_which_campaign_a_purchase_is(
    touched: list[list[object]], at: int, rule: AttributionRule, campaign: str | None
) -> None:
    assert attributed(touched, at, rule) == campaign


def journey() -> list[Event]:
    """Sent twice for two segments, opened, clicked, bought within the window and after it."""
    item = [LineItem("s1", "shoes", 1, 40.0)]
    return [
        EmailSend("s1", "c1", T0, "spring", "lapsed"),
        EmailSend("s2", "c1", T0 + HOUR, "summer", None),
        EmailOpen("o1", "c1", T0 + 2 * HOUR, "spring"),
        EmailClick("k1", "c1", T0 + 3 * HOUR, "spring", "https://x.test/"),
        Purchase("p1", "c1", T0 + 4 * HOUR, "ord-1", 40.0, "EUR", item),
        Purchase("p2", "c1", T0 + 9 * DAY_MS, "ord-2", 25.0, "EUR", item),
    ]


def fold_all(events: list[Event]) -> tuple[CustomerState, CampaignReport]:
    """Fold as the worker does, publishing a fact after each event."""
    state, report = CustomerState("c1"), CampaignReport()
    for event in events:
        state.fold(event)
        state.clock = max(state.clock, event.ts)
        fact = report_fact(state, state.clock, DEFAULT_RULE, (), NOBODY_HELD)
        if fact is not None:
            report.add(fact)
            report.add(fact)  # published again: counted once
    return state, report


def test_the_report_is_the_same_whatever_order_the_events_come_in() -> None:
    events = journey()
    _, in_time = fold_all(events)
    assert campaign_rows(in_time.nested()) == [
        {"campaign": "spring", "segment": "lapsed", "sends": 1, "opens": 1, "clicks": 1,
         "conversions": 1, "revenue": 40.0, "conversion_rate": 1.0},
        {"campaign": "summer", "segment": None, "sends": 1, "opens": 0, "clicks": 0,
         "conversions": 0, "revenue": 0, "conversion_rate": 0.0},
    ]  # fmt: skip
    for order in itertools.permutations(events):
        _, report = fold_all(list(order))
        assert report.totals == pytest.approx(in_time.totals), [e.event_id for e in order]


def test_a_fact_is_what_changed_and_nothing_is_published_when_nothing_did() -> None:
    state, _ = fold_all(journey())
    assert report_fact(state, state.clock, DEFAULT_RULE, (), NOBODY_HELD) is None
    state.fold(EmailOpen("o2", "c1", state.clock, "summer"))
    fact = report_fact(state, state.clock, DEFAULT_RULE, (), NOBODY_HELD)
    assert fact is not None and fact["delta"] == {"c|summer||opens": 1.0}
    assert fact["seq"] == state.fact_seq


def test_forgetting_old_touches_keeps_their_part_of_the_report() -> None:
    state = CustomerState("c1")
    for n in range(MAX_TOUCHES + 10):
        state.fold(EmailOpen(f"o{n}", "c1", T0 + n, "spring"))
    state.clock = T0 + MAX_TOUCHES + 10
    before = contribution(state, DEFAULT_RULE, (), NOBODY_HELD)
    settle(state, state.clock + 40 * DAY_MS, DEFAULT_RULE, (), NOBODY_HELD)
    assert state.touches == []  # older than 30 days
    assert contribution(state, DEFAULT_RULE, (), NOBODY_HELD) == before


def test_purchases_of_a_holdout_segments_members_count_by_group() -> None:
    item = [LineItem("s1", "shoes", 1, 30.0)]
    state = CustomerState("c1")
    state.segments = {"lapsed"}
    state.fold(Purchase("p1", "c1", T0, "ord-1", 30.0, "EUR", item))
    held = contribution(state, DEFAULT_RULE, ("lapsed",), lambda _s, _c: True)
    mailed = contribution(state, DEFAULT_RULE, ("lapsed",), NOBODY_HELD)
    assert held == {f"g|lapsed|{HELD}|purchases": 1.0, f"g|lapsed|{HELD}|revenue": 30.0}
    assert mailed == {f"g|lapsed|{MAILED}|purchases": 1.0, f"g|lapsed|{MAILED}|revenue": 30.0}
    state.segments = set()  # no longer a member: their purchases leave the groups
    assert contribution(state, DEFAULT_RULE, ("lapsed",), NOBODY_HELD) == {}


@pytest.mark.parametrize(
    ("purchases", "members", "positive"),
    [((30.0, 5.0), (100, 100), True), ((5.0, 30.0), (100, 100), False)],
)
def test_the_lift_and_its_interval(
    purchases: tuple[float, float], members: tuple[int, int], positive: bool
) -> None:
    found = lift(purchases, members)
    assert found["lift"] == pytest.approx(purchases[0] / members[0] - purchases[1] / members[1])
    low, high = found["low"], found["high"]
    assert low is not None and high is not None and low < found["lift"] < high
    assert (low > 0) is positive  # a clear difference excludes 0
    wider = lift((purchases[0] / 10, purchases[1] / 10), (members[0] // 10, members[1] // 10))
    assert wider["high"] - wider["low"] > high - low  # type: ignore[operator]
    assert lift((1.0, 0.0), (10, 0))["lift"] is None  # a group without members
