"""Page views in the customer's state: kept per SKU and category for 30 days and bounded, the
browse-abandon trigger names what was viewed since the last cart activity or purchase, and a
views window moves by time alone (an injected clock)."""

from __future__ import annotations

from engine.catalog import load_catalog
from engine.changes import ENTER, EXIT
from engine.evaluate import advance, next_deadline
from engine.state import LATE_FOR_VIEWS, MAX_VIEWED, TRIGGER_PRODUCTS, VIEW_DAYS, CustomerState
from streams.timestamps import format_ts
from tests.unit.engine_helpers import (
    CUSTOMER,
    DAY,
    MINUTE,
    at,
    consent,
    feed,
    item,
    purchase,
    timeline,
    view,
)

CATALOG = load_catalog()
BROWSE = "browse_abandoners"
OUTDOOR = "browsing_outdoor"
QUIET = 60 * MINUTE


def test_the_browse_trigger_names_the_products_viewed_since_the_last_purchase() -> None:
    state = CustomerState(CUSTOMER)
    feed(
        state,
        [
            consent(),
            view(at(minutes=1), "sku-lamp"),  # before the purchase: not named
            purchase(at(minutes=2), item("sku-runner", "shoes")),
            view(at(minutes=10), "sku-tent"),
            view(at(minutes=20), "sku-boot", "shoes"),
            view(at(minutes=30), "sku-tent"),
            view(at(minutes=31), None, "outdoor"),  # a category page: no product
        ],
        CATALOG,
    )
    outcome = advance(state, at(hours=3), CATALOG)
    due = at(minutes=30) + QUIET  # the last product view, plus the quiet period
    assert [row for row in timeline(outcome.changes) if row[0] == BROWSE] == [
        (BROWSE, ENTER, due, None)
    ]
    (trigger,) = outcome.triggers
    assert trigger.trigger == "browse_abandoned"
    assert trigger.to_dict()["viewed"] == [
        {
            "sku": "sku-tent",
            "category": "outdoor",
            "views": 2,
            "last_viewed_at": format_ts(at(minutes=30)),
        },
        {
            "sku": "sku-boot",
            "category": "shoes",
            "views": 1,
            "last_viewed_at": format_ts(at(minutes=20)),
        },
    ]
    assert "cart" not in trigger.to_dict()


def test_a_views_window_falls_due_by_time_alone() -> None:
    state = CustomerState(CUSTOMER)
    views = [view(at(days=1)), view(at(days=5)), view(at(days=13))]
    feed(state, [consent(), *views], CATALOG)
    advance(state, at(days=13), CATALOG)
    assert OUTDOOR in state.segments
    # The first view's day leaves the 14-day window at the start of day 15.
    segment = CATALOG.get(OUTDOOR)
    assert segment is not None and segment.deadline(state, at(days=13)) == at(days=15)
    assert next_deadline(state, at(days=13), CATALOG) == at(days=13) + QUIET  # browse abandon
    outcome = advance(state, at(days=15), CATALOG)
    assert (OUTDOOR, EXIT, at(days=15), None) in timeline(outcome.changes)


def test_views_are_bounded_by_items_and_days() -> None:
    state = CustomerState(CUSTOMER)
    feed(
        state, [view(at(minutes=n), f"sku-{n}", "outdoor") for n in range(MAX_VIEWED + 10)], CATALOG
    )
    assert len(state.viewed) == MAX_VIEWED
    assert "sku:sku-0" not in state.viewed  # the least recently viewed went first
    assert f"sku:sku-{MAX_VIEWED + 9}" in state.viewed
    assert len(state.viewed_products(None)) == TRIGGER_PRODUCTS
    state.prune(at(days=VIEW_DAYS + 1))
    assert state.viewed == {}


def test_a_view_older_than_the_days_kept_is_late_but_moves_the_last_view() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [view(at(days=40))], CATALOG)
    late = view(at(days=40) - (VIEW_DAYS + 1) * DAY, "sku-old")
    assert state.fold(late) == LATE_FOR_VIEWS
    assert "sku:sku-old" not in state.viewed
    assert state.last_product_view_at == at(days=40)


def test_views_on_one_day_are_counted_together() -> None:
    state = CustomerState(CUSTOMER)
    feed(state, [view(at(hours=h)) for h in range(5)], CATALOG)
    assert state.views_within("sku:sku-tent", at(hours=5), 1) == 5
    assert state.views_within("category:outdoor", at(hours=5), 1) == 5
    assert state.viewed["sku:sku-tent"][2:] == [at() // DAY, 5]
