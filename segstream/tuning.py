"""How segstream tunes Faust, inside Faust's own model: the same consumer, streams, tables,
changelogs, offsets and rebalancing, with less framework work per event.

Measured with `segstream bench` (see the README) and a profiler, the per-event costs removed:

- Faust's Monitor sensor does bookkeeping for every message and every send that nothing
  here reads (the worker's own counters are at /metrics).
- The Cython stream iterator takes records already waiting in a stream's queue directly
  (faust-streaming's ``cython_optimizations``, opt-in in 0.15).
- The producer buffer (the table's changelog records) may hold a timer tick's output without
  stalling the streams (``PRODUCER_BUFFER``).
- The producer buffer hands each waiting record to the producer directly (``LeanProducerBuffer``),
  without Faust's per-record debug line, sensor calls and producer look-up.
- uvloop runs the event loop (see ``segstream.worker``).

The producer's buffer is flushed to the end before commits, rebalances and shutdown
(``segstream.flushing``): a correctness fix, not a tuning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

import faust
from aiokafka.errors import IllegalOperation
from faust.sensors import Monitor
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ProducerT
from faust.types.tuples import FutureMessage

from segstream.flushing import DrainingProducer, DrainingProducerBuffer

log = logging.getLogger(__name__)

# Records the producer buffer may hold before the streams wait for it to drain. Faust's 100 is
# less than one timer tick produces (500 customers, each a state record and its changes), so
# every tick stalled the streams and logged a warning per record delivered meanwhile.
PRODUCER_BUFFER = 5_000


class TunedConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with three corrections (exactly-once restore and commit, and
    the shutdown commit) and the committed offsets readable (``agents.outbox``).

    It keeps Faust's per-record hand-over from the fetch loop to the streams. Handing over a
    whole fetched batch inside one wait (one ``wait_first`` per batch, not per record) was the
    largest single gain measured for a bare agent, but a batch fetched before Faust's seek to
    the committed offsets could reach the streams after it, and a customer's events were lost
    when partitions moved while events flowed (``tests/integration/test_rebalance.py``).
    """

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
