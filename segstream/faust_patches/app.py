"""How segstream tunes Faust, inside Faust's own model: the same consumer, streams, tables,
changelogs, offsets and rebalancing, with less framework work per event.

Measured with `segstream bench` (see the README) and a profiler, the per-event costs removed:

- Faust's fetch loop hands each record to the streams through ``Service.wait_first``: four
  asyncio tasks and an ``asyncio.wait`` per record. ``TunedConsumer`` makes that one
  ``wait_first`` per fetched batch, with the same hand-over for every record in it.
- Faust's Monitor sensor does bookkeeping for every message and every send that nothing
  here reads (the worker's own counters are at /metrics).
- The Cython stream iterator takes records already waiting in a stream's queue directly
  (faust-streaming's ``cython_optimizations``, opt-in in 0.15).
- The producer buffer (the table's changelog records) may hold a timer tick's output without
  stalling the streams (``PRODUCER_BUFFER``).
- The producer buffer hands each waiting record to the producer directly (``LeanProducerBuffer``),
  without Faust's per-record debug line, sensor calls and producer look-up.
- uvloop runs the event loop (see ``segstream.worker``).
- A fetch of idle partitions waits at most 50 ms at the broker, not Faust's 1.5 s
  (``FETCH_MAX_WAIT_MS``): a restoring worker was idle half the time behind such fetches.

The producer's buffer is flushed to the end before commits, rebalances and shutdown
(``producer_buffer``), and its Kafka client retries a coordinator look-up that a broker
restart cut off (``sender``): correctness fixes, not tunings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from functools import cached_property, partial
from typing import Any, cast

import aiokafka
import faust
from aiokafka.errors import IllegalOperation
from faust.sensors import Monitor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message, ProducerT
from faust.types.tuples import FutureMessage
from mode import Service, ServiceT

from segstream.faust_patches.producer_buffer import DrainingProducer, DrainingProducerBuffer
from segstream.faust_patches.sender import SteadyKafkaProducer

log = logging.getLogger(__name__)

YIELD_EVERY = 100  # records handed over between yields to the event loop, as Faust does
# Records the producer buffer may hold before the streams wait for it to drain. Faust's 100 is
# less than one timer tick produces (500 customers, each a state record and its changes), so
# every tick stalled the streams and logged a warning per record delivered meanwhile.
PRODUCER_BUFFER = 5_000
# How long the broker may hold a fetch that finds no new records. aiokafka has one fetch in
# flight per broker, and a partition whose fetched records are still being processed is left
# out of it: once they are, the partition waits for the fetch in flight to come back. Faust's
# 1,500 ms meant that a fetch of only idle partitions (the input topics, while a worker
# restores its table) held up the busy ones for up to 1.5 s at a time.
FETCH_MAX_WAIT_MS = 50


class TunedConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, its Kafka consumer with ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; aiokafka reads the attribute when the consumer starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class TunedConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with one ``wait_first`` per fetched batch, not per record, the
    committed offsets readable (``agents.outbox``), and corrections found by the fault tests:
    exactly-once restore and commit, the commits around giving up partitions, and batches
    overtaken by a seek.

    Faust waits for each hand-over or for flow to be suspended (a rebalance), whichever comes
    first, and stops yielding a fetched batch once flow stops or the consumer generation
    changes. Here a whole batch is handed over record by record inside one such wait, with the
    same checks before each record: the rest of a batch cut short by a rebalance is dropped, as
    Faust drops it, and fetched again from the committed offsets.
    """

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # Seeks begun plus seeks ended (``perform_seek``, ``seek``, ``seek_wait``): a batch fetched
    # before a seek must not be handed over after it (see ``_hand_over``).
    seeks = 0

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
        """Faust's per-record steps (gap tracking, commit cadence, the callback), in order.

        A seek in the same generation (Faust's recovery seeks the stream partitions once it is
        done, and its fetch loop seeks when flow stops under it) can come while a batch fetched
        before it is handed over. Faust's own loop then hands the stale records over anyway:
        the first one beyond the seek's offset looks like a gap in the partition, Faust counts
        the gap as acknowledged, and the records in it were committed without being processed
        (seen as lost events when partitions moved while events flowed; faust-streaming #606
        reports gaps of this kind). Here the rest of such a batch is fetched again instead."""
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

    @property
    def giving_up_partitions(self) -> bool:
        """Whether a rebalance or a stop has halted the flow of records to the streams."""
        return not self.flow_active or self.app.should_stop

    def let_go(self, messages: list[Message]) -> None:
        """Stop waiting for these messages' acknowledgement: they will not be processed here
        (their offsets stay uncommitted, and the partitions' next reader processes them).
        Faust waits for every message handed to a stream before it gives partitions up."""
        for message in messages:
            self._unacked_messages.discard(message)
            held = self._let_go.get(message.tp)
            self._let_go[message.tp] = message.offset if held is None else min(held, message.offset)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next offset to commit, never past a message let go: Faust checks for a hole
        at the head of what was acknowledged only once it knows the committed offset, which a
        revocation clears, and misses a hole of one record."""
        offset = super()._new_offset(tp)
        held = self._let_go.get(tp)
        return offset if offset is None or held is None else min(offset, held)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._let_go.clear()  # each partition is read again from its committed offset
        await super().on_partitions_assigned(assigned, generation_id)

    @cached_property
    def _let_go(self) -> dict[TP, int]:
        """Per partition, the lowest offset let go since the last assignment."""
        return {}

    def committed_offset(self, tp: TP) -> int | None:
        """The offset Faust last committed for an assigned partition (None: none yet)."""
        return self._committed_offset.get(tp)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Under exactly-once, Faust commits the transactions without flushing its producer
        buffer first (it does under at-least-once): table changelog records of events whose
        offsets the transaction commits could still be in the buffer, and would then be sent
        in the next transaction, or outside any at shutdown. Flush them into this one."""
        if self.in_transaction:
            await cast(DrainingProducerBuffer, self.app.producer.buffer).flush()
        return await super()._commit_offsets(offsets, start_new_transaction)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what the streams acknowledged before Faust forgets it. Faust's revocation
        first drops its record of acknowledged offsets, then commits: only the events still in
        flight were committed, the rest of the work since the last periodic commit was not.
        Under exactly-once that left its transaction open across the rebalance: a worker that
        kept a partition restored its state without it, processed the events again inside the
        same transaction and committed both runs, two different changes under one version
        (faust-streaming #323 and #517 report duplicates of this kind)."""
        try:
            await self.maybe_wait_for_commit_to_finish()
            await self.commit()
        except Exception as exc:  # Faust's revocation must run whatever the commit did
            log.warning("Commit before giving up partitions failed (%r); work since is redone", exc)
        finally:
            await super().on_partitions_revoked(revoked)

    async def commit_and_end_transactions(self) -> None:
        """Faust's last commit before the worker gives up its partitions (shutdown or a
        rebalance). Under exactly-once it can find a partition's
        transaction already ended (aiokafka raises ``IllegalOperation``): Faust then gave up
        stopping the consumer and the worker process never exited. Skipping that commit is
        safe: an uncommitted transaction is aborted, and its records are processed again by
        the next owner of the partition."""
        try:
            committed = await self.commit(start_new_transaction=False)
            log.info(
                "Last commit before giving up partitions: %s",
                "done" if committed else "nothing to commit",
            )
        except IllegalOperation as exc:
            log.warning("Last commit skipped (%s); uncommitted work is redone", exc)


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class QuietMonitor(Monitor):
    """Faust's Monitor without its per-message and per-send bookkeeping (rebalances, commits
    and assignments are still recorded)."""

    on_message_in = on_stream_event_in = on_stream_event_out = on_message_out = _ignore
    on_table_get = on_table_set = on_table_del = _ignore
    on_send_initiated = on_send_completed = on_send_error = _ignore


class LeanProducerBuffer(DrainingProducerBuffer):
    """Faust's producer buffer, with the per-record publishing step cut to what it does for a
    topic: hand key, value and partition to Faust's producer, and complete the record's future
    (and so its callback: a table's changelog offset) when the broker acknowledges it. Records
    leave the buffer one by one, in order, as in Faust, so a flush still waits for each."""

    async def publish(self, fut: FutureMessage) -> None:
        message = fut.message
        topic = message.channel
        if not isinstance(topic, faust.Topic) or len(topic.topics) != 1:
            await super().publish(fut)
            return
        sent = await publisher(cast(faust.App, self.app)).send(
            topic.topics[0],
            message.key,
            message.value,
            message.partition,
            message.timestamp,
            message.headers,
        )
        cast(asyncio.Future, sent).add_done_callback(partial(_completed, fut))


def publisher(app: faust.App) -> ProducerT:
    """The producer Faust's topics publish through (``App.maybe_start_producer``, once the
    worker runs): under exactly-once the transaction manager, which sends each record inside
    the transaction of its partition."""
    return app.consumer.transactions if app.in_transaction else app.producer


def _completed(fut: FutureMessage, sent: asyncio.Future[Any]) -> None:
    """What Faust's ``Topic._on_published`` does, less the (quiet) sensors."""
    try:
        metadata = sent.result()
    except Exception as exc:
        log.warning("Could not publish to %s: %r", fut.message.channel, exc)
        fut.set_exception(exc)
        return
    fut.set_result(metadata)
    if fut.message.callback:
        fut.message.callback(fut)


class TunedProducer(DrainingProducer):
    Buffer = LeanProducerBuffer

    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return SteadyKafkaProducer


class TunedTransport(aiokafka_driver.Transport):
    Consumer = TunedConsumer
    Producer = TunedProducer


class TunedApp(faust.App):
    """A faust.App with the tuning above; configure it with ``faust_options()``."""

    def __init__(self, id: str, **options: Any) -> None:
        super().__init__(id, monitor=QuietMonitor(), **options)

    def _new_transport(self) -> Any:
        return TunedTransport(self.conf.broker_consumer, self)

    def _new_producer(self) -> Any:
        producer = super()._new_producer()
        producer.buffer.max_messages = PRODUCER_BUFFER
        return producer


def faust_options() -> dict[str, Any]:
    """The Faust settings segstream runs with (the benchmark's tuned peer uses them too)."""
    return {
        "cython_optimizations": True,
        # Batch what the agent publishes: one produce request per few ms, not one per record.
        "producer_linger_ms": 5,
        # aiokafka keeps one batch per partition and waits when it is full: Faust's 16 KB
        # holds a dozen customer states, so the producer, not the agent, set the pace.
        "producer_max_batch_size": 1024 * 1024,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
    }
