"""Faults injected for real, judged by offline replay: after each, the folded segment-changes
equal replay's memberships and each customer's stored state counts every event once.

Under at-least-once a change may be published again after a crash, with its original version
(the store and subscribers drop it: ``deduplicated``); under exactly-once, read committed,
every change is published once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config import names
from engine.state import HORIZON_DAYS
from segstream.bench.processes import WorkerMetrics
from segstream.stack import LocalKafka, LocalRedis
from segstream.stack.process import free_port
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce_many, records_until_quiet
from tests.integration.oracle import (
    DAY,
    GUARANTEES,
    Records,
    Shop,
    assert_same_members,
    deduplicated,
    folded,
    read_settled,
    synthetic_shop,
)
from tests.integration.stored import (
    assert_counted_once,
    assert_store_caught_up,
    redis_memberships,
)

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_kill_9_mid_burst_then_restart(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    # A killed worker never leaves the group: its partitions move after the session timeout.
    deployment = deployment_factory(processing_guarantee=guarantee, session_timeout_seconds="10")
    exactly_once = guarantee == "exactly_once"
    metrics = WorkerMetrics(deployment.settings.web_port)
    shop = synthetic_shop(customers=150, count=3000, seed=11)
    late = with_late_events(shop, customers=10)
    records = with_bad_records(shop.kafka_records(), every=300)
    bad = sum(value == BAD for _, _, value in records)
    first = worker_factory(deployment)
    try:
        await produce_many(deployment.settings, records)
        await first.until_processed(metrics, 700)
        first.kill()
        second = worker_factory(deployment)
        changes, expected = await read_settled(
            deployment, shop, committed=exactly_once, redelivered=True
        )
        side = await side_records(deployment, at_least=late + bad)
        second.assert_running()
    finally:
        await metrics.close()
    # A graceful stop ends the process (under exactly-once it used to hang on its last commit).
    assert second.stop() == 0

    unique = deduplicated(changes)
    assert_same_members(folded(unique), expected)
    if exactly_once:
        assert changes == unique, "exactly-once published a change twice"
    await assert_counted_once(deployment, shop)
    # Every other output topic: each record once under exactly-once; under at-least-once
    # repeats can come, and what each record carries tells them apart.
    for topic, values in side.items():
        keys = [tuple(value[field] for field in SIDE_KEYS[topic]) for value in values]
        if exactly_once:
            assert len(keys) == len(set(keys)), f"exactly-once published to {topic} twice"
        if topic == names.DEAD_LETTERS:
            assert len(set(keys)) == bad
    # The synthetic shop has late cart events of its own.
    late_customers = {value["customer_id"] for value in side[names.LATE_EVENTS]}
    assert late_customers >= {f"late-{n}" for n in range(late)}


BAD = b"{not json"
# What tells one record of each side topic from another (a repeat carries the same).
SIDE_KEYS: dict[str, tuple[str, ...]] = {
    names.DEAD_LETTERS: ("source_topic", "partition", "offset"),
    names.LATE_EVENTS: ("source_topic", "partition", "offset"),
    names.TRIGGERS: ("customer_id", "trigger", "version"),
    names.CAMPAIGN_FACTS: ("customer_id", "seq"),
}


def with_late_events(shop: Shop, customers: int) -> int:
    """Spread through the shop's events: per new customer two purchases, the second from
    before the window horizon of the first (applied, but partly too late: a late-events record
    each). One topic, one key: they are read in that order."""
    step = len(shop.records) // customers
    for n in range(customers):
        at = shop.records[n * step][1]["ts"]
        shop.purchase(f"late-{n}", at)
        shop.purchase(f"late-{n}", at - (HORIZON_DAYS + 1) * DAY)
        shop.records[n * step : n * step] = shop.records[-2:]
        del shop.records[-2:]
    return customers


def with_bad_records(records: Records, every: int) -> Records:
    """A record the decoder refuses after every ``every`` good ones."""
    mixed: Records = []
    for n, record in enumerate(records, 1):
        mixed.append(record)
        if n % every == 0:
            mixed.append((names.PURCHASES, f"bad-{n}".encode(), BAD))
    return mixed


async def side_records(deployment: Deployment, at_least: int) -> dict[str, list[dict[str, Any]]]:
    """The records of each side output topic, in the order read (read committed under
    exactly-once)."""
    settings = deployment.settings
    full = {settings.topic(topic): topic for topic in SIDE_KEYS}
    found = await records_until_quiet(
        settings.kafka_bootstrap,
        list(full),
        at_least,
        committed=settings.processing_guarantee == "exactly_once",
    )
    side: dict[str, list[dict[str, Any]]] = {topic: [] for topic in SIDE_KEYS}
    for record in found:
        side[full[record.topic]].append(codec.loads(record.value))
    return side


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
            await worker.until_processed(metrics, 1000)
            kafka.stop()
            await asyncio.sleep(10)
            await kafka.start()
            await produce_many(deployment.settings, records[1000:])
            changes, expected = await read_settled(
                deployment, shop, committed=guarantee == "exactly_once", redelivered=True
            )
            await worker.until_processed(metrics, 2000)
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
        await worker.until_processed(metrics, 1000)
        redis.stop()
        await produce_many(deployment.settings, records[1000:])
        # Redis is down: the worker still processes every event.
        await worker.until_processed(metrics, 3000)
        await assert_accounted(metrics)
        await redis.start()
        _, expected = await read_settled(deployment, shop, redelivered=True)
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
        await first.until_processed(metrics, 1500)
        await read_settled(deployment, shop, redelivered=True)
        before = await customer_summaries(port, customers)
        assert first.stop() == 0
        data = deployment.settings.data_dir
        assert any(data.rglob("*")), "the RocksDB store wrote nothing locally"
        shutil.rmtree(data)

        second = worker_factory(deployment)
        await second.until_ready()
        after = await customer_summaries(port, customers)
    finally:
        await metrics.close()
    second.assert_running()
    assert after == before
    assert len(before) == len(customers)
