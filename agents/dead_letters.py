"""Records that cannot be applied go to dead-letters: the raw record, where it came from, why."""

from __future__ import annotations

import logging

import faust

from segstream.app import topics
from streams import codec
from streams.deadletter import envelope
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)


def dead_letter(event: faust.EventT, topic: str, reason: str) -> None:
    message = event.message
    log.warning(
        "Dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
    )
    topics.dead_letters.send_soon(
        key=message.key,
        value=codec.dumps(
            envelope(
                raw=message.value,
                key=message.key,
                topic=topic,
                partition=message.partition,
                offset=message.offset,
                reason=reason,
                at=wall_clock_ms(),
            )
        ),
    )
