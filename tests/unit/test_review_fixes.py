"""Inputs a review found dangerous: far-future times, reserved ids, huge carts, odd birthdays,
catalog values that are not plain scalars."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from config import names
from config.errors import CatalogError, InvalidEvent
from engine.catalog import parse_catalog
from engine.state import MAX_CART_LINES, CustomerState
from streams.events import CartEvent, decode
from streams.segment_spec import to_contract

NOW = 1_772_359_200_000  # 2026-03-01T10:00:00Z
HOUR = 3_600_000


def open_event(**fields: Any) -> bytes:
    value = {"event_id": "e1", "customer_id": "c1", "ts": NOW, "campaign_id": "x"} | fields
    return orjson.dumps(value)


def reason(raw: bytes, now: int | None = NOW) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode(names.EMAIL_OPENS, b"c1", raw, now=now)
    return caught.value.reason


def test_an_event_more_than_an_hour_ahead_is_refused_live() -> None:
    assert decode(names.EMAIL_OPENS, b"c1", open_event(ts=NOW + HOUR), now=NOW).ts == NOW + HOUR
    assert reason(open_event(ts=NOW + HOUR + 1)) == "ts: more than an hour in the future"
    # Replay has no "now": history may be anywhere in the past or future.
    assert decode(names.EMAIL_OPENS, b"c1", open_event(ts=NOW + 100 * HOUR)).ts == NOW + 100 * HOUR


def test_epoch_microseconds_are_refused_even_without_now() -> None:
    assert reason(open_event(ts=NOW * 1000), now=None) == (
        f"ts: {NOW * 1000} is after the year 2199 (epoch microseconds?)"
    )


def test_erasure_ids_are_reserved() -> None:
    assert reason(open_event(event_id="erasure:c1:1")) == (
        "event_id: 'erasure:' is reserved for erasures"
    )


def test_a_cart_stops_growing_at_its_line_limit() -> None:
    state = CustomerState("c1")
    for n in range(MAX_CART_LINES + 20):
        state.fold(CartEvent(f"e{n}", "c1", NOW + n, "add", f"sku-{n}", "cat", 1, 1.0))
    assert len(state.cart) == MAX_CART_LINES


@pytest.mark.parametrize("birthday", ["¹⁹⁹⁰-01-01", "1990", "abcd-01-01"])
def test_odd_birthdays_are_ignored_not_fatal(birthday: str) -> None:
    message = {
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-03-01T10:00:00Z",
        "traits": {"birthday": birthday},
    }
    _, value = to_contract(message)
    assert "birth_year" not in value["traits"]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            {"trait": {"name": "x", "in": [[1]]}},
            "segments.yaml: segment 's', field 'when.trait.in': "
            "expected a list of strings or numbers.",
        ),
    ],
)
def test_catalog_values_that_are_not_scalars(when: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog({"segments": {"s": {"description": "S", "when": when}}}, "segments.yaml")
    assert str(caught.value) == message


def test_a_huge_number_in_a_catalog_is_accepted() -> None:
    doc = {
        "segments": {"s": {"description": "S", "when": {"count": {"of": "spend", "min": 10**20}}}}
    }
    assert parse_catalog(doc, "segments.yaml").names() == ["s"]
