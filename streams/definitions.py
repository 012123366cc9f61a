"""The ``segment-definitions`` topic read and written (``engine.definitions`` says what its
records mean).

A change of several segments goes in one Kafka transaction, and readers read committed: a
worker never sees half of a change (a segment that refers to one not yet published).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from config import Settings, names
from streams.connections import kafka_options
from streams.kafka_clients import read_to_end
from streams.layout import ensure_topics, unreachable
from streams.records import KeyedRecord


def definitions_topic(settings: Settings) -> TopicPartition:
    """The topic's one partition."""
    return TopicPartition(settings.topic(names.SEGMENT_DEFINITIONS), 0)


def as_read(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[KeyedRecord]:
    return [(r.key.decode() if r.key is not None else None, r.value, r.offset) for r in records]


async def read_records(settings: Settings) -> list[KeyedRecord]:
    """Every committed record on the topic, as of now, in order."""
    await ensure_topics(settings)
    read: list[KeyedRecord] = []

    async def batch(records: list[ConsumerRecord[bytes, bytes]]) -> None:
        read.extend(as_read(records))

    await read_to_end(settings, definitions_topic(settings).topic, batch)
    return read


async def publish(settings: Settings, records: Sequence[tuple[str, bytes | None]]) -> None:
    """Write ``records`` (key, value; None deletes) in one transaction."""
    if not records:
        return
    await ensure_topics(settings)
    topic = definitions_topic(settings)
    producer = AIOKafkaProducer(
        **kafka_options(settings),
        # One id per change: two writers at once (two workers seeding) must not fence each other.
        transactional_id=f"{settings.group_id}-definitions-{uuid.uuid4().hex}",
        enable_idempotence=True,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        async with producer.transaction():
            for key, value in records:
                await producer.send(topic.topic, value, key=key.encode(), partition=0)
    finally:
        await producer.stop()
