"""At-least-once: what a customer's step publishes leaves only after the state that records it,
and the state keeps it until it is delivered (an outbox in the customer's changelog record).

aiokafka sends each partition's batch when that batch is ready, so a crash can otherwise keep
either half of a step:

- the state without its outputs: the redelivered record is skipped as applied, and the change
  is never published;
- the outputs without the state: the restarted worker redoes the step, and since records of
  different topics can come in another order the second time, it may publish a *different*
  change under a version already used.

So each output record (segment change, trigger, late-event record) is:

1. written into the state's ``outbox`` with the state, together with the outputs of earlier
   steps not yet delivered;
2. sent once the state's changelog record is delivered (the producer buffer's ``put_after``);
3. dropped from the outbox at the customer's next step once delivered, or once the input
   offset of the record that produced it is committed (Faust flushes the producer, these
   records included, before it commits);
4. published again, same record and version, when a step finds it in a restored state neither
   delivered by this worker nor committed (subscribers and the Redis store drop the repeat).

Under exactly-once the transaction holds the state and the outputs together: no outbox.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import faust
from faust.types import TP

from config import names
from segstream.app import app, settings, topics
from streams import codec

log = logging.getLogger(__name__)

OUTPUTS = {
    names.SEGMENT_CHANGES: topics.segment_changes,
    names.TRIGGERS: topics.triggers,
    names.LATE_EVENTS: topics.late_events,
    names.CAMPAIGN_FACTS: topics.campaign_facts,
    names.IDENTITY_MERGES: topics.identity_merges,
}

# An outbox entry, as stored: [source topic, source offset, n, output topic, record].
Entry = list[Any]
# Which output of which step: (customer, partition, source topic, source offset, n).
Key = tuple[str, int, str, int, int]


def entries(source: str, offset: int, outputs: list[tuple[str, dict[str, Any]]]) -> list[Entry]:
    return [[source, offset, n, topic, record] for n, (topic, record) in enumerate(outputs)]


class Outbox:
    """The outputs this worker handed to the producer, until their input offset is committed."""

    def __init__(self) -> None:
        self.handed: dict[Key, asyncio.Future[Any]] = {}

    def carried(self, customer_id: str, partition: int, stored: list[Entry]) -> list[Entry]:
        """The stored entries still to keep: those not known delivered. An entry this worker
        never handed over (restored after a crash or a rebalance), or whose delivery failed, is
        published again now."""
        kept = []
        for entry in stored:
            source, offset, n = entry[0], entry[1], entry[2]
            if committed(source, partition, offset):
                continue
            key = (customer_id, partition, source, offset, n)
            delivery = self.handed.get(key)
            if delivery is None or _failed(delivery):
                self.handed[key] = self._put(customer_id, entry)
                kept.append(entry)
            elif not delivery.done():
                kept.append(entry)
        return kept

    def send_after(
        self, customer_id: str, partition: int, new: list[Entry], stored: faust.types.FutureMessage
    ) -> None:
        """Send the step's new entries once ``stored`` (the state's changelog record) is."""
        for entry in new:
            key = (customer_id, partition, entry[0], entry[1], entry[2])
            self.handed[key] = self._put(customer_id, entry, after=stored)

    def forget_committed(self) -> None:
        """Drop what a commit covers, or what belongs to a partition no longer assigned."""
        for key in [key for key in self.handed if committed(key[2], key[1], key[3])]:
            del self.handed[key]
        assigned = app.consumer.assignment()
        for key in [k for k in self.handed if TP(settings.topic(k[2]), k[1]) not in assigned]:
            del self.handed[key]

    def _put(
        self, customer_id: str, entry: Entry, after: asyncio.Future[Any] | None = None
    ) -> asyncio.Future[Any]:
        # Keyed by the record's customer: the state's own, or (a merge record) the customer an
        # anonymous id was linked to.
        record = entry[4]
        output = OUTPUTS[entry[3]].as_future_message(
            key=record.get("customer_id", customer_id).encode(), value=codec.dumps(record)
        )
        if after is None:
            app.producer_buffer.put(output)
        else:
            app.producer_buffer.put_after(output, after)
        output.add_done_callback(partial(_report_failure, entry[3]))
        return output


def committed(source: str, partition: int, offset: int) -> bool:
    """Whether Faust committed the input offset past this record (so its outputs were
    delivered: Faust flushes the producer before it commits)."""
    position = app.committed_offset(TP(settings.topic(source), partition))
    return position is not None and offset < position


def _failed(delivery: asyncio.Future[Any]) -> bool:
    return delivery.done() and (delivery.cancelled() or delivery.exception() is not None)


def _report_failure(topic: str, delivery: asyncio.Future[Any]) -> None:
    if _failed(delivery):
        log.error(
            "A %s record was not delivered (kept in the customer's outbox): %r",
            topic,
            None if delivery.cancelled() else delivery.exception(),
        )
