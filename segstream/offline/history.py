"""What a backtest runs over: the event history read back from Kafka's input topics
(``segstream replay --from-kafka``), and the day-by-day account of what it changed.

The history is every retained record of the input topics written at or after ``since``, in
the order of the events' own times (``ts``; ties, and records without one: their Kafka
timestamps, then topic, partition and offset), as the events happened. It is held in memory
while it is sorted (about the size of the records' values), so a backtest of a large shop
should narrow ``--since``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from config import Settings
from config.errors import InvalidEvent
from engine.changes import ENTER, SegmentChange
from engine.state import DAY_MS
from segstream.offline.replay import REPLAYABLE
from streams.kafka_clients import Progress, read_to_end
from streams.timestamps import format_ts, parse_ts

Line = tuple[int, str, bytes | None, bytes]


async def kafka_history(
    settings: Settings, since_ms: int | None = None, progress: Progress | None = None
) -> list[Line]:
    """The input topics' records from ``since_ms`` on (None: all retained), as replay reads
    lines: (number, topic, key, value)."""
    records: list[tuple[int, int, str, int, int, bytes | None, bytes]] = []
    for name in REPLAYABLE:

        async def keep(batch: list[ConsumerRecord[bytes, bytes]], name: str = name) -> None:
            for m in batch:
                if m.value is not None:
                    at = _event_time(m.value, m.timestamp)
                    records.append((at, m.timestamp, name, m.partition, m.offset, m.key, m.value))

        await read_to_end(settings, settings.topic(name), keep, progress, since_ms)
    records.sort(key=lambda record: record[:5])
    return [(n, record[2], record[5], record[6]) for n, record in enumerate(records, 1)]


def _event_time(value: bytes, written: int) -> int:
    """The event's ``ts`` as the contract reads it (the decoder checks the rest when the record
    is replayed), else when it was written."""
    try:
        return parse_ts(orjson.loads(value).get("ts"))
    except (orjson.JSONDecodeError, AttributeError, InvalidEvent):
        return written


def by_day(changes: Iterable[SegmentChange]) -> dict[str, list[dict[str, Any]]]:
    """Per segment, per UTC day with changes: enters, exits and the size at the day's end."""
    days: dict[str, dict[int, list[int]]] = {}
    for change in changes:
        counts = days.setdefault(change.segment, {}).setdefault(change.at // DAY_MS, [0, 0])
        counts[0 if change.change == ENTER else 1] += 1
    report: dict[str, list[dict[str, Any]]] = {}
    for segment, per_day in sorted(days.items()):
        size, rows = 0, []
        for day, (enters, exits) in sorted(per_day.items()):
            size += enters - exits
            rows.append(
                {
                    "day": format_ts(day * DAY_MS)[:10],
                    "enters": enters,
                    "exits": exits,
                    "size": size,
                }
            )
        report[segment] = rows
    return report
