"""Plain aiokafka clients for the CLI: send events in, follow segment changes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from config import Settings
from config.errors import StackError
from streams import codec
from streams.connections import kafka_options
from streams.layout import ensure_topics, partition_ids, unreachable
from streams.records import Record


async def send_records(
    settings: Settings, records: Iterable[Record], rate: float | None = None
) -> int:
    """Produce ``records`` to their (prefixed) topics, paced at ``rate`` per second if given.
    The topics are created first if no worker has created them yet."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=5)
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
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    positioned: asyncio.Event | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every JSON value on ``topic`` (all partitions, no consumer group), as it arrives.
    ``positioned`` is set once every partition's start position is fixed: records produced
    after that are seen."""
    full_name = settings.topic(topic)
    try:
        ids = await partition_ids(settings, full_name)
    except StackError:  # no worker has created the topics yet: following first is fine too
        await ensure_topics(settings)
        ids = await partition_ids(settings, full_name)
    partitions = [TopicPartition(full_name, p) for p in ids]
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        consumer.assign(partitions)
        for partition in partitions:
            await consumer.position(partition)
        if positioned is not None:
            positioned.set()
        async for message in consumer:
            if message.value is not None:
                yield codec.loads(message.value)
    finally:
        await consumer.stop()


def committed_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer in no group, committing nothing, that reads only committed records (under
    exactly-once, records of aborted transactions never happened)."""
    return AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )


@dataclass(frozen=True, slots=True)
class Reading:
    """How far a read_to_end has come. Offsets, not records, measure the way: a compacted or
    transactional topic has fewer records than its offsets span."""

    records: int
    passed: int
    span: int

    @property
    def fraction(self) -> float:
        return self.passed / self.span if self.span else 1.0


Progress = Callable[[Reading], None]


async def read_to_end(
    settings: Settings,
    topic: str,
    on_batch: Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[None]],
    progress: Progress | None = None,
    since_ms: int | None = None,
) -> int:
    """Read a (full-named) topic from its beginning (or from the first record written at or
    after ``since_ms``) to the end it had when reading started, in order per partition; return
    how many records were read."""
    partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    consumer = committed_reader(settings)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if since_ms is not None:
            found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            for tp in partitions:  # None: no record that recent in the partition
                offset = ends[tp] if found[tp] is None else min(found[tp].offset, ends[tp])
                starts[tp] = max(offset, starts[tp])
                consumer.seek(tp, starts[tp])
        span, read = sum(ends[tp] - starts[tp] for tp in partitions), 0
        positions = dict(starts)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                # Records written since reading started are left for the next read.
                messages = [m for m in messages if m.offset < ends[tp]]
                await on_batch(messages)
                read += len(messages)
            for tp in list(remaining):
                # Position, not the last offset seen: transaction markers take offsets too.
                positions[tp] = min(await consumer.position(tp), ends[tp])
                if positions[tp] >= ends[tp]:
                    remaining.discard(tp)
            if progress:
                passed = sum(positions[tp] - starts[tp] for tp in partitions)
                progress(Reading(read, passed, span))
        return read
    finally:
        await consumer.stop()
