"""Rebuild the Redis store from Kafka: flush this deployment's keys, then apply every change
still on the segment-changes topic, in order."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from config import Settings, names
from segstream.kafka_clients import Progress, read_to_end
from serving.redis_store import RedisStore
from streams import codec


async def rebuild(settings: Settings, progress: Progress | None = None) -> tuple[int, int]:
    """Return (changes read, changes applied)."""
    store = RedisStore.connect(settings)
    applied = 0

    async def apply(messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        nonlocal applied
        applied += await store.apply([codec.loads(m.value) for m in messages if m.value])

    try:
        await store.flush()
        read = await read_to_end(settings, settings.topic(names.SEGMENT_CHANGES), apply, progress)
    finally:
        await store.close()
    return read, applied
