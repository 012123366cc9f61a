"""Where Faust's recovery takes a changelog's end from under exactly-once: the broker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP


class BrokerEndOffsetsConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose partition ends come from the broker in every mode."""

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """The end of each partition, for recovery. Under exactly-once Faust takes the last
        stable offset seen in the last fetch response, which a worker that has not fetched the
        changelog yet does not have: it then restored nothing (seen right after a restart).
        ``end_offsets`` asks the broker, and under read_committed answers the last stable
        offset."""
        if not self.in_transaction:
            return await super().highwaters(*partitions)
        thread = self._thread
        return cast(Mapping[TP, int], await thread.call_thread(self._end_offsets, list(partitions)))

    async def _end_offsets(self, partitions: list[TP]) -> Mapping[TP, int]:
        return cast(Mapping[TP, int], await self._thread._ensure_consumer().end_offsets(partitions))
