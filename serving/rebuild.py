"""Rebuild the Redis store from Kafka: flush this deployment's keys, then apply every change
still on the segment-changes topic, in order."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings, names
from serving.redis_store import RedisStore
from streams import codec
from streams.layout import partition_ids

Progress = Callable[[int, int], None]  # (changes read so far, changes to read)


async def rebuild(settings: Settings, progress: Progress | None = None) -> tuple[int, int]:
    """Return (changes read, changes applied)."""
    topic = settings.topic(names.SEGMENT_CHANGES)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    store = RedisStore.connect(settings)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        await store.flush()
        read = applied = 0
        while await _behind(consumer, ends):
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for messages in batches.values():
                changes = [codec.loads(m.value) for m in messages if m.value is not None]
                applied += await store.apply(changes)
                read += len(messages)
                if progress:
                    progress(read, total)
        return read, applied
    finally:
        await consumer.stop()
        await store.close()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False
