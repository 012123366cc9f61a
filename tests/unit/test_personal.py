"""Personal data out of what segstream writes: dead letters, import reports and the events it
produces for a shop (streams.personal, streams.traits.kept_only)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from streams.deadletter import envelope
from streams.personal import REMOVED, raw_without_personal, without_personal
from streams.traits import kept_only

CASES: list[tuple[Any, Any]] = [
    (
        {"traits": {"email": "ana@example.com", "country": "DE"}},
        {"traits": {"email": REMOVED, "country": "DE"}},
    ),
    # Segment's spellings, at any depth.
    (
        {"context": {"traits": {"firstName": "Ana", "lastName": "Lima", "Phone": "+49 1"}}},
        {"context": {"traits": {"firstName": REMOVED, "lastName": REMOVED, "Phone": REMOVED}}},
    ),
    ({"first_name": "Ana", "user-name": "ana_l"}, {"first_name": REMOVED, "user-name": REMOVED}),
    (
        {"address": {"street": "Main 1", "city": "Berlin"}},
        {"address": {"street": REMOVED, "city": "Berlin"}},
    ),
    # An address inside other text, in a list.
    (["write to ana.lima+shop@mail.example.co.uk today", 3], [f"write to {REMOVED} today", 3]),
    # What is not personal stays.
    (
        {"customer_id": "c1", "total": 12.5, "items": [{"sku": "s"}]},
        {"customer_id": "c1", "total": 12.5, "items": [{"sku": "s"}]},
    ),
    ("no address here: a@b", "no address here: a@b"),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_personal_fields_and_addresses_are_removed(value: Any, expected: Any) -> None:
    assert without_personal(value) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"traits": {"email": "ana@example.com"}}', b'{"traits":{"email":"[removed]"}}'),
        (b"{not json, ana@example.com}", b"{not json, [removed]}"),
        (b"\xff\xfe ana@example.com \xff", b"\xff\xfe [removed] \xff"),
        (b"", b""),
        # Nothing personal: the bytes as they came (a producer compares them with its own).
        (b'{"customer_id": "c1",  "total": -5}', b'{"customer_id": "c1",  "total": -5}'),
    ],
)
def test_raw_bytes_lose_personal_data_json_or_not(raw: bytes, expected: bytes) -> None:
    assert raw_without_personal(raw) == expected


def test_a_dead_letter_keeps_where_it_came_from_and_why_but_no_address() -> None:
    raw = b'{"event_id": "e1", "customer_id": "c1", "traits": {"email": "ana@example.com"}}'
    letter = envelope(
        raw=raw, key=b"c1", topic="profile-updates", partition=2, offset=7, reason="bad", at=0
    )
    stored = base64.b64decode(letter["raw_base64"])
    assert b"ana@example.com" not in orjson.dumps(letter) and b"ana@example.com" not in stored
    assert orjson.loads(stored) == {
        "event_id": "e1",
        "customer_id": "c1",
        "traits": {"email": REMOVED},
    }
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
        "profile-updates",
        2,
        7,
    )
    assert letter["reason"] == "bad"


@pytest.mark.parametrize(
    ("traits", "kept"),
    [
        ({"email": "a@b.co", "first_name": "Ana", "country": "DE"}, {"country": "DE"}),
        (
            {"last_name": "Lima", "income_band": "high", "email_consent": True},
            {"income_band": "high", "email_consent": True},
        ),
        ({"country": "DE"}, {"country": "DE"}),
    ],
)
def test_produced_events_carry_only_the_traits_the_state_keeps(
    traits: dict[str, Any], kept: dict[str, Any]
) -> None:
    value = {"event_id": "e1", "customer_id": "c1", "ts": 0, "traits": traits}
    assert kept_only(value, {"income_band": "string"}) == value | {"traits": kept}


def test_a_value_without_traits_is_left_as_it_is() -> None:
    value = {"event_id": "e1", "customer_id": "c1", "ts": 0, "campaign_id": "x"}
    assert kept_only(value, {}) is value
