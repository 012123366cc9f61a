"""A time-driven burst: N customers whose carts all fall due in the same instant, on the running
worker. Measured: how long after the deadline the first and the last trigger are published."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from config import Settings, names
from config.errors import SegstreamError
from segstream.bench.latency import wait_assigned
from segstream.bench.processes import Contender, WorkerMetrics
from segstream.bench.workload import produce
from segstream.stack.process import poll
from streams import codec
from streams.connections import kafka_options
from streams.records import Record

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Burst:
    customers: int
    first_s: float  # first trigger published, seconds after the deadline
    last_s: float  # last trigger published
    per_second: float  # customers through the tick path per second


def records(count: int, due: int, quiet_minutes: int) -> list[Record]:
    cart_at = due - quiet_minutes * MINUTE_MS
    out = []
    for index in range(count):
        customer = f"burst{index:07d}"
        head = {"customer_id": customer, "ts": cart_at - 1000}
        out.append(
            Record(
                names.PROFILE_UPDATES,
                customer,
                head | {"event_id": f"{customer}-p", "traits": {"email_consent": True}},
            )
        )
        out.append(
            Record(
                names.CART_EVENTS,
                customer,
                head
                | {
                    "event_id": f"{customer}-c",
                    "ts": cart_at,
                    "action": "add",
                    "sku": "sku-tent",
                    "category": "outdoor",
                    "quantity": 1,
                    "unit_price": 320.0,
                },
            )
        )
    return out


async def measure(
    settings: Settings,
    worker: Contender,
    metrics: WorkerMetrics,
    count: int,
    rate: float,
    timeout: float,
) -> Burst:
    """``rate``: the worker's measured events/s, to leave time for loading before the deadline."""
    lead_s = 5.0 + 2 * count / max(rate, 1.0) * 1.5
    due = int((time.time() + lead_s) * 1000)
    follower = AIOKafkaConsumer(
        settings.topic(names.TRIGGERS),
        **kafka_options(settings),
        auto_offset_reset="latest",
    )
    await follower.start()
    try:
        await wait_assigned(follower)
        before = await metrics.processed()
        await produce(settings, iter(records(count, due, settings.cart_quiet_minutes)))

        async def all_processed() -> bool:
            return await metrics.processed() >= before + 2 * count

        await poll(all_processed, None, interval=0.1, alive=worker.check_alive)
        if time.time() * 1000 >= due:
            raise SegstreamError("the burst's events were not all processed before the deadline")
        published: list[int] = []
        deadline = time.monotonic() + lead_s + timeout
        while len(published) < count and time.monotonic() < deadline:
            batches = await follower.getmany(timeout_ms=500)
            for batch in batches.values():
                published += [
                    r.timestamp
                    for r in batch
                    if codec.loads(r.value)["customer_id"].startswith("burst")
                ]
        if len(published) < count:
            raise SegstreamError(f"only {len(published)} of {count} burst triggers arrived")
    finally:
        await follower.stop()
    first, last = (min(published) - due) / 1000, (max(published) - due) / 1000
    return Burst(count, first, last, count / max(last, 1e-3))
