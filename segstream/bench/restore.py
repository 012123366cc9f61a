"""Recovery and memory: a worker starts on a changelog that already holds N customers' state.

The states are the real engine's, folded from the benchmark's workload, and repeated under
new customer ids up to N; each record goes to the partition Faust itself would write it to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from config import Settings, names
from config.errors import SegstreamError
from engine.catalog import Catalog
from engine.state import CustomerState
from engine.step import Step
from segstream.bench.processes import Contender, WorkerMetrics
from segstream.stack.process import poll
from streams import codec
from streams.connections import kafka_options
from streams.events import Erasure, IdentityLink, decode
from streams.layout import changelog_topic, ensure_topics

PROBE = "bench-probe"


@dataclass(frozen=True)
class Restore:
    store: str
    customers: int
    seconds_to_ready: float  # process start to the probe event processed
    restore_seconds: float  # first to last changelog record restored
    keys_per_second: float
    rss_kb: int
    # Faust's own recovery of the same changelog, into a table doing nothing per key.
    faust_keys_per_second: float | None = None
    # The same with segstream's recovery loop, no work per key: what the worker's work costs.
    loop_keys_per_second: float | None = None
    # RocksDB: the same worker started again on its local store (only the changelog's tail
    # is replayed): process start to a new probe processed, and the records it restored.
    restart_seconds_to_ready: float | None = None
    restart_restored: int | None = None


def fold(records: Iterable[tuple[str, bytes, bytes]], catalog: Catalog) -> list[CustomerState]:
    """Every customer's state after the workload (what the worker's table holds), from its
    records as (topic, key, value bytes)."""
    step = Step(catalog)
    states: dict[str, CustomerState] = {}
    for topic, key, raw in records:
        event = decode(topic, key, raw, traits=catalog.traits)
        assert not isinstance(event, Erasure | IdentityLink)
        state = states.get(event.customer_id)
        if state is None:
            state = states[event.customer_id] = CustomerState(event.customer_id)
        step.on_event(state, event, topic)
    return list(states.values())


async def write_changelog(settings: Settings, states: list[dict[str, Any]], count: int) -> None:
    """``count`` customers' states on the deployment's changelog, ids ``r0000000``..."""
    await ensure_topics(settings)
    topic = changelog_topic(settings, names.CUSTOMERS_TABLE)
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for index in range(count):
            customer_id = f"r{index:07d}"
            state = states[index % len(states)] | {"customer_id": customer_id}
            partition = partitioner(customer_id.encode(), partitions, partitions)
            pending.append(
                await producer.send(
                    topic,
                    key=codec.dumps(customer_id),
                    value=codec.dumps(state),
                    partition=partition,
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await _send_probe(producer, settings, 1)
    finally:
        await producer.stop()


async def send_probe(settings: Settings, n: int) -> None:
    """Probe ``n``: one more event for a restarted worker to process once it is ready."""
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    try:
        await _send_probe(producer, settings, n)
    finally:
        await producer.stop()


async def _send_probe(producer: AIOKafkaProducer, settings: Settings, n: int) -> None:
    await producer.send_and_wait(
        settings.topic(names.EMAIL_OPENS),
        key=PROBE.encode(),
        value=codec.dumps(
            {
                "event_id": f"{PROBE}-{n}",
                "customer_id": PROBE,
                "ts": int(time.time() * 1000),
                "campaign_id": "bench",
            }
        ),
    )


async def measure(
    worker: Contender, metrics: WorkerMetrics, store: str, customers: int, timeout: float
) -> Restore:
    """Poll the started worker until it has restored ``customers`` and processed the probe."""
    first = last = restored = 0.0

    async def ready() -> float | None:
        """When the worker was found ready (None: not yet); notes the restore's first and last
        progress on the way."""
        nonlocal first, last, restored
        totals = await metrics.read()
        now = time.perf_counter()
        count = totals.get("segstream_changelog_restored_total", 0.0)
        if count > restored:
            first = first or now
            last, restored = now, count
        processed = totals.get("segstream_events_applied_total", 0.0)
        return now if processed >= 1 and restored >= customers else None

    now = await poll(ready, timeout, interval=0.1, alive=worker.check_alive)
    if now is None:
        raise SegstreamError(
            f"the worker did not restore {customers} customers and process the probe in "
            f"{timeout:.0f}s (restored {restored:.0f}; see {worker.log})"
        )
    await asyncio.sleep(1.0)  # settle before reading memory
    seconds = last - first
    return Restore(
        store=store,
        customers=customers,
        seconds_to_ready=now - worker.started,
        restore_seconds=seconds,
        keys_per_second=restored / seconds if seconds else 0.0,
        rss_kb=worker.resident_kb(),
    )


async def measure_restart(
    worker: Contender, metrics: WorkerMetrics, timeout: float
) -> tuple[float, int]:
    """A worker started again on its own store: seconds from its start to the new probe
    processed, and how many changelog records it restored on the way."""

    async def ready() -> tuple[float, int] | None:
        totals = await metrics.read()
        if totals.get("segstream_events_applied_total", 0.0) < 1:
            return None
        return time.perf_counter(), int(totals.get("segstream_changelog_restored_total", 0.0))

    found = await poll(ready, timeout, interval=0.1, alive=worker.check_alive)
    if found is None:
        raise SegstreamError(
            f"the restarted worker did not process the probe in {timeout:.0f}s (see {worker.log})"
        )
    return found[0] - worker.started, found[1]
