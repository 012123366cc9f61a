"""The worker's serving store (Redis), its catch-up with the customers table, and what /health
says of it."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from segstream.app import settings
from segstream.app.partitions import rebalancing, table_partitions
from segstream.app.tables import customers
from serving.catch_up import CatchUp
from serving.redis_store import RedisStore
from streams.events import is_anonymous

store = RedisStore.connect(settings)
catch_up = CatchUp()


def held_customers(partition: int) -> set[str]:
    """Every customer the table holds in the partition. The RocksDB store keeps one database per
    partition and restores only the changelog past its local offset, so the customers it had
    are read from that database; the memory store restores them all, so ``held`` knows them."""
    if settings.store != "rocksdb://":
        return set(catch_up.held.get(partition, ()))
    return {key for key in customers.rocksdb_keys(partition) if not is_anonymous(key)}


async def health() -> dict[str, Any]:
    """What /health shows of the store: ok, or degraded with the reason and the progress."""
    if rebalancing():
        return degraded("the worker is taking its partitions; the serving store is checked next")
    active = table_partitions()[0]
    try:
        unmarked = active - await store.partitions_in_step(active)
    except (RedisError, OSError):
        return degraded("Redis is unreachable: the serving store is behind the customers table")
    if unmarked or catch_up.pending:
        return degraded("the serving store is catching up with the customers table")
    return {"status": "ok"}


def degraded(reason: str) -> dict[str, Any]:
    progress = {"checked": catch_up.checked, "of": catch_up.total, "repaired": catch_up.repaired}
    return {"status": "degraded", "reason": reason, "store_catch_up": progress}
