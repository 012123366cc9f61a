"""Records that cannot be applied go to dead-letters: the raw record, where it came from, why.

Under exactly-once, a dead letter of the customer agent's step goes into that step's
transaction (``dead_letter_of_step``), so a redelivered record is dead-lettered once. A dead
letter sent with ``dead_letter`` is a side record: after a crash it can repeat, and its
``source_topic``, ``partition`` and ``offset`` tell a reader which repeats to drop."""

from __future__ import annotations

import logging

import faust

from config import names
from segstream.app import app, settings, topics
from streams import codec
from streams.deadletter import envelope
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)


def dead_letter(event: faust.EventT, topic: str, reason: str) -> None:
    """Send the record to dead-letters, outside any transaction."""
    topics.dead_letters.send_soon(key=event.message.key, value=_letter(event, topic, reason))


async def dead_letter_of_step(event: faust.EventT, topic: str, reason: str) -> None:
    """Send the record to dead-letters; under exactly-once in the transaction of its own input
    partition, which commits with the record's offset (call it inside ``app.atomic_step``)."""
    if not app.in_transaction:
        dead_letter(event, topic, reason)
        return
    message = event.message
    value = _letter(event, topic, reason)
    await app.publish_from(message.tp, settings.topic(names.DEAD_LETTERS), message.key, value)


def _letter(event: faust.EventT, topic: str, reason: str) -> bytes:
    """The envelope of a refused record, logged without its content."""
    message = event.message
    log.warning(
        "Dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
    )
    return codec.dumps(
        envelope(
            raw=message.value,
            key=message.key,
            topic=topic,
            partition=message.partition,
            offset=message.offset,
            reason=reason,
            at=wall_clock_ms(),
        )
    )
