"""Faust's recovery: where it takes a changelog's end from under exactly-once (the broker), and
when the stream partitions it resumes at its end are fetched from (once flow resumes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
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


def held_until_flow(
    tps: Iterable[TP], rebalancing: bool, is_changelog: Callable[[TP], bool]
) -> set[TP]:
    """Of the partitions a rebalance resumes, the stream partitions (not a table's changelog):
    they are fetched from once flow resumes (see ``FlowResumedStreamsConsumer``)."""
    return {tp for tp in tps if not is_changelog(tp)} if rebalancing else set()


class FlowResumedStreamsConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer that fetches from the stream partitions a rebalance resumes
    only once flow resumes.

    At the end of a rebalance Faust's recovery resumes the stream partitions, seeks them to
    their committed offsets, then resumes flow, which empties the streams' queues. Flow was
    already on (the changelogs were read with it), so records fetched meanwhile went into those
    queues and were emptied out unprocessed, while the fetcher had moved past them: the events
    were never processed (changes missing after two workers traded partitions while events
    flowed, 4 runs in 10 on a busy machine), and a hole stayed in front of the offsets the
    streams acknowledged, so a partition's offset was never committed again. Faust resumes flow
    right after the queues are emptied (``Recovery.on_recovery_completed``,
    ``Recovery._resume_streams``): the partitions are resumed then."""

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        held = held_until_flow(tps, self.app.rebalancing, self._is_changelog_tp)
        self._held_until_flow.update(held)
        super().resume_partitions(tps - held)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        self._held_until_flow.difference_update(tps)  # a rebalance again: paused afresh
        super().pause_partitions(tps)

    def resume_flow(self) -> None:
        super().resume_flow()
        if self._held_until_flow:
            held = set(self._held_until_flow)
            self._held_until_flow.clear()
            super().resume_partitions(held)

    @cached_property
    def _held_until_flow(self) -> set[TP]:
        """Stream partitions resumed by a rebalance, not fetched from until flow resumes."""
        return set()
