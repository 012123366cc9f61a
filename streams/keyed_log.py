"""Keyed logs: one-partition compacted topics that every worker reads whole (the segment
definitions, the webhook subscriptions). Read to the end, committed records only; written in
one Kafka transaction, so a reader never sees half of a change."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from config import Settings
from streams.connections import kafka_options
from streams.kafka_clients import read_to_end
from streams.layout import ensure_topics, unreachable
from streams.records import KeyedRecord

log = logging.getLogger(__name__)

RETRY_S = 2.0


def log_partition(settings: Settings, name: str) -> TopicPartition:
    """The keyed log's one partition."""
    return TopicPartition(settings.topic(name), 0)


def as_read(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[KeyedRecord]:
    return [(r.key.decode() if r.key is not None else None, r.value, r.offset) for r in records]


async def read_records(settings: Settings, name: str) -> list[KeyedRecord]:
    """Every committed record on the log, as of now, in order."""
    await ensure_topics(settings)
    read: list[KeyedRecord] = []

    async def batch(records: list[ConsumerRecord[bytes, bytes]]) -> None:
        read.extend(as_read(records))

    await read_to_end(settings, settings.topic(name), batch)
    return read


async def publish(
    settings: Settings, name: str, records: Sequence[tuple[str, bytes | None]]
) -> None:
    """Write ``records`` (key, value; None deletes) in one transaction."""
    if not records:
        return
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **kafka_options(settings),
        # One id per change: two writers at once (two workers seeding) must not fence each other.
        transactional_id=f"{settings.group_id}-{name}-{uuid.uuid4().hex}",
        enable_idempotence=True,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        async with producer.transaction():
            for key, value in records:
                await producer.send(settings.topic(name), value, key=key.encode(), partition=0)
    finally:
        await producer.stop()


async def follow_forever(what: str, follow: Callable[[], Awaitable[None]]) -> None:
    """Run ``follow`` (which reads a keyed log as it grows) for as long as the worker runs;
    when the broker goes away, read on once it is back."""
    while True:
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Following the %s failed; retrying: %r", what, exc)
            await asyncio.sleep(RETRY_S)
