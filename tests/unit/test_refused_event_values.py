"""Event values that decoding refuses, with the reason a dead letter carries: times more than an
hour ahead (live only), epoch microseconds, and event ids reserved for erasures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from config import names
from config.errors import InvalidEvent
from streams.events import decode

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
