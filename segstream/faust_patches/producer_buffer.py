"""A producer whose flush waits for every buffered record, as Faust's callers assume.

Faust sends table changelog records and ``send_soon`` records through the producer's buffer,
and flushes it before it commits input offsets, before it gives up partitions in a rebalance
and before the worker leaves the group. Its ``ProducerBuffer.flush`` returns as soon as 0.1 s
go by without a record leaving the buffer, with records still in it (and does not wait for the
record being handed to the client). On a loaded machine a pause that long is common, and then:

- offsets are committed past events whose changelog records are still buffered (lost after a
  ``kill -9``);
- a revoked worker's last changelog records land after the new owner restored the partition:
  it processes again on a stale state, and the late records later overwrite newer ones;
- the records still buffered when a stopping worker's producer stops are dropped.

``FlushToEndProducerBuffer.flush`` waits until every record put before the call has been handed
to the Kafka client (whose own flush then waits for delivery), however slowly they go.

The buffer also keeps an order the Kafka client does not (aiokafka sends each partition's batch
when that batch is ready, so records put in order can reach the broker in any order):
``put_after(record, delivery)`` sends the record only once ``delivery`` (another record's
future) is done, without holding up the records put after it. segstream's customer agent uses it
under at-least-once so that an output record never reaches the broker before the stored state
that produced it (``agents.outbox``).

``DirectPublishProducerBuffer`` also cuts the per-record publishing step to what it does for a
topic (measured with ``segstream bench``: Faust's debug line, sensor calls and producer look-up
per record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from functools import partial
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.transport.producer import ProducerBuffer
from faust.types import ProducerT
from faust.types.tuples import FutureMessage
from mode import Service

log = logging.getLogger(__name__)

# How often a flush that waits looks at the buffer again if no send wakes it.
RECHECK_S = 1.0


class Lane:
    """Counts of the records given to one of the buffer's senders and of those it sent, in
    order, and the count a waiting flush is woken at (once per flush, not once per record: a
    flush can wait for thousands)."""

    def __init__(self, drained: asyncio.Event) -> None:
        self.put = 0
        self.sent = 0
        self.wake_at = sys.maxsize
        self.drained = drained

    def one_sent(self) -> None:
        self.sent += 1
        if self.sent >= self.wake_at:
            self.wake_at = sys.maxsize
            self.drained.set()

    def wake_at_or_before(self, target: int) -> None:
        self.wake_at = min(self.wake_at, target)


class FlushToEndProducerBuffer(ProducerBuffer):
    """Faust's producer buffer with a flush that returns only once it is drained, and with
    records that wait for another's delivery."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.drained = asyncio.Event()
        self.direct = Lane(self.drained)  # Faust's queue of records, sent in the order put
        self.deferred = Lane(self.drained)  # records sent once another delivery is done
        self.waiting: deque[tuple[asyncio.Future[Any], FutureMessage]] = deque()
        self.waiting_added = asyncio.Event()

    def put(self, fut: FutureMessage) -> None:
        super().put(fut)
        self.direct.put += 1

    def put_after(self, fut: FutureMessage, delivery: asyncio.Future[Any]) -> None:
        """Send ``fut`` once ``delivery`` is done (delivered or failed). Such records leave in
        the order given, and hold up no record put with ``put``."""
        self.waiting.append((delivery, fut))
        self.deferred.put += 1
        self.waiting_added.set()

    async def _send_pending(self, fut: FutureMessage) -> None:
        await self.publish(fut)
        self.direct.one_sent()

    @Service.task
    async def _handle_waiting(self) -> None:
        waiting = self.waiting
        while not self.should_stop:
            if not waiting:
                self.waiting_added.clear()
                await self.waiting_added.wait()
                continue
            delivery, fut = waiting[0]
            if not delivery.done():
                await asyncio.wait((delivery,))
            waiting.popleft()
            await self.publish(fut)
            self.deferred.one_sent()
            self.message_sent.set()

    async def publish(self, fut: FutureMessage) -> None:
        """Hand one record to the producer, Faust's way (``DirectPublishProducerBuffer`` trims
        it)."""
        await super()._send_pending(fut)

    async def flush(self) -> None:
        """Wait until every record put before this call is with the Kafka client (records put
        meanwhile are not waited for, so a commit is not held up by the streams behind it)."""
        targets = [(lane, lane.put) for lane in (self.direct, self.deferred)]
        while unsent := sum(max(target - lane.sent, 0) for lane, target in targets):
            if self.state != "running":
                raise RuntimeError(
                    f"Cannot flush: producer buffer {self.state} with {unsent} records unsent"
                )
            self.drained.clear()
            for lane, target in targets:
                if lane.sent < target:
                    lane.wake_at_or_before(target)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=RECHECK_S)


class DirectPublishProducerBuffer(FlushToEndProducerBuffer):
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
    """What Faust's ``Topic._on_published`` does, less the sensor calls (the monitor ignores
    them)."""
    try:
        metadata = sent.result()
    except Exception as exc:
        log.warning("Could not publish to %s: %r", fut.message.channel, exc)
        fut.set_exception(exc)
        return
    fut.set_result(metadata)
    if fut.message.callback:
        fut.message.callback(fut)


class FlushToEndProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer with a ``FlushToEndProducerBuffer`` (segstream does not use
    Faust's ``producer_threaded``, whose buffer hands records to another thread's queue)."""

    Buffer: type[FlushToEndProducerBuffer] = FlushToEndProducerBuffer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.app.conf.producer_threaded:
            raise NotImplementedError("FlushToEndProducer does not support producer_threaded")
        self.buffer.beacon.detach(self.beacon)
        self.buffer = self.Buffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app
