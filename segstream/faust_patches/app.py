"""segstream's faust.App: Faust's own model (the same consumer, streams, tables, changelogs,
offsets and rebalancing) assembled from the changes in this package, and the small interface
the agents use to reach them.

Besides the changes listed in ``segstream.faust_patches``, the settings (``faust_options``):
faust-streaming's Cython stream iterator takes records already waiting in a stream's queue
directly (``cython_optimizations``, opt-in in 0.15), and the producer batches what the agents
publish. uvloop runs the event loop (see ``segstream.worker``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message, ProducerT, RecordMetadata

from config.errors import SegstreamError
from segstream.faust_patches.changelog import ChangelogRecordTable
from segstream.faust_patches.commits import OffsetCommitConsumer
from segstream.faust_patches.fetch import BatchHandOverConsumer
from segstream.faust_patches.monitor import MonitorWithoutRecordHooks
from segstream.faust_patches.producer_buffer import (
    DirectPublishProducerBuffer,
    FlushToEndProducer,
    FlushToEndProducerBuffer,
    publisher,
)
from segstream.faust_patches.recovery import (
    BatchedRecoveryTableManager,
    BrokerEndOffsetsConsumer,
    FlowResumedStreamsConsumer,
)
from segstream.faust_patches.sender import CoordinatorRetryingKafkaProducer
from segstream.faust_patches.worker import GracefulStopWorker

# Records the producer buffer may hold before the streams wait for it to drain. Faust's 100 is
# less than one timer tick produces (500 customers, each a state record and its changes), so
# every tick stalled the streams and logged a warning per record delivered meanwhile.
PRODUCER_BUFFER = 5_000


class SegstreamConsumer(
    BatchHandOverConsumer,
    OffsetCommitConsumer,
    BrokerEndOffsetsConsumer,
    FlowResumedStreamsConsumer,
):
    """Faust's aiokafka consumer with segstream's fetch, seek, commit and recovery changes."""


class SegstreamProducer(FlushToEndProducer):
    """Faust's aiokafka producer with segstream's buffer and Kafka producer."""

    Buffer = DirectPublishProducerBuffer

    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return CoordinatorRetryingKafkaProducer


class SegstreamTransport(aiokafka_driver.Transport):
    Consumer = SegstreamConsumer
    Producer = SegstreamProducer


class SegstreamApp(faust.App):
    """A faust.App built from the changes above; configure it with ``faust_options()``."""

    def __init__(self, id: str, **options: Any) -> None:
        options.setdefault("TableManager", BatchedRecoveryTableManager)
        super().__init__(
            id, monitor=MonitorWithoutRecordHooks(), Table=ChangelogRecordTable, **options
        )

    def _new_transport(self) -> Any:
        return SegstreamTransport(self.conf.broker_consumer, self)

    def _new_producer(self) -> Any:
        producer = super()._new_producer()
        producer.buffer.max_messages = PRODUCER_BUFFER
        return producer

    @property
    def giving_up_partitions(self) -> bool:
        """Whether a rebalance or a stop has halted the flow of records to the streams."""
        return self._segstream_consumer.giving_up_partitions

    def let_go(self, messages: list[Message]) -> None:
        """Stop waiting for these messages' acknowledgement: they will not be processed here,
        their offsets stay uncommitted, and the partitions' next reader processes them."""
        self._segstream_consumer.let_go(messages)

    def committed_offset(self, tp: TP) -> int | None:
        """The offset last committed for an assigned partition (None: none yet)."""
        return self._segstream_consumer.committed_offset(tp)

    def stop_worker(self, reason: SegstreamError) -> None:
        """Stop the worker this app runs in, as SIGTERM does, and have it exit non-zero with
        ``reason``. Not ``App.crash``: a crash marks every service crashed at once, so the
        consumer's thread stopped before the last commit, which then waited for it for ever."""
        root = self.beacon.root  # the worker the app runs in (Faust's Worker reattaches it)
        worker = root.data if root is not None else None
        if not isinstance(worker, GracefulStopWorker):  # not in a worker: nothing to stop
            raise reason
        worker.stop_on(reason)

    @contextlib.asynccontextmanager
    async def atomic_step(self) -> AsyncIterator[None]:
        """Under exactly-once, hold off commits while a record's outputs go into the open
        transactions and until the record is acknowledged (``OffsetCommitConsumer.step_turn``):
        a commit then covers a record's outputs and its offset together, or neither."""
        if not self.in_transaction:
            yield
            return
        async with self._segstream_consumer.step_turn:
            yield

    async def publish_from(
        self, source: TP, topic: str, key: bytes | None, value: bytes
    ) -> Awaitable[RecordMetadata]:
        """Publish a record that a step on the input partition ``source`` produced, keyed by
        another key than the step's (an identity merge, an anonymous id's erasure, a dead
        letter): under exactly-once inside ``source``'s transaction, which commits with
        ``source``'s offsets, wherever the record's own partition is. Faust's
        ``TransactionManager.send`` picks the transaction of the record's partition, which
        another worker may hold (``ProducerSendError``) or commit apart from ``source``."""
        if not self.in_transaction:
            return await self.publisher.send(topic, key, value, None, None, None)
        group = self.assignor.group_for_topic(source.topic)
        return await self.consumer.transactions.producer.send(
            topic,
            key,
            value,
            None,
            None,
            None,
            transactional_id=f"{self.conf.id}-{group}-{source.partition}",
        )

    @property
    def publisher(self) -> ProducerT:
        """The producer Faust's topics publish through: under exactly-once the transaction
        manager, which sends each record inside the transaction of its partition."""
        return publisher(self)

    @property
    def producer_buffer(self) -> FlushToEndProducerBuffer:
        """The producer's buffer: table changelog records and ``send_soon`` records, with
        ``put_after`` and a flush that waits for every record put before it."""
        return cast(FlushToEndProducerBuffer, self.producer.buffer)

    @property
    def _segstream_consumer(self) -> SegstreamConsumer:
        return cast(SegstreamConsumer, self.consumer)


def faust_options() -> dict[str, Any]:
    """The Faust settings segstream runs with (the benchmark's tuned peer uses them too)."""
    return {
        "cython_optimizations": True,
        # Batch what the agent publishes: one produce request per millisecond at most, not one
        # per record. 1 ms, not 5: a change waits for its state's changelog record (at least
        # once), and 5 ms of that wait were linger (p50 at a quarter of the load 12 ms at 5, 8
        # ms at 1, the same CPU per event: docs/benchmarks.md).
        "producer_linger_ms": 1,
        # aiokafka keeps one batch per partition and waits when it is full: Faust's 16 KB
        # holds a dozen customer states, so the producer, not the agent, set the pace.
        "producer_max_batch_size": 1024 * 1024,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
    }
