"""The Redis membership store against the real Redis: it follows segment-changes, replays
change nothing, and `segstream rebuild` restores it from Kafka after a flush."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from config import names
from serving.redis_store import RedisStore
from tests.integration.conftest import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, read
from tests.integration.test_segments_live import DAY, Shop, folded, now_ms

pytestmark = pytest.mark.integration


def expected_snapshot(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What the store must hold after these changes (from the topic, not from Redis)."""
    customers = folded(changes)
    members: dict[str, list[str]] = {}
    for customer, segments in customers.items():
        for segment in segments:
            members.setdefault(segment, []).append(customer)
    versions: dict[str, int] = {}
    for change in changes:
        versions[change["customer_id"]] = change["version"]
    return {
        "members": {segment: sorted(ids) for segment, ids in sorted(members.items())},
        "customers": {c: sorted(s) for c, s in sorted(customers.items())},
        "versions": dict(sorted(versions.items())),
    }


async def wait_for(store: RedisStore, expected: dict[str, Any]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for _ in range(100):
        snapshot = await store.snapshot()
        if snapshot == expected:
            break
        await asyncio.sleep(0.2)
    return snapshot


async def test_store_follows_changes_and_survives_replay_and_rebuild(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    # The worker samples sizes once an hour here, so that the test's own samples are not raced.
    deployment = deployment_factory(size_sample_seconds="3600")
    worker = worker_factory(deployment)
    shop, t = Shop(), now_ms() - 10 * DAY
    for n in range(12):
        customer = f"r{n}"
        shop.profile(customer, t, email_consent=True, gender="female" if n % 2 else "male")
        for k in range(n % 4):
            shop.purchase(customer, t + (k + 1) * DAY)
        shop.open(customer, t + 5 * DAY)
    await produce(deployment.settings, shop.kafka_records())
    settled = await read(deployment.settings, names.SEGMENT_CHANGES, count=80, timeout=60)
    changes = await read(deployment.settings, names.SEGMENT_CHANGES, count=len(settled))
    store = RedisStore.connect(deployment.settings)
    try:
        live = await wait_for(store, expected_snapshot(changes))
        sizes = await store.sizes(["gender_female", "gender_male"])
        await store.client.delete(store.key(names.REDIS_HISTORY_LOCK))
        sampled = await store.sample_sizes(["gender_female"], 1_000_000, 10)
        sampled_again = await store.sample_sizes(["gender_female"], 1_000_500, 10)
        history = await store.history("gender_female")
        stream = await store.recent_changes(count=len(changes) + 10)

        replayed = await store.apply(changes) + await store.apply(changes)
        after_replay = await store.snapshot()

        await store.flush()
        assert await store.snapshot() == {"members": {}, "customers": {}, "versions": {}}
        result = run_segstream(deployment.env, "rebuild", "--yes")
        rebuilt = await store.snapshot()
    finally:
        await store.close()

    worker.assert_running()
    assert live == expected_snapshot(changes)
    assert sizes == {"gender_female": 6, "gender_male": 6}
    assert (sampled, sampled_again) == (True, False)  # one sample per interval, across workers
    assert history[-1] == (1_000_000, 6)
    assert sorted(stream, key=lambda c: (c["customer_id"], c["version"])) == sorted(
        changes, key=lambda c: (c["customer_id"], c["version"])
    )
    assert replayed == 0
    assert after_replay == live
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rebuilt the store from 12 stored customers"
    assert rebuilt == live
