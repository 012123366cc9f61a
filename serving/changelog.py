"""The customers table read from its changelog, with no worker: the latest state per customer
(``segstream preview`` and ``segstream rebuild`` start from it). Anonymous visitors' profiles,
kept in the same table under ``anon:<id>``, are not customers and are left out."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import ConsumerRecord

from config import Settings, names
from streams import codec
from streams.events import is_anonymous
from streams.kafka_clients import Reading, read_to_end
from streams.layout import changelog_topic

# How far reading the customers table has come, and how many customers it holds so far.
TableProgress = Callable[[Reading, int], None]


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
            if is_anonymous(customer_id):
                continue
            if message.value is None:
                latest.pop(customer_id, None)
            else:
                latest[customer_id] = message.value

    def show(reading: Reading) -> None:
        if progress is not None:
            progress(reading, len(latest))

    await read_to_end(settings, changelog_topic(settings, names.CUSTOMERS_TABLE), keep, show)
    return latest
