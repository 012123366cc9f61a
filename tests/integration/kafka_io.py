"""Test helpers that talk to the real broker: produce raw records, read a topic from the start
(up to a count, or until the topic is quiet)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from config import Settings
from streams import codec
from streams.events import record_key
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
    """A contract record keyed as a shop keys it: by customer, or by anonymous id."""
    return topic, str(record_key(topic, value)).encode(), codec.dumps(value)


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
    exactly what was published. ``committed``: only records of committed transactions. Not for
    a check that nothing comes twice: a record later than ``linger`` goes unseen
    (``read_until_quiet`` waits for those).
    """
    consumer = _from_the_start(settings.kafka_bootstrap, [settings.topic(topic)], committed)
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


QUIET_S = 5.0


async def read_until_quiet(
    settings: Settings,
    topic: str,
    at_least: int = 0,
    quiet_s: float = QUIET_S,
    timeout: float = 90.0,
    committed: bool = False,
) -> list[dict[str, Any]]:
    """Every JSON value of a topic once it is quiet (see ``records_until_quiet``): for checks
    that nothing is published twice or beyond what is expected."""
    records = await records_until_quiet(
        settings.kafka_bootstrap, [settings.topic(topic)], at_least, quiet_s, timeout, committed
    )
    return [codec.loads(record.value) for record in records]


async def records_until_quiet(
    bootstrap: str,
    topics: list[str],
    at_least: int = 0,
    quiet_s: float = QUIET_S,
    timeout: float = 90.0,
    committed: bool = False,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topics`` (full names), read from the start until at least ``at_least``
    have come, the reader stands at every partition's end offset (the last stable one with
    ``committed``) and nothing new has come for ``quiet_s`` seconds. An AssertionError if the
    topics are not quiet within ``timeout`` seconds."""
    consumer = _from_the_start(bootstrap, topics, committed)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_new = loop.time()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            now = loop.time()
            new = [record for records in batches.values() for record in records]
            if new:
                found += new
                last_new = now
            elif (
                len(found) >= at_least and now - last_new >= quiet_s and await _at_the_end(consumer)
            ):
                return found
            if now >= deadline:
                raise AssertionError(
                    f"{', '.join(topics)} not quiet for {quiet_s:g} s within {timeout:g} s: "
                    f"{len(found)} records read, {at_least} or more wanted"
                )
    finally:
        await consumer.stop()


async def _at_the_end(consumer: AIOKafkaConsumer) -> bool:
    partitions = list(consumer.assignment())
    if not partitions:  # the topics' partitions are not known yet
        return False
    ends = await consumer.end_offsets(partitions)
    return all([await consumer.position(tp) >= ends[tp] for tp in partitions])


def _from_the_start(bootstrap: str, topics: list[str], committed: bool) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
