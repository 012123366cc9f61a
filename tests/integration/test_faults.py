"""Faults injected for real, judged by offline replay: after each, the folded segment-changes
equal replay's memberships and each customer's stored state counts every event once.

Under at-least-once a change may be published again after a crash, with its original version
(the store and subscribers drop it: ``deduplicated``); under exactly-once, read committed,
every change is published once."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config import names
from engine.catalog import load_catalog
from segstream.bench.processes import WorkerMetrics
from segstream.offline.replay import replay
from segstream.offline.simulator import SyntheticShop
from segstream.stack import LocalKafka, LocalRedis
from serving.changelog import latest_states
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.conftest import Deployment, WorkerProcess, free_port, run_segstream
from tests.integration.kafka_io import produce_many, read
from tests.integration.oracle import HOUR, Shop, deduplicated, folded, now_ms

pytestmark = pytest.mark.integration

GUARANTEES = ["at_least_once", "exactly_once"]
# What must match between a stored state and replay's: everything an event adds to.
COUNTED = ("purchase_count", "total_spend", "open_count", "click_count", "support_count", "days")


def synthetic_shop(customers: int, count: int, seed: int) -> Shop:
    """A synthetic shop's events, all old enough that every cart deadline is already due."""
    shop = Shop()
    simulated = SyntheticShop(customers=customers, seed=seed, start_ms=now_ms() - 5 * HOUR)
    shop.records += [(record.topic, record.value) for record in simulated.events(count)]
    return shop


async def processed(metrics: WorkerMetrics, at_least: int, worker: WorkerProcess) -> None:
    for _ in range(900):
        if await metrics.processed() >= at_least:
            return
        worker.assert_running()
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker did not process {at_least} events:\n{worker.log_tail()}")


async def joined(worker: WorkerProcess) -> None:
    for _ in range(900):
        if "Worker ready" in worker.log.read_text(errors="replace"):
            return
        worker.assert_running()
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker never got ready:\n{worker.log_tail()}")


async def settled(
    deployment: Deployment, shop: Shop, exactly_once: bool
) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """All changes, once their fold equals replay's memberships (or time is up)."""
    expected = {
        customer: set(state.segments)
        for customer, state in replay(shop.jsonl(), load_catalog(), now_ms()).states.items()
        if state.segments
    }
    changes: list[dict[str, Any]] = []
    give_up = time.monotonic() + 75
    while time.monotonic() < give_up:
        changes = await read(
            deployment.settings,
            names.SEGMENT_CHANGES,
            count=len(changes) + 1,
            timeout=3,
            committed=exactly_once,
        )
        if folded(deduplicated(changes)) == expected:
            break
    return changes, expected


def assert_same_members(live: dict[str, set[str]], expected: dict[str, set[str]]) -> None:
    """Equal memberships; on failure, per customer: (segments missing, segments extra)."""
    differing = {
        customer: (
            sorted(expected.get(customer, set()) - live.get(customer, set())),
            sorted(live.get(customer, set()) - expected.get(customer, set())),
        )
        for customer in set(live) | set(expected)
        if live.get(customer, set()) != expected.get(customer, set())
    }
    assert not differing, differing


async def assert_accounted(metrics: WorkerMetrics) -> None:
    """Per input topic: events in = events applied + events dead-lettered."""
    samples = await metrics.samples()
    for topic in names.INPUT_TOPICS:
        label = f'{{topic="{topic}"}}'
        read_in = samples.get(f"segstream_events_in_total{label}", 0.0)
        out = samples.get(f"segstream_events_applied_total{label}", 0.0) + samples.get(
            f"segstream_events_dead_lettered_total{label}", 0.0
        )
        assert read_in == out, topic


