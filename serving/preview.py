"""Preview a draft catalog: how many stored customers each of its segments would hold right
now, evaluated on the states in the customers table's changelog (no worker needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from config import Settings, names
from engine.catalog import Catalog
from engine.evaluate import reconcile
from engine.state import CustomerState
from segstream.kafka_clients import Reading, read_to_end
from streams import codec
from streams.layout import changelog_topic

# How far reading the customers table has come, and how many customers it holds so far.
TableProgress = Callable[[Reading, int], None]


@dataclass
class Preview:
    customers: int = 0
    members: dict[str, list[str]] = field(default_factory=dict)


async def latest_states(
    settings: Settings, progress: TableProgress | None = None
) -> dict[str, bytes]:
    """The latest stored value per customer (tombstones drop the customer)."""
    latest: dict[str, bytes] = {}

    async def keep(messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        for message in messages:
            if message.key is None:
                continue
            customer_id = codec.loads(message.key)
            if message.value is None:
                latest.pop(customer_id, None)
            else:
                latest[customer_id] = message.value

    def show(reading: Reading) -> None:
        if progress is not None:
            progress(reading, len(latest))

    await read_to_end(settings, changelog_topic(settings, names.CUSTOMERS_TABLE), keep, show)
    return latest


async def preview(
    settings: Settings, draft: Catalog, progress: TableProgress | None = None
) -> Preview:
    now = int(time.time() * 1000)
    result = Preview()
    for customer_id, raw in (await latest_states(settings, progress)).items():
        state = CustomerState.from_dict(codec.loads(raw))
        state.segments = set()
        state.prune(now)
        reconcile(state, draft.segments, max(now, state.clock), None)
        result.customers += 1
        for segment in state.segments:
            result.members.setdefault(segment, []).append(customer_id)
    return result
