"""Fault 2: a second worker joins while events flow, then the first leaves while they still
flow. Partitions and their state move twice; nothing may be lost or counted twice, and a
deadline that falls due after the handover must fire once. A variant keeps Redis down through
both handovers: the membership store catches up once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import names
from engine.catalog import load_catalog
from segstream.bench.processes import WorkerMetrics
from segstream.offline.replay import replay
from segstream.stack import LocalRedis
from segstream.stack.process import free_port
from serving.redis_store import RedisStore
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import produce_many, read_until_quiet
from tests.integration.oracle import (
    GUARANTEES,
    HOUR,
    Shop,
    assert_same_members,
    deduplicated,
    folded,
    now_ms,
    read_settled,
    synthetic_shop,
)
from tests.integration.stored import assert_counted_once, assert_store_caught_up
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

CHUNK = 20  # records per send while events flow, about 200 a second
PAUSE_S = 0.1


async def flowing(deployment: Deployment, records: list[Any]) -> None:
    for start in range(0, len(records), CHUNK):
        await produce_many(deployment.settings, records[start : start + CHUNK])
        await asyncio.sleep(PAUSE_S)


async def processed_sum(metrics: list[WorkerMetrics]) -> int:
    return sum([await m.processed() for m in metrics])


async def processed_by_both(metrics: list[WorkerMetrics], at_least: int) -> None:
    async def counted() -> bool:
        return await processed_sum(metrics) >= at_least

    await poll_until(counted, f"{at_least} events processed by both workers", 90, 0.1)


SCENARIOS = [
    *[pytest.param(guarantee, False, id=guarantee) for guarantee in GUARANTEES],
    pytest.param("at_least_once", True, id="at_least_once-redis_down"),
]


@pytest.mark.parametrize(("guarantee", "redis_down"), SCENARIOS)
async def test_a_second_worker_joins_then_the_first_leaves_while_events_flow(
    guarantee: str,
    redis_down: bool,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    exactly_once = guarantee == "exactly_once"
    redis = LocalRedis(tmp_path / "redis", free_port(), persist=True)
    await redis.start()
    first_deployment = deployment_factory(processing_guarantee=guarantee, redis_url=redis.url)
    second_deployment = deployment_factory(
        topic_prefix=first_deployment.settings.topic_prefix,
        data_dir=str(first_deployment.home / "second"),
        processing_guarantee=guarantee,
        redis_url=redis.url,
    )
    shop = synthetic_shop(customers=150, count=4000, seed=12)
    records = shop.kafka_records()
    # A cart that falls due after the first worker has left: its trigger must fire once.
    cart = shop.cart_add("late-cart", now_ms() - HOUR + 45_000)
    shop.profile("late-cart", cart["ts"] - 1000, email_consent=True)
    first = worker_factory(first_deployment)
    metrics = [
        WorkerMetrics(first_deployment.settings.web_port),
        WorkerMetrics(second_deployment.settings.web_port),
    ]
    store = RedisStore.connect(first_deployment.settings)
    try:
        try:
            await produce_many(first_deployment.settings, records[:1000])
            await produce_many(first_deployment.settings, shop.kafka_records(len(records)))
            await first.until_processed(metrics[0], 1002)
            if redis_down:
                redis.stop()
            flow = asyncio.ensure_future(flowing(first_deployment, records[1000:]))
            second = worker_factory(second_deployment)
            await second.until_ready()
            await processed_by_both(metrics, await processed_sum(metrics) + 300)
            assert not flow.done(), "the events stopped flowing before the first worker left"
            assert first.stop() == 0
            await flow
            if redis_down:
                await redis.start()
        finally:
            for worker_metrics in metrics:
                await worker_metrics.close()

        await asyncio.sleep(max(cart["ts"] + HOUR - now_ms(), 0) / 1000 + 1)  # the cart falls due
        changes, expected = await read_settled(
            first_deployment, shop, committed=exactly_once, redelivered=True
        )
        replayed = replay(shop.jsonl(), load_catalog(), now_ms())
        triggers = await read_until_quiet(
            first_deployment.settings,
            names.TRIGGERS,
            at_least=len(replayed.triggers),
            timeout=60,
            committed=exactly_once,
        )

        second.assert_running()
        unique = deduplicated(changes)
        assert_same_members(folded(unique), expected)
        if exactly_once:
            assert changes == unique, "exactly-once published a change twice"
        # The deadline that fell due after the handover fired once (a repeat under
        # at-least-once is the same record); no trigger went out twice with different contents.
        late = deduplicated_triggers([t for t in triggers if t["customer_id"] == "late-cart"])
        assert len(late) == 1
        assert late[0]["version"] == next(
            t.version for t in replayed.triggers if t.customer_id == "late-cart"
        )
        deduplicated_triggers(triggers)
        await assert_counted_once(first_deployment, shop)
        customers = {value["customer_id"] for _, value in shop.records}
        await assert_store_caught_up(store, customers, expected)
        assert second.stop() == 0
    finally:
        await store.close()
        redis.stop()


def deduplicated_triggers(triggers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Triggers by (customer, version); a repeat must be the very trigger first published."""
    first_seen: dict[tuple[str, int], dict[str, Any]] = {}
    for trigger in triggers:
        key = (trigger["customer_id"], trigger["version"])
        assert first_seen.setdefault(key, trigger) == trigger, f"differing repeat: {trigger}"
    return list(first_seen.values())


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_a_deadline_fires_after_its_partition_moves_to_the_standby_worker(
    store: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    """Carts on the first worker's partitions, whose standby copies the second worker reads,
    fall due after the first worker has left: the second worker fires every one, once. (With
    the RocksDB store a promoted partition restores only what its standby copy had not read.)"""
    first_deployment = deployment_factory(store=store)
    second_deployment = deployment_factory(
        topic_prefix=first_deployment.settings.topic_prefix,
        data_dir=str(first_deployment.home / "second"),
        store=store,
    )
    shop = Shop()
    due = now_ms() + 40_000
    carts = {f"mover-{n}" for n in range(9)}  # spread over every partition
    for customer in sorted(carts):
        shop.profile(customer, due - HOUR - 1000, email_consent=True)
        shop.cart_add(customer, due - HOUR)
    first = worker_factory(first_deployment)
    await first.until_ready()
    second = worker_factory(second_deployment)
    await second.until_ready()
    metrics = [
        WorkerMetrics(first_deployment.settings.web_port),
        WorkerMetrics(second_deployment.settings.web_port),
    ]
    try:
        await produce_many(first_deployment.settings, shop.kafka_records())
        await processed_by_both(metrics, len(shop.records))
        assert first.stop() == 0
    finally:
        for worker_metrics in metrics:
            await worker_metrics.close()

    await asyncio.sleep(max(due - now_ms(), 0) / 1000 + 1)
    triggers = await read_until_quiet(
        first_deployment.settings, names.TRIGGERS, at_least=len(carts), timeout=60
    )
    fired = deduplicated_triggers(triggers)
    assert sorted(t["customer_id"] for t in fired) == sorted(carts)
    second.assert_running()
