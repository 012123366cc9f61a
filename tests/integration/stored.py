"""What a worker stored, checked against what it must hold: the Redis membership store after a
run of changes, and the customers table's latest states after replay of the same events."""

from __future__ import annotations

import math
from typing import Any

from config import names
from engine.catalog import load_catalog
from segstream.offline.replay import replay
from serving.changelog import latest_states
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.deployment import Deployment
from tests.integration.oracle import Shop, differing, folded, now_ms
from tests.integration.waiting import poll_until

# What must match between a stored state and replay's: everything an event adds to.
COUNTED = ("purchase_count", "total_spend", "open_count", "click_count", "support_count", "days")


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


async def until_stored(store: RedisStore, expected: dict[str, Any]) -> None:
    """Until the store's snapshot equals ``expected`` (as ``expected_snapshot`` builds it)."""
    snapshot: dict[str, Any] = {}

    async def equal() -> bool:
        nonlocal snapshot
        snapshot = await store.snapshot()
        return snapshot == expected

    await poll_until(
        equal, "the store holding the changes", 20, detail=lambda: (snapshot, expected)
    )


async def redis_memberships(store: RedisStore, customers: set[str]) -> dict[str, set[str]]:
    found = {customer: set(await store.segments_of(customer)) for customer in customers}
    return {customer: segments for customer, segments in found.items() if segments}


async def assert_store_caught_up(
    store: RedisStore, customers: set[str], expected: dict[str, set[str]]
) -> None:
    """The Redis store's memberships equal ``expected`` (waiting while it catches up)."""
    found: dict[str, set[str]] = {}

    async def caught_up() -> bool:
        nonlocal found
        found = await redis_memberships(store, customers)
        return found == expected

    await poll_until(
        caught_up,
        "the store's memberships equal to replay's",
        30,
        0.5,
        detail=lambda: f"customer: (segments missing, segments extra) {differing(found, expected)}",
    )


async def assert_counted_once(deployment: Deployment, shop: Shop) -> None:
    """Each customer's latest stored state holds exactly replay's counts (waiting while the
    worker still works through records that change no membership)."""
    expected = {
        customer: {name: state.to_dict().get(name) for name in COUNTED}
        for customer, state in replay(shop.jsonl(), load_catalog(), now_ms()).states.items()
    }
    stored: dict[str, Any] = {}

    async def counted_once() -> bool:
        nonlocal stored
        stored = {
            customer: {name: codec.loads(raw).get(name) for name in COUNTED}
            for customer, raw in (await latest_states(deployment.settings)).items()
        }
        return stored == expected

    def difference() -> str:
        found = {
            c: (stored.get(c), expected.get(c))
            for c in set(stored) | set(expected)
            if stored.get(c) != expected.get(c)
        }
        return f"customer: (stored, replay's) {found}"

    await poll_until(
        counted_once, "every event counted once in the table", 60, 1, detail=difference
    )


async def counted_revenue(store: RedisStore, segments: list[str]) -> dict[str, float]:
    """Each segment's revenue counted from its members and their spend, read raw (what the
    store keeps without reading members)."""
    found = {}
    for segment in segments:
        members = await store.client.smembers(store.key(names.REDIS_MEMBERS, segment))
        spent = [await store.client.hget(store.key(names.REDIS_SPEND), c) for c in members]
        cents = [math.floor(float(value) * 100 + 0.5) for value in spent if value is not None]
        found[segment] = sum(cents) / 100
    return found
