"""The identity merge in the engine: an anonymous visitor's events folded into the customer at
the link equal the customer having sent them (tables of cases, an injected clock, no broker)."""

from __future__ import annotations

import orjson
import pytest

from engine.catalog import Catalog
from engine.erasures import ERASED
from engine.evaluate import advance
from engine.identity import AnonymousProfile, alias_erasures, decide, forward, keep_event, link
from engine.state import CustomerState
from engine.step import Step
from segstream.offline.replay import replay
from streams.events import Event, IdentityLink, Merge
from tests.unit.engine_helpers import (
    CUSTOMER,
    MINUTE,
    at,
    cart,
    consent,
    feed,
    profile,
    purchase,
    topic_of,
    view,
)


def merge(events: list[Event], ts: int, merge_id: str = "merge:v1:l1") -> Merge:
    return Merge(CUSTOMER, "v1", merge_id, "l1", ts, tuple((topic_of(e), e) for e in events))


CASES = {
    "a cart started anonymously": ([cart(at(minutes=1))], [consent(at(minutes=2))], at(minutes=3)),
    "purchases on both sides": (
        [purchase(at(days=1)), view(at(days=1, minutes=5))],
        [consent(at()), purchase(at(days=2), total=900)],
        at(days=3),
    ),
    "views then a login": (
        [view(at(minutes=m)) for m in range(5)],
        [consent(at(minutes=10))],
        at(minutes=11),
    ),
}


@pytest.mark.parametrize(("anonymous", "own", "link_ts"), CASES.values(), ids=CASES)
def test_a_merge_equals_the_customer_having_sent_the_visitors_events(
    catalog: Catalog, anonymous: list[Event], own: list[Event], link_ts: int
) -> None:
    merged = CustomerState(CUSTOMER)
    feed(merged, own, catalog)
    Step(catalog).on_merge(merged, merge(anonymous, link_ts))
    alone = CustomerState(CUSTOMER)
    feed(alone, sorted(anonymous + own, key=lambda e: e.ts), catalog)
    for state in (merged, alone):
        advance(state, link_ts + 3 * 24 * 60 * MINUTE, catalog)
    assert merged.segments == alone.segments
    assert (merged.purchase_count, merged.total_spend, merged.cart) == (
        alone.purchase_count,
        alone.total_spend,
        alone.cart,
    )


def test_a_merge_applied_twice_changes_nothing_the_second_time(catalog: Catalog) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at())], catalog)
    step, once = Step(catalog), merge([purchase(at(minutes=1))], at(minutes=2))
    first = step.on_merge(state, once)
    again = step.on_merge(state, once)
    assert first.outcome.changes and not again.outcome.changes
    assert state.purchase_count == 1 and state.aliases == {"v1": "merge:v1:l1"}


def test_the_customers_own_traits_win_and_the_visitors_fill_the_gaps(catalog: Catalog) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at(minutes=5), country="DE")], catalog)
    visitor = [profile(at(), country="NL", city="Utrecht")]
    Step(catalog).on_merge(state, merge(visitor, at(minutes=6)))
    assert state.traits["country"] == "DE" and state.traits["city"] == "Utrecht"


def test_an_anonymous_cart_abandoned_after_login_falls_due_for_the_customer(
    catalog: Catalog,
) -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at())], catalog)
    added = cart(at(minutes=1))
    result = Step(catalog).on_merge(state, merge([added], at(minutes=2)))
    assert result.next_deadline is not None and result.next_deadline > added.ts
    later = Step(catalog).on_time(state, result.next_deadline)
    assert "cart_abandoners" in state.segments
    assert [t.trigger for t in later.outcome.triggers] == ["cart_abandoned"]


LINK = IdentityLink("l1", "v1", CUSTOMER, at(minutes=2))


@pytest.mark.parametrize(
    ("linked_to", "customer", "decision"),
    [(None, CUSTOMER, "merge"), (CUSTOMER, CUSTOMER, "repeat"), ("c-other", CUSTOMER, "conflict")],
)
def test_first_link_wins(linked_to: str | None, customer: str, decision: str) -> None:
    visitor = AnonymousProfile("anon:v1", linked_to=linked_to)
    assert decide(visitor, IdentityLink("l1", "v1", customer, at())) == decision


