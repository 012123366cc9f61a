"""The customers table: each customer's state, changelog-backed, co-partitioned with the inputs.

The agents that keep it and the API that reads it both reach it here. What a restored changelog
record means to the agents (a deadline to index, a customer to check in Redis) is theirs: they
register a listener, which Faust calls for every record it restores, standby copies included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import faust

from config import names
from segstream.app import app, settings
from segstream.faust_patches.changelog import ChangelogRecordTable

ChangelogListener = Callable[[faust.EventT], Awaitable[None]]
_changelog_listeners: list[ChangelogListener] = []


def on_restored(listener: ChangelogListener) -> ChangelogListener:
    """Register ``listener`` for the customers table's restored changelog records."""
    _changelog_listeners.append(listener)
    return listener


async def _restored(event: faust.EventT) -> None:
    for listener in _changelog_listeners:
        await listener(event)


# A ChangelogRecordTable (SegstreamApp's table class): ``put`` returns the changelog record.
customers = cast(
    ChangelogRecordTable,
    app.Table(
        names.CUSTOMERS_TABLE,
        partitions=settings.partitions,
        key_type=str,
        # Values are the state's JSON bytes: a third of the memory of the decoded dict.
        value_type=bytes,
        on_changelog_event=_restored,
    ),
)
