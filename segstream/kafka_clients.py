"""Plain aiokafka clients for the CLI: send events in, follow segment changes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from config import Settings
from segstream.simulator import Record
from streams import codec
from streams.layout import unreachable


async def send_records(
    settings: Settings, records: Iterable[Record], rate: float | None = None
) -> int:
    """Produce ``records`` to their (prefixed) topics, paced at ``rate`` per second if given."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    try:
        await producer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    sent = 0
    try:
        for record in records:
            await producer.send(
                settings.topic(record.topic),
                key=record.key.encode(),
                value=codec.dumps(record.value),
            )
            sent += 1
            if rate:
                await asyncio.sleep(1 / rate)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def follow(
    settings: Settings, topic: str, *, from_beginning: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Every JSON value on ``topic`` (all partitions, no consumer group), as it arrives."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        async for message in consumer:
            if message.value is not None:
                yield codec.loads(message.value)
    finally:
        await consumer.stop()