async def assert_counted_once(deployment: Deployment, shop: Shop) -> None:
    """Each customer's latest stored state holds exactly replay's counts (waiting while the
    worker still works through records that change no membership)."""
    expected = {
        customer: {name: state.to_dict().get(name) for name in COUNTED}
        for customer, state in replay(shop.jsonl(), load_catalog(), now_ms()).states.items()
    }
    stored: dict[str, Any] = {}
    for _ in range(60):
        stored = {
            customer: {name: codec.loads(raw).get(name) for name in COUNTED}
            for customer, raw in (await latest_states(deployment.settings)).items()
        }
        if stored == expected:
            return
        await asyncio.sleep(1)
    differing = {
        c: (stored.get(c), expected.get(c))
        for c in set(stored) | set(expected)
        if stored.get(c) != expected.get(c)
    }
    assert not differing, differing


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_kill_9_mid_burst_then_restart(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    # A killed worker never leaves the group: its partitions move after the session timeout.
    deployment = deployment_factory(processing_guarantee=guarantee, session_timeout_seconds="10")
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop = synthetic_shop(customers=150, count=3000, seed=11)
    first = worker_factory(deployment)
    try:
        await produce_many(deployment.settings, shop.kafka_records())
        await processed(metrics, 700, first)
        first.kill()
        second = worker_factory(deployment)
        changes, expected = await settled(deployment, shop, guarantee == "exactly_once")
        second.assert_running()
    finally:
        await metrics.close()
    # A graceful stop ends the process (under exactly-once it used to hang on its last commit).
    assert second.stop() == 0

    unique = deduplicated(changes)
    assert_same_members(folded(unique), expected)
    if guarantee == "exactly_once":
        assert changes == unique, "exactly-once published a change twice"
    await assert_counted_once(deployment, shop)


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_the_broker_stops_for_ten_seconds_mid_stream(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    kafka = LocalKafka(tmp_path / "kafka", free_port(), free_port())
    await kafka.start()
    try:
        deployment = deployment_factory(
            kafka_bootstrap=kafka.bootstrap, processing_guarantee=guarantee
        )
        metrics = WorkerMetrics(deployment.settings.web_port)
        shop = synthetic_shop(customers=100, count=2000, seed=14)
        records = shop.kafka_records()
        worker = worker_factory(deployment)
        try:
            await produce_many(deployment.settings, records[:1000])
            await processed(metrics, 1000, worker)
            kafka.stop()
            await asyncio.sleep(10)
            await kafka.start()
            await produce_many(deployment.settings, records[1000:])
            changes, expected = await settled(deployment, shop, guarantee == "exactly_once")
            await processed(metrics, 2000, worker)
            await assert_accounted(metrics)
        finally:
            await metrics.close()
        worker.assert_running()
        unique = deduplicated(changes)
        assert_same_members(folded(unique), expected)
        if guarantee == "exactly_once":
            assert changes == unique, "exactly-once published a change twice"
        await assert_counted_once(deployment, shop)
    finally:
        kafka.stop()


async def redis_memberships(store: RedisStore, customers: set[str]) -> dict[str, set[str]]:
    found = {customer: set(await store.segments_of(customer)) for customer in customers}
    return {customer: segments for customer, segments in found.items() if segments}


async def assert_store_caught_up(
    store: RedisStore, customers: set[str], expected: dict[str, set[str]]
) -> None:
    """The Redis store's memberships equal ``expected`` (waiting while it catches up)."""
    found: dict[str, set[str]] = {}
    for _ in range(60):
        found = await redis_memberships(store, customers)
        if found == expected:
            return
        await asyncio.sleep(0.5)
    assert_same_members(found, expected)


async def test_redis_stops_mid_stream_and_the_store_catches_up(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    redis = LocalRedis(tmp_path / "redis", free_port(), persist=True)
    await redis.start()
    deployment = deployment_factory(redis_url=redis.url)
    store = RedisStore.connect(deployment.settings)
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop = synthetic_shop(customers=120, count=3000, seed=15)
    records = shop.kafka_records()
    customers = {value["customer_id"] for _, value in shop.records}
    try:
        worker = worker_factory(deployment)
        await produce_many(deployment.settings, records[:1000])
        await processed(metrics, 1000, worker)
        redis.stop()
        await produce_many(deployment.settings, records[1000:])
        # Redis is down: the worker still processes every event.
        await processed(metrics, 3000, worker)
        await assert_accounted(metrics)
        await redis.start()
        _, expected = await settled(deployment, shop, exactly_once=False)
        await assert_store_caught_up(store, customers, expected)

        await store.flush()
        rebuilt = run_segstream(deployment.env, "rebuild", "--yes")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert await redis_memberships(store, customers) == expected
        worker.assert_running()
    finally:
        await metrics.close()
        await store.close()
        redis.stop()


async def customer_summaries(port: int, customers: set[str]) -> dict[str, Any]:
    """What the worker's own table says of each customer (GET /v1/customers/{id})."""
    found: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for customer in sorted(customers):
            url = f"http://127.0.0.1:{port}/v1/customers/{customer}"
            async with session.get(url) as response:
                body = await response.json()
                found[customer] = {k: v for k, v in body.items() if k != "served_segments"}
    return found


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_local_state_wiped_while_down_is_restored_from_the_changelog(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory(store="rocksdb://", processing_guarantee=guarantee)
    port = deployment.settings.web_port
    shop = synthetic_shop(customers=100, count=1500, seed=16)
    customers = {value["customer_id"] for _, value in shop.records}
    metrics = WorkerMetrics(port)
    try:
        first = worker_factory(deployment)
        await produce_many(deployment.settings, shop.kafka_records())
        await processed(metrics, 1500, first)
        await settled(deployment, shop, exactly_once=False)
        before = await customer_summaries(port, customers)
        assert first.stop() == 0
        data = deployment.settings.data_dir
        assert any(data.rglob("*")), "the RocksDB store wrote nothing locally"
        shutil.rmtree(data)

        second = worker_factory(deployment)
        await joined(second)
        after = await customer_summaries(port, customers)
    finally:
        await metrics.close()
    second.assert_running()
    assert after == before
    assert len(before) == len(customers)
