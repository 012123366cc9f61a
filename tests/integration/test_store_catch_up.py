"""The serving store catches up with the customers table by itself: after a flush while the
worker runs, and after a restart over a flushed store while events flow, Redis converges to the
changelog's latest states, and /health says degraded until it has."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from config import names
from engine.state import CustomerState
from segstream.bench.processes import WorkerMetrics
from serving.changelog import latest_states
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce_many
from tests.integration.oracle import DAY, Shop, now_ms
from tests.integration.stored import counted_revenue

pytestmark = pytest.mark.integration

CUSTOMERS = 40
REPAIRED = "segstream_store_customers_repaired_total"


def shop_of(customers: int) -> tuple[Shop, int]:
    """Consenting customers with a profile, purchases and opens; returns the shop and how many
    records the first half (before the restart) has."""
    shop, t = Shop(), now_ms() - 20 * DAY
    for n in range(customers):
        customer = f"k{n:03}"
        shop.profile(customer, t, email_consent=True, gender="female" if n % 2 else "male")
        for k in range(n % 3):
            shop.purchase(customer, t + (k + 1) * DAY, total=40.0 + n)
        shop.open(customer, t + 5 * DAY)
    first = len(shop.records)
    for n in range(0, customers, 2):  # the second half moves every other customer on
        for k in range(3):
            shop.purchase(f"k{n:03}", t + (10 + k) * DAY, total=300.0)
    return shop, first


async def table_view(deployment: Deployment) -> dict[str, Any]:
    """What the store must hold, from the changelog's latest states (as ``snapshot`` shows it)."""
    states = [
        CustomerState.from_dict(codec.loads(raw))
        for raw in (await latest_states(deployment.settings)).values()
    ]
    members: dict[str, list[str]] = {}
    for state in states:
        for segment in state.segments:
            members.setdefault(segment, []).append(state.customer_id)
    return {
        "members": {segment: sorted(ids) for segment, ids in sorted(members.items())},
        "customers": {
            s.customer_id: sorted(s.segments) for s in sorted(states, key=_id) if s.segments
        },
        "versions": {s.customer_id: s.version for s in sorted(states, key=_id) if s.version},
    }


def _id(state: CustomerState) -> str:
    return state.customer_id


async def health(session: aiohttp.ClientSession, port: int) -> dict[str, Any] | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            return dict(await response.json())
    except (aiohttp.ClientError, OSError):
        return None


async def converged(
    deployment: Deployment,
    store: RedisStore,
    worker: WorkerProcess,
    metrics: WorkerMetrics,
    produced: int,
) -> list[dict[str, Any]]:
    """Wait until the worker has processed the ``produced`` records sent to it, then poll /health
    and the store until /health says ok and the store equals the table's latest states (all
    customers stored, unchanged since the last poll); return every /health answer seen."""
    seen: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:

        async def in_step() -> bool:
            nonlocal previous
            answer = await health(session, deployment.settings.web_port)
            if answer is not None:
                seen.append(answer)
            if not (answer and answer["status"] == "ok" and await metrics.processed() >= produced):
                return False
            expected = await table_view(deployment)
            done = (
                len(expected["versions"]) == CUSTOMERS
                and expected == previous
                and await store.snapshot() == expected
            )
            previous = expected
            return done

        await worker.until(
            in_step, "the store equal to the table", 120, 0.1, detail=lambda: seen[-3:]
        )
    return seen


@pytest.mark.parametrize("table_store", ["memory://", "rocksdb://"])
async def test_the_store_catches_up_after_a_flush_and_after_a_restart_over_a_flushed_store(
    table_store: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    # RocksDB keeps the table on disk: the restart restores only what came after, and the
    # catch-up must still check every customer of the partition.
    deployment = deployment_factory(size_sample_seconds="3600", store=table_store)
    store = RedisStore.connect(deployment.settings)
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop, first_half = shop_of(CUSTOMERS)
    records = shop.kafka_records()
    try:
        worker = worker_factory(deployment)
        await produce_many(deployment.settings, records[:first_half])
        await converged(deployment, store, worker, metrics, first_half)
        live = await store.snapshot()

        # Redis is flushed under the running worker: the in-step marks go with it.
        repaired_before = (await metrics.read()).get(REPAIRED, 0.0)
        await store.flush()
        await converged(deployment, store, worker, metrics, first_half)
        after_flush = await store.snapshot()
        repaired_after_flush = (await metrics.read()).get(REPAIRED, 0.0) - repaired_before

        # Restart over a flushed store, with the rest of the events sent meanwhile.
        assert worker.stop() == 0
        await store.flush()
        restarted = worker_factory(deployment)
        await produce_many(deployment.settings, records[first_half:])
        seen = await converged(deployment, store, restarted, metrics, len(records) - first_half)
        repaired_after_restart = (await metrics.read()).get(REPAIRED, 0.0)
        final, expected = await store.snapshot(), await table_view(deployment)
    finally:
        await metrics.close()
        await store.close()

    assert after_flush == live
    assert repaired_after_flush == CUSTOMERS  # every customer, written back by the worker
    assert final == expected
    assert 0 < repaired_after_restart <= CUSTOMERS
    # The first answers may come before the catch-up has begun; it must show once it has.
    degraded = [answer for answer in seen if answer["status"] == "degraded"]
    assert seen[-1]["status"] == "ok"
    for answer in degraded:
        assert answer["reason"] and set(answer["store_catch_up"]) == {"checked", "of", "repaired"}
    assert {"redis", "segments", "catalog_digest"} <= set(seen[-1])
    log = restarted.log.read_text(errors="replace")
    assert "Serving store in step:" in log
    assert "k0" not in log  # counts, never customer ids


async def test_a_rebuild_under_live_traffic_leaves_the_store_equal_to_the_table(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory(size_sample_seconds="3600")
    store = RedisStore.connect(deployment.settings)
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop, first_half = shop_of(CUSTOMERS)
    records = shop.kafka_records()
    try:
        worker = worker_factory(deployment)
        await produce_many(deployment.settings, records[:first_half])
        await converged(deployment, store, worker, metrics, first_half)

        async def trickle() -> None:
            """The second half, a few records at a time, while the rebuild runs."""
            for start in range(first_half, len(records), 4):
                await produce_many(deployment.settings, records[start : start + 4])
                await asyncio.sleep(0.2)

        segments = sorted((await store.snapshot())["members"])
        traffic = asyncio.create_task(trickle())
        result = await asyncio.to_thread(run_segstream, deployment.env, "rebuild", "--yes")
        await store.revenue(segments)  # counted from the members once, after the reset
        await traffic
        await converged(deployment, store, worker, metrics, len(records))
        final, expected = await store.snapshot(), await table_view(deployment)
        kept = await store.client.exists(store.key(names.REDIS_REVENUE_COUNTED))
        revenue, counted = await store.revenue(segments), await counted_revenue(store, segments)
    finally:
        await metrics.close()
        await store.close()
    assert result.returncode == 0, result.stderr
    assert final == expected
    # The revenue kept through the workers' catch-up and the live changes since (not counted
    # from the members again) is the members' spend.
    assert kept and revenue == counted and any(revenue.values())
