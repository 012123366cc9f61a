"""A segment's trigger fires once per episode (an abandoned cart, an abandoned browse) and once
per moment, however often the customer leaves and re-enters the segment meanwhile: after a
consent withdrawn and given back, or when records of another topic arrive after the tick that
fired it (seen in the chaos run: a late withdrawal and re-consent re-entered cart_abandoners at
the same moment)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.catalog import Catalog, load_catalog, parse_catalog
from engine.changes import Outcome
from engine.evaluate import advance, apply_event
from engine.state import CustomerState
from tests.unit.engine_helpers import at, cart, consent, item, profile, purchase, topic_of, view

CATALOG = load_catalog()
CUSTOMER = "c-episodes"

# A step: an event to apply, or a time to advance to.
Steps = list[Any]

CASES: dict[str, tuple[Steps, list[tuple[str, int]]]] = {
    "one abandoned cart, one reminder": (
        [consent(at()), cart(at(minutes=5)), at(hours=3)],
        [("cart_abandoned", at(hours=1, minutes=5))],
    ),
    "consent withdrawn and given back after the reminder": (
        [
            consent(at()),
            cart(at(minutes=5)),
            at(hours=3),
            profile(at(hours=4), email_consent=False),
            consent(at(hours=5)),
            at(hours=9),
        ],
        [("cart_abandoned", at(hours=1, minutes=5))],
    ),
    "a late withdrawal and re-consent, read after the tick": (
        [
            consent(at()),
            cart(at(minutes=5)),
            at(hours=1, minutes=5),
            profile(at(minutes=30), email_consent=False),
            consent(at(minutes=40)),
        ],
        [("cart_abandoned", at(hours=1, minutes=5))],
    ),
    "the same records in time order": (
        [
            consent(at()),
            cart(at(minutes=5)),
            profile(at(minutes=30), email_consent=False),
            consent(at(minutes=40)),
            at(hours=1, minutes=5),
        ],
        [("cart_abandoned", at(hours=1, minutes=5))],
    ),
    "withdrawn before the cart fell due: it fires once consent is back": (
        [
            consent(at()),
            cart(at(minutes=5)),
            profile(at(minutes=30), email_consent=False),
            at(hours=3),
            consent(at(hours=4)),
        ],
        [("cart_abandoned", at(hours=4))],
    ),
    "a new cart activity is a new episode": (
        [
            consent(at()),
            cart(at(minutes=5)),
            at(hours=3),
            cart(at(hours=4), sku="sku-cap", category="hats", unit_price=20.0),
            at(hours=9),
        ],
        [("cart_abandoned", at(hours=1, minutes=5)), ("cart_abandoned", at(hours=5))],
    ),
    "a purchase, then another cart left": (
        [
            consent(at()),
            cart(at(minutes=5)),
            at(hours=3),
            purchase(at(hours=4), item("sku-boot", "shoes")),
            cart(at(hours=6)),
            at(hours=9),
        ],
        [("cart_abandoned", at(hours=1, minutes=5)), ("cart_abandoned", at(hours=7))],
    ),
    "a late purchase, then a late cart, at the moment it fired (one reminder at that moment)": (
        [
            profile(at(), email_consent=False),
            cart(at(minutes=5)),
            consent(at(hours=3)),
            purchase(at(minutes=10), item("sku-boot", "shoes")),
            cart(at(minutes=20), sku="sku-cap", category="hats", unit_price=20.0),
        ],
        [("cart_abandoned", at(hours=3))],
    ),
    "a browse abandoned, consent withdrawn and given back": (
        [
            consent(at()),
            view(at(minutes=5)),
            at(days=2),
            profile(at(days=2, hours=1), email_consent=False),
            consent(at(days=2, hours=2)),
            at(days=3),
        ],
        [("browse_abandoned", at(hours=1, minutes=5))],
    ),
}


def run(steps: Steps, catalog: Catalog = CATALOG) -> Outcome:
    state = CustomerState(CUSTOMER)
    outcome = Outcome()
    for step in steps:
        if isinstance(step, int):
            outcome.extend(advance(state, step, catalog))
        else:
            outcome.extend(apply_event(state, step, topic_of(step), catalog))
    return outcome


@pytest.mark.parametrize("case", list(CASES))
def test_a_trigger_fires_once_per_episode(case: str) -> None:
    steps, expected = CASES[case]
    assert [(t.trigger, t.at) for t in run(steps).triggers] == expected


def test_the_episode_a_trigger_fired_for_is_stored() -> None:
    state = CustomerState(CUSTOMER)
    for step in [consent(at()), cart(at(minutes=5))]:
        apply_event(state, step, topic_of(step), CATALOG)
    advance(state, at(hours=3), CATALOG)
    assert state.fired == {"cart_abandoners": [at(minutes=5), at(hours=1, minutes=5)]}
    assert CustomerState.from_dict(state.to_dict()).fired == state.fired


def test_two_segments_with_the_same_trigger_each_fire_it() -> None:
    """A reminder after an hour and another after a day: each segment has its own episodes."""
    reminders = {
        name: {
            "description": "A reminder",
            "trigger": "cart_abandoned",
            "when": {"abandoned": {"did": "cart", "then_not": "purchase", "quiet": quiet}},
        }
        for name, quiet in (("cart_hour", "1h"), ("cart_day", "24h"))
    }
    catalog = parse_catalog({"segments": reminders}, "segments.yaml")
    fired = run([consent(at()), cart(at(minutes=5)), at(days=2)], catalog).triggers
    assert [t.at for t in fired] == [at(hours=1, minutes=5), at(days=1, minutes=5)]
