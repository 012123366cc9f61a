"""Latency under a paced load: events produced at a fixed rate to the running worker; each
segment change they cause is timed from the event's Kafka timestamp to the change's."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from config import Settings, names
from segstream.bench.processes import Contender, WorkerMetrics
from segstream.offline.simulator import SyntheticShop
from streams import codec
from streams.connections import kafka_options

TICK_S = 0.01


@dataclass(frozen=True)
class Latency:
    load: float  # share of the measured throughput
    rate: float  # events per second offered
    events: int
    changes: int  # segment changes caused by the paced events (the samples)
    p50_ms: float
    p99_ms: float
    p999_ms: float
    lag_start: float  # mean records behind over the first third of the run
    lag_end: float  # ... and over the last third


def percentile(samples: list[float], share: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def paced(
    settings: Settings,
    worker: Contender,
    metrics: WorkerMetrics,
    load: float,
    rate: float,
    seconds: float,
    customers: int,
    seed: int,
) -> Latency:
    """Offer ``rate`` events/s for ``seconds``, then wait for the changes they cause."""
    changes_topic = settings.topic(names.SEGMENT_CHANGES)
    follower = AIOKafkaConsumer(
        changes_topic, **kafka_options(settings), auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=1)
    await follower.start()
    await producer.start()
    await wait_assigned(follower)
    sent_at: dict[str, int] = {}
    seen: list[tuple[str, int]] = []  # (causing event, change timestamp)
    shop = SyntheticShop(customers=customers, seed=seed, clock=lambda: int(time.time() * 1000))
    events = shop.events()
    start_processed = await metrics.processed()
    lag: list[float] = []

    async def collect() -> None:
        while True:
            batches = await follower.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    cause = codec.loads(record.value).get("cause_event_id")
                    if cause:
                        seen.append((cause, record.timestamp))

    collector = asyncio.create_task(collect())
    try:
        produced, began = 0, time.perf_counter()
        pending: list[asyncio.Future[object]] = []
        while (elapsed := time.perf_counter() - began) < seconds:
            while produced < rate * elapsed:
                record = next(events)
                future = await producer.send(
                    settings.topic(record.topic),
                    key=record.key.encode(),
                    value=codec.dumps(record.value),
                )
                pending.append(_remember(future, sent_at, record.value["event_id"]))
                produced += 1
            if len(lag) < elapsed / 0.5:
                lag.append(produced - (await metrics.processed() - start_processed))
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*pending)
        await _settle(metrics, start_processed + produced, worker)
        await asyncio.sleep(1.0)  # the last changes reach the follower
    finally:
        collector.cancel()
        await producer.stop()
        await follower.stop()
    latencies = [float(at - sent_at[cause]) for cause, at in seen if cause in sent_at]
    third = max(len(lag) // 3, 1)
    return Latency(
        load=load,
        rate=rate,
        events=produced,
        changes=len(latencies),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        p999_ms=percentile(latencies, 0.999),
        lag_start=sum(lag[:third]) / third,
        lag_end=sum(lag[-third:]) / third,
    )


def _remember(
    future: asyncio.Future[object], sent_at: dict[str, int], event_id: str
) -> asyncio.Future[object]:
    def done(fut: asyncio.Future[object]) -> None:
        if not fut.exception():
            sent_at[event_id] = fut.result().timestamp  # type: ignore[attr-defined]

    future.add_done_callback(done)
    return future


async def wait_assigned(consumer: AIOKafkaConsumer) -> None:
    for _ in range(100):
        if consumer.assignment():
            # Resolve "latest" now, so no change made from here on is skipped.
            for tp in consumer.assignment():
                await consumer.position(tp)
            return
        await asyncio.sleep(0.1)


async def _settle(metrics: WorkerMetrics, target: float, worker: Contender) -> None:
    for _ in range(600):
        if await metrics.processed() >= target:
            return
        worker.check_alive()
        await asyncio.sleep(0.1)
