"""A steady load for a while: the worker's resident memory and its lag stay flat. Short in the
test suite; SOAK_SECONDS=600 (for instance) runs it longer outside CI."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from segstream.bench.processes import WorkerMetrics
from segstream.offline.simulator import SyntheticShop
from segstream.stack.process import resident_kb
from streams import codec
from streams.connections import kafka_options
from streams.layout import ensure_topics
from tests.integration.deployment import Deployment, WorkerProcess

pytestmark = pytest.mark.integration

SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
RATE = 200  # events per second: a fraction of what one worker takes, also on a busy machine
SAMPLE_S = 2.0


@pytest.mark.timeout(SECONDS + 150)
async def test_steady_load_keeps_memory_and_lag_flat(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    settings = deployment.settings
    worker = worker_factory(deployment)
    metrics = WorkerMetrics(settings.web_port)
    shop = SyntheticShop(customers=1_000, seed=21, clock=lambda: int(time.time() * 1000))
    events = shop.events()
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=5)
    await producer.start()
    samples: list[tuple[float, int, float]] = []  # (elapsed, resident KB, records behind)
    try:
        await worker.until_ready()
        sent, began, next_sample = 0, time.monotonic(), 0.0
        while (elapsed := time.monotonic() - began) < SECONDS:
            while sent < RATE * elapsed:
                record = next(events)
                await producer.send(
                    settings.topic(record.topic),
                    key=record.key.encode(),
                    value=codec.dumps(record.value),
                )
                sent += 1
            if elapsed >= next_sample:
                behind = sent - await metrics.processed()
                samples.append((elapsed, resident_kb(worker.process.pid), behind))
                next_sample += SAMPLE_S
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
        await metrics.close()

    worker.assert_running()
    # After the first quarter (start-up, every customer's first events), memory and lag hold.
    settled = [s for s in samples if s[0] >= SECONDS / 4]
    assert len(settled) >= 5
    first_rss, last_rss = settled[0][1], settled[-1][1]
    assert last_rss <= first_rss * 1.2 + 10_240, samples
    assert max(s[2] for s in settled[len(settled) // 2 :]) <= max(RATE * 3, settled[0][2] * 2), (
        samples
    )
