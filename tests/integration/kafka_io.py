"""Test helpers that talk to the real broker: produce raw records, read a topic from the start."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from config import Settings
from streams import codec
from streams.layout import ensure_topics


async def produce(settings: Settings, records: list[tuple[str, bytes | None, bytes]]) -> None:
    """Send (topic, key, value) records, in order, to the deployment's prefixed topics
    (created first if the worker has not created them yet)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(settings.topic(topic), key=key, value=value)
    finally:
        await producer.stop()


async def produce_many(settings: Settings, records: list[tuple[str, bytes | None, bytes]]) -> None:
    """Like ``produce``, batched: in order per partition, without a round trip per record."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(settings.topic(topic), key=key, value=value)
            for topic, key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def event(topic: str, value: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return topic, str(value["customer_id"]).encode(), codec.dumps(value)


async def read(
    settings: Settings,
    topic: str,
    count: int,
    timeout: float = 90.0,
    linger: float = 2.0,
    committed: bool = False,
) -> list[dict[str, Any]]:
    """The first ``count`` JSON values of a topic, plus any that follow within ``linger`` seconds.

    Returning more than ``count`` (or fewer, on timeout) lets the test's equality assert show
    exactly what was published. ``committed``: only records of committed transactions.
    """
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    values: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(values) < count and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [codec.loads(m.value) for msgs in batches.values() for m in msgs]
        if len(values) >= count:
            batches = await consumer.getmany(timeout_ms=int(linger * 1000))
            values += [codec.loads(m.value) for msgs in batches.values() for m in msgs]
    finally:
        await consumer.stop()
    return values
