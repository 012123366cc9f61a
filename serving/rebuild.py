"""Rebuild the Redis store from Kafka: every stored customer's memberships, version and spend,
read from the customers table's changelog (compacted, so it keeps each customer's latest state
for as long as the customer exists, unlike segment-changes, which ages out)."""

from __future__ import annotations

from config import Settings
from engine.state import CustomerState
from serving.preview import TableProgress, latest_states
from serving.redis_store import RedisStore
from streams import codec


async def rebuild(settings: Settings, progress: TableProgress | None = None) -> int:
    """Return how many stored customers the store now reflects."""
    states = [
        CustomerState.from_dict(codec.loads(raw))
        for raw in (await latest_states(settings, progress)).values()
    ]
    store = RedisStore.connect(settings)
    try:
        await store.reset_memberships()
        await store.sync(states)
    finally:
        await store.close()
    return len(states)
