"""The ``segment-definitions`` topic read and written (``engine.definitions`` says what its
records mean), a keyed log (``streams.keyed_log``).

A change of several segments goes in one Kafka transaction, and readers read committed: a
worker never sees half of a change (a segment that refers to one not yet published).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition

from config import Settings, names
from streams import keyed_log
from streams.keyed_log import as_read
from streams.records import KeyedRecord

__all__ = ["as_read", "definitions_topic", "publish", "read_records"]


def definitions_topic(settings: Settings) -> TopicPartition:
    """The topic's one partition."""
    return keyed_log.log_partition(settings, names.SEGMENT_DEFINITIONS)


async def read_records(settings: Settings) -> list[KeyedRecord]:
    """Every committed record on the topic, as of now, in order."""
    return await keyed_log.read_records(settings, names.SEGMENT_DEFINITIONS)


async def publish(settings: Settings, records: Sequence[tuple[str, bytes | None]]) -> None:
    """Write ``records`` (key, value; None deletes) in one transaction."""
    await keyed_log.publish(settings, names.SEGMENT_DEFINITIONS, records)
