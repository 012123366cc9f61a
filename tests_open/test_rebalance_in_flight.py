"""Open defect, kept as a runnable reproduction outside the default suite
(`.venv/bin/pytest tests_open/`): a worker joins while events flow, then the first leaves.
Alone it passes; in loaded full-suite runs some customers' events ended lost or counted twice
after the handover (see the README, Reliability, Open). It returns to tests/integration once
fixed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from config import names
from engine.catalog import load_catalog
from segstream.bench.processes import WorkerMetrics
from segstream.replay import replay
from tests.integration.conftest import Deployment, WorkerProcess
from tests.integration.kafka_io import produce_many, read
from tests.integration.oracle import HOUR, deduplicated, folded, now_ms
from tests.integration.test_faults import (
    assert_counted_once,
    assert_same_members,
    joined,
    processed,
    settled,
    synthetic_shop,
)

pytestmark = pytest.mark.integration


async def test_a_second_worker_joins_then_the_first_leaves(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    first_deployment = deployment_factory()
    second_deployment = deployment_factory(
        topic_prefix=first_deployment.settings.topic_prefix,
        data_dir=str(first_deployment.home / "second"),
    )
    shop = synthetic_shop(customers=150, count=4000, seed=12)
    records = shop.kafka_records()
    # A cart that falls due after the first worker has left: its trigger must fire once.
    cart = shop.cart_add("late-cart", now_ms() - HOUR + 45_000)
    shop.profile("late-cart", cart["ts"] - 1000, email_consent=True)
    # Each rebalance happens with no record in flight (see the README: a rebalance while
    # records are in flight showed one intermittent miscount in CI, not yet explained).
    first = worker_factory(first_deployment)
    first_metrics = WorkerMetrics(first_deployment.settings.web_port)
    second_metrics = WorkerMetrics(second_deployment.settings.web_port)
    try:
        await produce_many(first_deployment.settings, records[:1500])
        await produce_many(first_deployment.settings, shop.kafka_records(len(records)))
        await processed(first_metrics, 1502, first)
        second = worker_factory(second_deployment)
        await joined(second)
        await asyncio.sleep(3)  # the first worker has rebalanced too
        await produce_many(first_deployment.settings, records[1500:3000])
        for _ in range(600):
            done = await first_metrics.processed() + await second_metrics.processed()
            if done >= 3002:
                break
            await asyncio.sleep(0.1)
        assert first.stop() == 0
        await produce_many(first_deployment.settings, records[3000:])
    finally:
        await first_metrics.close()
        await second_metrics.close()

    await asyncio.sleep(max(cart["ts"] + HOUR - now_ms(), 0) / 1000 + 1)  # the cart falls due
    changes, expected = await settled(first_deployment, shop, exactly_once=False)
    replayed = replay(shop.jsonl(), load_catalog(), now_ms())
    triggers = await read(
        first_deployment.settings, names.TRIGGERS, count=len(replayed.triggers), timeout=60
    )

    second.assert_running()
    assert_same_members(folded(deduplicated(changes)), expected)
    # The deadline that fell due after the handover fired once; no trigger went out twice
    # with different contents (versions may differ from replay's where topics interleave).
    late = [t for t in triggers if t["customer_id"] == "late-cart"]
    assert len(late) == 1
    assert late[0]["version"] == next(
        t.version for t in replayed.triggers if t.customer_id == "late-cart"
    )
    first_seen: dict[tuple[str, int], dict[str, Any]] = {}
    for trigger in triggers:
        assert (
            first_seen.setdefault((trigger["customer_id"], trigger["version"]), trigger) == trigger
        )
    await assert_counted_once(first_deployment, shop)
