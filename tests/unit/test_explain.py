"""Explaining a segment for a customer: the rule at each node, the customer's value, whether it
holds and when time alone changes it (tables of cases, an injected clock, no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.catalog import Catalog, parse_catalog
from engine.conditions.form import limits
from engine.explain import CONSENT_RULE, explain_customer, explain_segment
from engine.state import CustomerState
from streams.timestamps import format_ts
from streams.traits import date_value
from tests.unit.engine_helpers import (
    CUSTOMER,
    DAY,
    at,
    cart,
    consent,
    email_click,
    email_open,
    feed,
    profile,
    purchase,
    support,
    view,
)


def customer(events: list[Any], catalog: Catalog) -> CustomerState:
    state = CustomerState(CUSTOMER)
    feed(state, events, catalog)
    return state


def rule_of(why: dict[str, Any]) -> dict[str, Any]:
    """The segment's own rule, under the consent node every default segment adds."""
    consent_node, rule = why["parts"]
    assert consent_node["rule"] == CONSENT_RULE
    return rule


# The oldest order of a 90-day window leaves it at the end of its 90th UTC day.
FIRST_ORDER_LEAVES = (at(days=1) // DAY + 90) * DAY

# segment, the customer's purchases (days after T0), explained at (days), then the rule's
# words, the value, whether it holds, and when time alone changes it (or None).
CASES = {
    "two orders of three": (
        "frequent_buyers",
        [1, 2],
        3,
        ("orders within 90d at least 3", 2, False, FIRST_ORDER_LEAVES),
    ),
    "three orders": (
        "frequent_buyers",
        [1, 2, 3],
        4,
        ("orders within 90d at least 3", 3, True, FIRST_ORDER_LEAVES),
    ),
    "a recent buyer not yet lapsed": (
        "lapsed_customers",
        [1],
        42,
        ("last purchase more than 180d ago", format_ts(at(days=1)), False, at(days=181)),
    ),
    "lapsed": (
        "lapsed_customers",
        [1],
        200,
        ("last purchase more than 180d ago", format_ts(at(days=1)), True, None),
    ),
}


@pytest.mark.parametrize(("segment", "bought", "when", "expected"), CASES.values(), ids=CASES)
def test_a_rule_says_what_the_customer_has_and_when_time_changes_it(
    catalog: Catalog, segment: str, bought: list[int], when: int, expected: tuple[Any, ...]
) -> None:
    events = [consent(at())] + [purchase(at(days=d)) for d in bought]
    state = customer(events, catalog)
    found = explain_segment(catalog.get(segment), state, at(days=when), catalog)  # type: ignore[arg-type]
    rule = rule_of(found["why"])
    words, value, holds, changes = expected
    assert (rule["rule"], rule["value"], rule["holds"]) == (words, value, holds)
    assert found["holds"] is holds
    assert rule.get("changes_at") == (None if changes is None else format_ts(changes))


def test_a_combined_rule_explains_each_part(catalog: Catalog) -> None:
    state = customer([consent(at()), purchase(at(days=1)), email_open(at(days=190))], catalog)
    (found,) = explain_customer(catalog, state, at(days=200), "winback_candidates")
    rule = rule_of(found["why"])
    assert rule["rule"] == "all of" and rule["holds"] is True
    lapsed, opened = rule["parts"]
    assert (lapsed["rule"], lapsed["value"], lapsed["holds"]) == (
        "in segment lapsed_customers",
        True,
        True,
    )
    assert opened["rule"] == "last open less than 30d ago" and opened["holds"] is True
    assert opened["changes_at"] == format_ts(at(days=220))


def test_without_consent_the_consent_node_says_why(catalog: Catalog) -> None:
    state = customer([purchase(at(days=1))], catalog)
    (found,) = explain_customer(catalog, state, at(days=2), "first_time_buyers")
    consent_node, rule = found["why"]["parts"]
    assert consent_node == {"rule": CONSENT_RULE, "holds": False, "value": False}
    assert rule["holds"] is True and found["holds"] is False and found["member"] is False


def test_without_a_segment_every_segment_the_customer_is_in(catalog: Catalog) -> None:
    state = customer([consent(at()), purchase(at(days=1))], catalog)
    explained = explain_customer(catalog, state, at(days=2))
    assert {e["segment"] for e in explained} == state.segments
    assert all(e["member"] and e["holds"] for e in explained)
    assert explain_customer(catalog, state, at(days=2), "no_such_segment") == []


SHOPPERS = {
    "a busy customer": [
        consent(at(), birth_year=1990, country="DE", city="Berlin", interests=["hiking"]),
        purchase(at(days=1)),
        view(at(days=2)),
        cart(at(days=3)),
        email_open(at(days=4)),
        email_click(at(days=4, hours=1)),
        support(at(days=5)),
    ],
    "a quiet one": [consent(at()), purchase(at(days=1))],
    "no consent": [view(at(days=1)), cart(at(days=1))],
}


@pytest.mark.parametrize("events", SHOPPERS.values(), ids=SHOPPERS)
@pytest.mark.parametrize("days", [5, 40, 400])
def test_every_default_segment_explains_the_engines_own_answer(
    catalog: Catalog, events: list[Any], days: int
) -> None:
    """For every segment of the default catalog, every condition form it uses: the explanation
    holds exactly when the engine says the segment holds."""
    state = customer(events, catalog)
    for segment in catalog.segments:
        found = explain_segment(segment, state, at(days=days), catalog)
        assert found["why"]["holds"] is found["holds"] is segment.holds(state, at(days=days))
        assert isinstance(found["why"]["rule"], str) and found["why"]["rule"]


def test_a_date_trait_is_explained_in_dates() -> None:
    document = {
        "traits": {"vip_since": "date"},
        "segments": {
            "vips": {
                "description": "VIP since 2024",
                "consent_required": False,
                "when": {"trait": {"name": "vip_since", "min": "2024-01-01"}},
            }
        },
    }
    dated = parse_catalog(document, "<test>")
    # As the decoder keeps a date trait: epoch milliseconds.
    state = customer([profile(at(), vip_since=date_value("2023-06-30", "vip_since"))], dated)
    (found,) = explain_customer(dated, state, at(days=1), "vips")
    assert found["why"] == {
        "rule": "trait vip_since at least 2024-01-01",
        "holds": False,
        "value": "2023-06-30T00:00:00.000Z",
    }


def test_a_segment_reference_is_explained_by_its_own_rule_and_its_time(catalog: Catalog) -> None:
    """Not yet lapsed (bought 171 days ago) and opened 2 days ago: winback_candidates changes
    when the purchase turns 180 days old, through the lapsed_customers it refers to."""
    state = customer([consent(at()), purchase(at(days=1)), email_open(at(days=170))], catalog)
    (found,) = explain_customer(catalog, state, at(days=172), "winback_candidates")
    assert found["why"]["changes_at"] == format_ts(at(days=181))
    lapsed, _ = rule_of(found["why"])["parts"]
    assert (lapsed["rule"], lapsed["holds"], lapsed["changes_at"]) == (
        "in segment lapsed_customers",
        False,
        format_ts(at(days=181)),
    )
    (lapsed_rule,) = lapsed["parts"]
    assert rule_of(lapsed_rule)["rule"] == "last purchase more than 180d ago"


@pytest.mark.parametrize(
    ("low", "high", "words"),
    [
        (3, None, "at least 3"),
        (None, 5.0, "at most 5"),
        (1, 1, "exactly 1"),
        (12345.67, 1500000, "between 12345.67 and 1500000"),
        ("2024-01-01", None, "at least 2024-01-01"),
    ],
)
def test_bounds_read_as_the_catalog_writes_them(low: Any, high: Any, words: str) -> None:
    assert limits(low, high) == words
