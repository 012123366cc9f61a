"""segstream.cli.display: one line per segment change and per trigger, with the date; an
explanation as a tree."""

from __future__ import annotations

from typing import Any

import click
import pytest

from segstream.cli.display import format_change, format_explanation, format_trigger

AT = "2026-11-30T11:20:10.123Z"


def change(**fields: Any) -> dict[str, Any]:
    value = {
        "customer_id": "c000009",
        "segment": "frequent_buyers",
        "change": "enter",
        "at": AT,
        "cause": "event",
        "cause_event_id": "e-42",
        "version": 12,
    }
    return value | fields


def without_cause(**fields: Any) -> dict[str, Any]:
    value = change(**fields)
    del value["cause"]
    return value


ENTERED = "2026-11-30 11:20:10  c000009    → enter  frequent_buyers              v12  "
EXITED = "2026-11-30 11:20:10  c000009    ← exit   frequent_buyers              v12  "


@pytest.mark.parametrize(
    ("value", "line"),
    [
        pytest.param(change(), f"{ENTERED} (e-42)", id="event"),
        pytest.param(change(cause="time", cause_event_id=None), f"{ENTERED} (time)", id="time"),
        pytest.param(
            change(change="exit", cause="catalog", cause_event_id=None),
            f"{EXITED} (catalog)",
            id="catalog",
        ),
        pytest.param(
            change(change="exit", cause="erasure", cause_event_id="x-1"),
            f"{EXITED} (erasure)",
            id="erasure",
        ),
        pytest.param(without_cause(), f"{ENTERED} (e-42)", id="older-record-with-event"),
        pytest.param(
            without_cause(cause_event_id=None), f"{ENTERED} (time)", id="older-record-by-time"
        ),
    ],
)
def test_format_change(value: dict[str, Any], line: str) -> None:
    assert click.unstyle(format_change(value)) == line


def trigger(cart: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "customer_id": "c000009",
        "trigger": "cart_abandoned",
        "at": AT,
        "cart": cart,
        "version": 7,
    }


def line(sku: str, quantity: int, unit_price: float) -> dict[str, Any]:
    return {"sku": sku, "category": "shoes", "quantity": quantity, "unit_price": unit_price}


@pytest.mark.parametrize(
    ("cart", "held"),
    [
        pytest.param([line("s1", 1, 89.0)], "cart: 1 item worth 89.00", id="one-item"),
        pytest.param(
            [line("s1", 2, 10.5), line("s2", 1, 3.0)], "cart: 3 items worth 24.00", id="two-lines"
        ),
        pytest.param([], "cart: 0 items worth 0.00", id="empty"),
    ],
)
def test_format_trigger(cart: list[dict[str, Any]], held: str) -> None:
    assert click.unstyle(format_trigger(trigger(cart))) == (
        f"2026-11-30 11:20:10  c000009    ! cart_abandoned  {held}  v7"
    )


def test_an_explanation_reads_as_a_tree_with_values_as_the_dashboard_shows_them() -> None:
    explained = {
        "segment": "interest_hiking",
        "description": "Named hiking among their interests",
        "member": True,
        "why": {
            "rule": "all of",
            "holds": True,
            "value": None,
            "parts": [
                {"rule": "email consent given", "holds": True, "value": True},
                {
                    "rule": "last open less than 30d ago",
                    "holds": True,
                    "value": "2026-12-06T23:01:23.000Z",
                    "changes_at": "2027-01-05T23:01:23.000Z",
                },
                {"rule": "trait interests contains 'hiking'", "holds": True, "value": ["a", "b"]},
            ],
        },
    }
    assert [click.unstyle(line) for line in format_explanation(explained)] == [
        "interest_hiking: member (Named hiking among their interests)",
        "  yes  all of",
        "    yes  email consent given  = yes",
        "    yes  last open less than 30d ago  = 2026-12-06 23:01:23"
        "  (changes 2027-01-05 23:01:23)",
        "    yes  trait interests contains 'hiking'  = a, b",
    ]
