"""Which input offsets Faust commits, and when, around giving up partitions.

Corrections found by the fault tests (``docs/reliability.md``): the commit before a revocation,
the producer buffer flushed into an exactly-once commit, the last commit that finds its
transaction ended, and messages a stream gives up on (``let_go``) never committed past. The
committed offsets are readable too (``agents.outbox`` drops what a commit covers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import cached_property
from typing import cast

from aiokafka.errors import IllegalOperation
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from faust.types.transports import TPorTopicSet

from segstream.faust_patches.producer_buffer import FlushToEndProducerBuffer

log = logging.getLogger(__name__)


class OffsetCommitConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with the commits around giving up partitions corrected."""

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
        revocation clears, and misses a hole of one record (faust-streaming #606)."""
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

    @cached_property
    def step_turn(self) -> asyncio.Lock:
        """Under exactly-once, a commit and a step that sends into the open transactions take
        turns: an agent holds it from its first send until it has acknowledged its record
        (``SegstreamApp.atomic_step``), and ``force_commit`` holds it while it commits.

        Faust commits a partition's transaction with the offsets of the records acknowledged
        so far, while an agent may be in the middle of a record whose outputs it has already
        sent into that transaction: the transaction then commits those outputs without the
        record's offset, and after a ``kill -9`` the record is processed again and its outputs
        committed twice (seen in the exactly-once ``kill -9`` test)."""
        return asyncio.Lock()

    async def force_commit(
        self, topics: TPorTopicSet | None = None, start_new_transaction: bool = True
    ) -> bool:
        if not self.in_transaction:
            return await super().force_commit(topics, start_new_transaction)
        async with self.step_turn:
            return await super().force_commit(topics, start_new_transaction)

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
            await cast(FlushToEndProducerBuffer, self.app.producer.buffer).flush()
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
