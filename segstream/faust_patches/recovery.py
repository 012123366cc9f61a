"""Faust's recovery: where it takes a changelog's end from under exactly-once (the broker), when
the stream partitions it resumes at its end are fetched from (once flow resumes), and how it
takes the changelog records queued for it (in passes, not one wait per record)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from time import monotonic
from typing import cast

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT
from faust.utils.tracing import finish_span
from mode import Service
from mode.utils.queues import ThrowableQueue

logger = logging.getLogger(__name__)


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


# Changelog records taken from the queue in one pass at most (Faust's queue holds up to
# ``stream_buffer_maxsize``, 4,096 by default).
RECOVERY_PASS = 4_096


class BatchedRecovery(Recovery):
    """Faust's recovery, taking every changelog record already queued in one pass.

    Faust's loop waits for each record in its own ``asyncio.wait_for`` (a task and a timer
    each), formats three debug lines per record whether debug is on or not, and after each
    record totals what is left to restore of every partition, twice. Here the wait is per pass;
    each record is applied as Faust applies it (its offset, its table's buffer, the table's
    changelog callback, the flush when the buffer is full); what is left is totalled once per
    pass. A record that fails is logged and skipped, as Faust's loop does, and the rest of the
    pass goes on."""

    @Service.task
    async def _slurp_changelogs(self) -> None:
        queue = cast(ThrowableQueue, self.tables.changelog_queue)
        timeouts = 0
        while not self.should_stop:
            self.signal_recovery_end.clear()
            try:
                events = await self._take(queue)
            except TimeoutError:
                timeouts += 1
                if self.should_stop:
                    return
                await self._check_end(timeouts)
                continue
            except Exception as exc:  # Faust's loop logs and goes on too
                logger.warning("Error in recovery: %r", exc)
                continue
            timeouts = 0
            await self._apply(events)
            await self._check_end(0)

    async def _check_end(self, timeouts: int) -> None:
        """After a pass or a quiet wait: the end of recovery, and of the standby copies. An
        error is logged and the loop goes on, as in Faust's loop (never the end of the task)."""
        try:
            await self._end_if_restored(timeouts)
            if not timeouts:
                self._standbys_ready_if_read()
        except Exception as exc:
            logger.warning("Error in recovery: %r", exc)

    @staticmethod
    async def _take(queue: ThrowableQueue) -> list[EventT]:
        """The next record (within Faust's 5 s), and every one queued behind it."""
        events = [await asyncio.wait_for(queue.get(), timeout=5.0)]
        while len(events) < RECOVERY_PASS and not queue.empty():
            events.append(queue.get_nowait())
        return events

    async def _apply(self, events: list[EventT]) -> None:
        """Faust's steps for each record, in order."""
        now = monotonic()
        active_tps, standby_tps, tp_to_table = self.active_tps, self.standby_tps, self.tp_to_table
        buffers, applied_active = self.buffers, 0
        for event in events:
            try:
                message = event.message
                tp, offset = message.tp, message.offset
                if tp in active_tps:
                    table, offsets = tp_to_table[tp], self.active_offsets
                    self._active_events_received_at[tp] = now
                    size = table.recovery_buffer_size
                    applied_active += 1
                elif tp in standby_tps:
                    table, offsets = tp_to_table[tp], self.standby_offsets
                    self._standby_events_received_at.setdefault(tp, now)
                    size = table.standby_buffer_size
                else:
                    logger.warning("Recovery: a record of %r, neither active nor standby", tp)
                    continue
                seen = offsets.get(tp)
                if seen is not None and offset <= seen:
                    continue
                offsets[tp] = offset
                buffer = buffers[table]
                buffer.append(event)
                await table.on_changelog_event(event)
                if len(buffer) >= size:
                    table.apply_changelog_batch(buffer)
                    buffer.clear()
                    self._last_flush_at = now
            except Exception as exc:
                logger.warning("Error in recovery: %r", exc)
        if applied_active:
            self._sample_processing_time(monotonic(), applied_active)

    def _sample_processing_time(self, now: float, applied: int) -> None:
        """Faust's samples of the time per active record (its estimate of the time left)."""
        last = self._last_active_event_processed_at
        if last is not None:
            times = self._processing_times
            times.extend([(now - last) / applied] * applied)
            for _ in range(len(times) - self.num_samples_required_for_estimate):
                times.popleft()
        self._last_active_event_processed_at = now

    def _standbys_ready_if_read(self) -> None:
        """Faust's signal that the standby copies are read to their ends."""
        ready = self._standbys_span is None and self.tables.standbys_ready
        if ready or self.standby_remaining_total():
            return
        if self._standbys_span is not None:
            finish_span(self._standbys_span)
            self._standbys_span = None
        self.tables.on_standbys_ready()

    async def _end_if_restored(self, timeouts: int) -> None:
        """Faust's end of recovery: once every active changelog is read to its end, the tables'
        buffers are applied and the end is signalled. Under exactly-once, after two quiet
        waits, a partition whose consumer is past its end (aborted transactions' markers) is
        taken as read."""
        if timeouts > 1 and self.app.in_transaction:
            await self._skip_aborted_tail()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    async def _skip_aborted_tail(self) -> None:
        offsets = self.active_offsets
        for tp, highwater in self.active_highwaters.items():
            offset = offsets[tp]
            if highwater is None or offset is None or offset >= highwater:
                continue
            position = await self.app.consumer.position(tp)
            if position is not None and position >= highwater:
                logger.info("Aborted transactions up to the end of %r", tp)
                offsets[tp] = highwater


class BatchedRecoveryTableManager(TableManager):
    """Faust's table manager, recovering with ``BatchedRecovery``."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BatchedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
