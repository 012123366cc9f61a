"""The serving store catches up with the customers table by itself: after a flush while the
worker runs, and after a restart over a flushed store while events flow, Redis converges to the
changelog's latest states, and /health says degraded until it has."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from engine.state import CustomerState
from segstream.bench.processes import WorkerMetrics
from serving.preview import latest_states
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.conftest import Deployment, WorkerProcess
from tests.integration.kafka_io import produce_many
from tests.integration.oracle import DAY, Shop, now_ms

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
    deployment: Deployment, store: RedisStore, worker: WorkerProcess, customers: int
) -> list[dict[str, Any]]:
    """Poll /health and the store until the store equals the table (all customers stored) and
    /health says ok; return every /health answer seen on the way."""
    seen: list[dict[str, Any]] = []
    give_up = time.monotonic() + 120
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        while time.monotonic() < give_up:
            worker.assert_running()
            answer = await health(session, deployment.settings.web_port)
            if answer is not None:
                seen.append(answer)
            if answer and answer["status"] == "ok":
                expected = await table_view(deployment)
                if len(expected["versions"]) == customers and await store.snapshot() == expected:
                    return seen
            await asyncio.sleep(0.1)
    raise AssertionError(
        f"the store never converged to the table:\n{seen[-3:]}\n{worker.log_tail()}"
    )


async def test_the_store_catches_up_after_a_flush_and_after_a_restart_over_a_flushed_store(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory(size_sample_seconds="3600")
    store = RedisStore.connect(deployment.settings)
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop, first_half = shop_of(CUSTOMERS)
    try:
        worker = worker_factory(deployment)
        await produce_many(deployment.settings, shop.kafka_records()[:first_half])
        await converged(deployment, store, worker, CUSTOMERS)
        live = await store.snapshot()

        # Redis is flushed under the running worker: the in-step marks go with it.
        repaired_before = (await metrics.read()).get(REPAIRED, 0.0)
        await store.flush()
        await converged(deployment, store, worker, CUSTOMERS)
        after_flush = await store.snapshot()
        repaired_after_flush = (await metrics.read()).get(REPAIRED, 0.0) - repaired_before

        # Restart over a flushed store, with the rest of the events sent meanwhile.
        assert worker.stop() == 0
        await store.flush()
        restarted = worker_factory(deployment)
        await produce_many(deployment.settings, shop.kafka_records()[first_half:])
        seen = await converged(deployment, store, restarted, CUSTOMERS)
        repaired_after_restart = (await metrics.read()).get(REPAIRED, 0.0)
        final, expected = await store.snapshot(), await table_view(deployment)
    finally:
        await metrics.close()
        await store.close()

    assert after_flush == live
    assert repaired_after_flush == CUSTOMERS  # every customer, written back by the worker
    assert final == expected
    assert 0 < repaired_after_restart <= CUSTOMERS
    statuses = [answer["status"] for answer in seen]
    assert statuses[0] == "degraded" and statuses[-1] == "ok", statuses
    first = seen[0]
    assert first["reason"] and set(first["store_catch_up"]) == {"checked", "of", "repaired"}
    assert {"redis", "segments", "catalog_digest"} <= set(first)
    log = restarted.log.read_text(errors="replace")
    assert "Serving store in step:" in log
    assert "k0" not in log  # counts, never customer ids
