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

``DrainingProducerBuffer.flush`` waits until every record put before the call has been handed
to the Kafka client (whose own flush then waits for delivery), however slowly they go.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage

# How often a flush that waits looks at the buffer again if no send wakes it.
RECHECK_S = 1.0


class DrainingProducerBuffer(ProducerBuffer):
    """Faust's producer buffer with a flush that returns only once it is drained."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.records_put = 0
        self.records_sent = 0  # handed to the Kafka client, in the order they were put
        # A waiting flush is woken once this many records are sent (one wake-up per flush, not
        # one per record: a flush can wait for thousands).
        self.wake_at = sys.maxsize
        self.drained = asyncio.Event()

    def put(self, fut: FutureMessage) -> None:
        super().put(fut)
        self.records_put += 1

    async def _send_pending(self, fut: FutureMessage) -> None:
        await self.publish(fut)
        self.records_sent += 1
        if self.records_sent >= self.wake_at:
            self.wake_at = sys.maxsize
            self.drained.set()

    async def publish(self, fut: FutureMessage) -> None:
        """Hand one record to the producer (Faust's way; ``segstream.tuning`` trims it)."""
        await super()._send_pending(fut)

    async def flush(self) -> None:
        """Wait until every record put before this call is with the Kafka client (records put
        meanwhile are not waited for, so a commit is not held up by the streams behind it)."""
        target = self.records_put
        while self.records_sent < target:
            if self.state != "running":
                raise RuntimeError(
                    f"Cannot flush: producer buffer {self.state} with "
                    f"{target - self.records_sent} records unsent"
                )
            self.wake_at = min(self.wake_at, target)
            self.drained.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=RECHECK_S)


class DrainingProducer(aiokafka_driver.Producer):
    """Faust's aiokafka producer with a ``DrainingProducerBuffer`` (segstream does not use
    Faust's ``producer_threaded``, whose buffer hands records to another thread's queue)."""

    Buffer: type[DrainingProducerBuffer] = DrainingProducerBuffer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.app.conf.producer_threaded:
            raise NotImplementedError("DrainingProducer does not support producer_threaded")
        self.buffer.beacon.detach(self.beacon)
        self.buffer = self.Buffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app
