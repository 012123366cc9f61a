"""How fetched records reach the streams: one hand-over per batch, and a short fetch wait.

Faust's fetch loop (``Consumer._drain_messages``) hands each record to the streams through
``Service.wait_first``: four asyncio tasks and an ``asyncio.wait`` per record.
``BatchHandOverConsumer`` makes that one ``wait_first`` per fetched batch, with the same
per-record steps inside it (measured with ``segstream bench`` and a profiler: about half of the
gain from a bare Faust agent to the ``faust_tuned`` one).

Faust waits for each hand-over or for flow to be suspended (a rebalance), whichever comes
first, and stops yielding a fetched batch once flow stops or the consumer generation changes.
Here a whole batch is handed over record by record inside one such wait, with the same checks
before each record: the rest of a batch cut short by a rebalance is dropped, as Faust drops it,
and fetched again from the committed offsets.

A fetch of idle partitions waits at most ``FETCH_MAX_WAIT_MS`` at the broker, not Faust's
1.5 s: a restoring worker was idle half the time behind such fetches.

A fetch returns records only of the partitions Faust fetches from (``ActivePartitions``), also
once none is left: aiokafka reads an empty set as every partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode import Service, ServiceT

from segstream.faust_patches.seeks import SeekTurnConsumer

YIELD_EVERY = 100  # records handed over between yields to the event loop, as Faust does
# How long the broker may hold a fetch that finds no new records. aiokafka has one fetch in
# flight per broker, and a partition whose fetched records are still being processed is left
# out of it: once they are, the partition waits for the fetch in flight to come back. Faust's
# 1,500 ms meant that a fetch of only idle partitions (the input topics, while a worker
# restores its table) held up the busy ones for up to 1.5 s at a time.
FETCH_MAX_WAIT_MS = 50


class FetchMaxWaitConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, its Kafka consumer with ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; aiokafka reads the attribute when the consumer starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ActivePartitions:
    """The partitions Faust fetches from, as aiokafka's fetch reads them (``tp in``, and whether
    to filter at all): Faust's own set, read as it changes, but never taken for every partition.

    Faust hands its set of active partitions to aiokafka's ``Fetcher.fetched_records``, which
    returns the records of every partition when the set is empty. Faust fetches only while the
    set has a partition, but the fetch waits up to a second in the consumer's thread, and the
    set can empty meanwhile (a rebalance pauses a table's changelog once it is read, before it
    resumes the stream partitions): the fetch then returned the records of paused partitions,
    which Faust's ``getmany`` drops, and aiokafka had moved past them. Their events were never
    processed (changes missing after a handover while events flowed)."""

    def __init__(self, partitions: Set[TP]) -> None:
        self.partitions = partitions

    def __contains__(self, tp: object) -> bool:
        return tp in self.partitions

    def __bool__(self) -> bool:
        return True  # filter by the set, also once it is empty


class BatchHandOverConsumer(SeekTurnConsumer):
    """Faust's aiokafka consumer with one ``wait_first`` per fetched batch, not per record, and
    a batch that a seek overtook fetched again (``seeks``)."""

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        if active_partitions is not None:
            active_partitions = cast(set[TP], ActivePartitions(active_partitions))
        return await super()._getmany(active_partitions, timeout)

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return FetchMaxWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                seeks = self.seeks
                batch = [pair async for pair in self.getmany(timeout=1.0)]
                # getmany can return at once again and again: give the loop a turn.
                await self.sleep(0)
                if batch and not self.should_stop:
                    await self.wait_first(self._hand_over(batch, seeks), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, batch: list[tuple[TP, Message]], seeks: int) -> None:
        """Faust's per-record steps (gap tracking, commit cadence, the callback), in order; the
        rest of the batch is fetched again once a seek began after it was fetched."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        for index, (tp, message) in enumerate(batch, 1):
            if not index % YIELD_EVERY:
                await asyncio.sleep(0)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                # Shielded: cancelled between a transaction's commit and the next one's begin,
                # it would leave the partition with no transaction to send in.
                await asyncio.shield(self.commit())
            # Faust's getmany makes these checks between records as it yields them: once a
            # rebalance begins, nothing more of the batch reaches the streams.
            if not self.flow_active or message.generation_id != self.app.consumer_generation_id:
                return
            if self.seeks != seeks:
                await self._fetch_again(batch[index - 1 :])
                return
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # seen already (Faust drops these the same way)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await callback(message)
            if self.seeks != seeks:
                await self._fetch_again(batch[index:])
                return
            read_offset[tp] = offset
