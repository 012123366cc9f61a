"""The benchmark's workload: a seeded synthetic shop, loaded once into the input topics that
every contender then reads from the beginning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from config import Settings, names
from segstream.offline.simulator import SyntheticShop
from streams import codec
from streams.connections import kafka_options
from streams.layout import ensure_topics
from streams.records import Record

# Events are spaced this far apart in event time and end just before the run starts, so
# 60-minute cart deadlines mostly lie ahead, as in a live shop.
STEP_MS = 10


@dataclass(frozen=True)
class Workload:
    customers: int
    events: int
    seed: int = 42

    def records(self, end_ms: int | None = None) -> Iterator[Record]:
        end = end_ms if end_ms is not None else int(time.time() * 1000)
        shop = SyntheticShop(
            customers=self.customers,
            seed=self.seed,
            start_ms=end - self.events * STEP_MS,
            step_ms=STEP_MS,
        )
        return shop.events(self.events)

    def encoded(self) -> list[tuple[str, bytes, bytes]]:
        """The records as (topic, key, value) bytes, as the input topics hold them."""
        return [
            (record.topic, record.key.encode(), codec.dumps(record.value))
            for record in self.records()
        ]


async def produce(settings: Settings, records: Iterator[Record], linger_ms: int = 20) -> int:
    """Send every record to its (prefixed) topic as fast as the broker takes them."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **kafka_options(settings),
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        acks=1,
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for record in records:
            pending.append(
                await producer.send(
                    settings.topic(record.topic),
                    key=record.key.encode(),
                    value=codec.dumps(record.value),
                )
            )
            sent += 1
            if len(pending) >= 10_000:
                for future in pending:
                    await future
                pending.clear()
        for future in pending:
            await future
    finally:
        await producer.stop()
    return sent


def input_topics(settings: Settings) -> list[str]:
    return [settings.topic(name) for name in names.EVENT_TOPICS]
