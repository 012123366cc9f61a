"""Seeks take turns, and a fetched batch that a seek overtook is fetched again.

A seek in the same consumer generation (Faust's recovery seeks the stream partitions once it is
done, and its fetch loop seeks when flow stops under it) can come while a batch fetched before
it is being handed to the streams. Faust's own loop hands the stale records over anyway: the
first one beyond the seek's offset looks like a gap in the partition, Faust counts the gap as
acknowledged, and the records in it were committed without being processed (seen as lost events
when partitions moved while events flowed; faust-streaming #606 reports gaps of this kind).

``SeekTurnConsumer`` counts seeks begun and ended, so that the hand-over (``fetch``) can tell a
batch overtaken, and moves such a batch's partitions back to where nothing can be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from functools import cached_property

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

log = logging.getLogger(__name__)


class SeekTurnConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose seeks take turns and are counted."""

    # Seeks begun plus seeks ended (``perform_seek``, ``seek``, ``seek_wait``): a batch fetched
    # before a seek must not be handed over after it (see ``fetch.BatchHandOverConsumer``).
    seeks = 0

    async def _fetch_again(self, dropped: list[tuple[TP, Message]]) -> None:
        """Drop the rest of a batch that a seek overtook, and move each of its partitions back
        to where nothing can be missed: the seek's offset, or the first record dropped if that
        is earlier (a partition the seek left alone). Records read twice are harmless: the
        stream drops those seen, the agent those applied, a changelog rewrites the same value.
        Seeks take turns (``_seeking``), so the offsets read here are those of the last seek."""
        first: dict[TP, int] = {}
        for tp, message in dropped:
            first.setdefault(tp, message.offset)
        async with self._seek_turn:
            assigned = self.assignment()
            positions = {
                tp: min(offset, self._read_offset[tp] or 0)
                for tp, offset in first.items()
                if tp in assigned
            }
            log.info(
                "A seek overtook a fetched batch: %d records of %d partitions fetched again",
                len(dropped),
                len(positions),
            )
            for tp, position in positions.items():
                await super().seek(tp, position)

    async def perform_seek(self) -> None:
        async with self._seeking():
            await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        async with self._seeking():
            await super().seek(partition, offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        async with self._seeking():
            await super().seek_wait(partitions)

    @contextlib.asynccontextmanager
    async def _seeking(self) -> AsyncIterator[None]:
        """One seek at a time: each moves the client's positions and then Faust's read offsets,
        and two interleaved could leave the client at one's offsets and Faust at the other's."""
        self.seeks += 1
        try:
            async with self._seek_turn:
                yield
        finally:
            self.seeks += 1

    @cached_property
    def _seek_turn(self) -> asyncio.Lock:
        return asyncio.Lock()
