"""Dead-letter envelopes (the raw record, where it came from, and why it was refused) and
late-event side records (an applied event, part of which came too late to count)."""

from __future__ import annotations

import base64
from typing import Any

from streams.personal import raw_without_personal
from streams.timestamps import format_ts


def _source(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """Where a record came from."""
    return {"source_topic": topic, "partition": partition, "offset": offset}


def envelope(
    *,
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    at: int,
) -> dict[str, Any]:
    """The value written to ``dead-letters``; raw bytes travel as base64, without personal data
    (``streams.personal``: an erasure cannot reach a record once it is on Kafka)."""
    return {
        **_source(topic, partition, offset),
        "reason": reason,
        "at": format_ts(at),
        "key_base64": None if key is None else base64.b64encode(key).decode(),
        "raw_base64": None if raw is None else base64.b64encode(raw_without_personal(raw)).decode(),
    }


def late_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    customer_id: str,
    event_id: str,
    ts: int,
    reason: str,
    at: int,
) -> dict[str, Any]:
    """The value written to ``late-events``: which event, and what of it could not count."""
    return {
        **_source(topic, partition, offset),
        "customer_id": customer_id,
        "event_id": event_id,
        "ts": format_ts(ts),
        "reason": reason,
        "at": format_ts(at),
    }