def test_a_link_empties_the_profile_into_its_merge_record_and_later_events_forward() -> None:
    visitor = AnonymousProfile("anon:v1")
    value = {"event_id": "e1", "anonymous_id": "v1", "ts": at()}
    assert keep_event(visitor, "page-views", "e1", at(), value)
    assert not keep_event(visitor, "page-views", "e1", at(), value)  # an SDK's retry
    record = link(visitor, LINK)
    assert record["events"] == [["page-views", value]] and record["customer_id"] == CUSTOMER
    assert visitor.events == [] and visitor.linked_to == CUSTOMER
    sent = forward(visitor, "page-views", at(minutes=3), value)
    assert sent["value"]["customer_id"] == CUSTOMER and sent["kind"] == "event"
    assert AnonymousProfile.from_dict(visitor.to_dict()) == visitor


def test_a_visitors_profile_and_its_records_keep_no_email_or_name() -> None:
    visitor = AnonymousProfile("anon:v1")
    traits = {"email": "ana@shop.example", "first_name": "Ana", "country": "DE"}
    value = {"event_id": "e1", "anonymous_id": "v1", "ts": at(), "traits": traits}
    keep_event(visitor, "profile-updates", "e1", at(), value)
    assert visitor.events[0][1]["traits"] == {"country": "DE"}
    visitor.linked_to = CUSTOMER
    sent = forward(visitor, "profile-updates", at(), value | {"event_id": "e2"})
    assert sent["value"]["traits"] == {"country": "DE"}
    assert "ana@shop.example" not in str(link(AnonymousProfile("anon:v2"), LINK))


def line(topic: str, key: str, value: dict[str, object]) -> bytes:
    """A replay line."""
    return orjson.dumps({"topic": topic, "key": key, "value": value})


def visit(event_id: str, minutes: int) -> bytes:
    """The visitor v1 views a page."""
    value = {"anonymous_id": "v1", "event_id": event_id, "ts": at(minutes=minutes), "url": "/p"}
    return line("page-views", "anon:v1", value)


def link_line(minutes: int) -> bytes:
    value = {"anonymous_id": "v1", "event_id": "l1", "customer_id": CUSTOMER}
    return line("identity-links", "anon:v1", value | {"ts": at(minutes=minutes)})


def erasure_line(minutes: int) -> bytes:
    return line("customer-erasures", CUSTOMER, {"customer_id": CUSTOMER, "ts": at(minutes=minutes)})


def test_erasing_the_customer_erases_its_anonymous_ids(catalog: Catalog) -> None:
    """Replay, as the worker: the erasure of C reaches the visitor it was linked to; an older
    event under the anonymous id is refused, a newer one starts a fresh visitor, not C."""
    lines = [visit("e1", 0), link_line(1), erasure_line(5), visit("e2", 4), visit("e3", 6)]
    result = replay(lines, catalog)
    assert [r.reason for r in result.rejected] == [ERASED]
    assert CUSTOMER not in result.states
    fresh = result.visitors["anon:v1"]
    assert fresh.linked_to is None and [e[1]["event_id"] for e in fresh.events] == ["e3"]


def test_an_erasure_names_each_anonymous_id_by_its_own_key() -> None:
    assert alias_erasures(["v1", "v2"], at()) == [
        ("anon:v1", {"anonymous_id": "v1", "ts": at()}),
        ("anon:v2", {"anonymous_id": "v2", "ts": at()}),
    ]


def test_a_link_older_than_the_customers_erasure_erases_the_visitor(catalog: Catalog) -> None:
    """Replay, as the worker: the erasure did not know the visitor (its link came later, dated
    before it); the merge is refused and the visitor erased, so a later visit starts afresh."""
    known = {"event_id": "p", "customer_id": CUSTOMER, "ts": at(), "traits": {"country": "DE"}}
    profile_line = line("profile-updates", CUSTOMER, known)
    lines = [profile_line, erasure_line(5), visit("e1", 5), link_line(5), visit("e2", 6)]
    result = replay(lines, catalog)
    assert [r.reason for r in result.rejected] == [ERASED]
    assert CUSTOMER not in result.states
    fresh = result.visitors["anon:v1"]
    assert fresh.linked_to is None and [e[1]["event_id"] for e in fresh.events] == ["e2"]
