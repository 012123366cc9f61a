"""Rebuild the Redis store from Kafka: every stored customer's memberships, version, spend and
what send eligibility needs,
read from the customers table's changelog (compacted, so it keeps each customer's latest state
for as long as the customer exists, unlike segment-changes, which ages out).

Running workers may write newer states meanwhile: the sync writes only over older versions, and
the in-step marks are dropped before and after it, so every worker checks its customers against
its live table once the rebuild is done (the newer versions win)."""

from __future__ import annotations

from config import Settings
from engine.eligibility import Mailable
from engine.step import Step
from serving.changelog import TableProgress, latest_states
from serving.redis_store import RedisStore


async def rebuild(settings: Settings, progress: TableProgress | None = None) -> int:
    """Return how many stored customers the store now reflects."""
    states = [Step.restore(raw) for raw in (await latest_states(settings, progress)).values()]
    store = RedisStore.connect(settings)
    try:
        await store.reset_memberships()
        await store.sync(states)  # stale customers are the workers' to write (marks dropped)
        await store.set_mailable({s.customer_id: Mailable.of(s).to_list() for s in states})
        await store.forget_in_step()
    finally:
        await store.close()
    return len(states)
