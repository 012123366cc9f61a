"""Events in through HTTP: validated with the live decoder, then produced to the input topics
through Faust's producer, and answered only once Kafka has them.

Kafka's ack is the promise: a request is answered 2xx only after every event it accepted is on
the broker. When Kafka cannot take more, a request is refused with a status the tracking SDKs
retry (429 or 503, with ``Retry-After``), never accepted and then lost:
- at most ``SEGSTREAM_INGEST_MAX_PENDING_BYTES`` of events may be on their way to Kafka at a
  time (memory stays bounded while the broker is slow or down): beyond it, 429;
- a request whose events Kafka has not acknowledged within ``SEGSTREAM_INGEST_ACK_TIMEOUT_SECONDS``
  (the broker is down) is answered 503. Its events may still reach Kafka later; the client's
  retry then sends them again, and the customer agent counts each event id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config import names
from config.errors import InvalidEvent
from segstream.app import app, live, settings
from serving import metrics
from streams import codec
from streams.deadletter import envelope
from streams.events import decode, record_key
from streams.traits import kept_only

log = logging.getLogger(__name__)

ACCEPTED_TOPICS = names.INPUT_TOPICS
BUSY_RETRY_AFTER_S = 1
DOWN_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Refused(Exception):
    """Kafka cannot take the request's events now: answer ``status`` with Retry-After."""

    status: int
    retry_after: int
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """One event that passed the decoder: its input topic, key and JSON value."""

    topic: str
    key: bytes
    raw: bytes


def check_event(
    topic: Any, key: Any, value: Any, max_bytes: int, now: int | None = None
) -> Accepted:
    """One event checked by the live decoder, or InvalidEvent with the reason; ``now``: the
    request's arrival (default: the clock)."""
    if topic not in ACCEPTED_TOPICS:
        raise InvalidEvent(f"topic: expected one of {', '.join(ACCEPTED_TOPICS)}")
    if not isinstance(value, dict):
        raise InvalidEvent("value: expected a JSON object")
    key = record_key(topic, value) if key is None else key
    if not isinstance(key, str):
        raise InvalidEvent("key: expected the customer_id (or an anonymous_id) as a string")
    raw = codec.dumps(value)
    encoded = key.encode()
    at = int(time.time() * 1000) if now is None else now
    declared = live.catalog.traits
    decode(topic, encoded, raw, max_bytes, at, declared)
    kept = kept_only(value, declared)
    return Accepted(topic, encoded, raw if kept is value else codec.dumps(kept))


class Intake:
    """Produces accepted events, with a bound on what may wait for Kafka's ack."""

    def __init__(self, max_pending_bytes: int, ack_timeout_s: float) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.ack_timeout_s = ack_timeout_s
        self.pending_bytes = 0

    async def produce(self, events: Sequence[Accepted]) -> None:
        """Return once Kafka has every event; Refused if it cannot take them now."""
        size = sum(len(event.raw) + len(event.key) for event in events)
        if not events:
            return
        if self.pending_bytes and self.pending_bytes + size > self.max_pending_bytes:
            metrics.ingest_refused.labels("busy").inc()
            raise Refused(
                429,
                BUSY_RETRY_AFTER_S,
                f"{self.pending_bytes} bytes of events are still on their way to Kafka",
            )
        self._pending(size)
        sending = asyncio.ensure_future(_send_all(events))
        sending.add_done_callback(lambda task: self._sent(task, size))
        try:
            await asyncio.wait_for(asyncio.shield(sending), timeout=self.ack_timeout_s)
        except TimeoutError:
            metrics.ingest_refused.labels("kafka_timeout").inc()
            raise Refused(
                503,
                DOWN_RETRY_AFTER_S,
                f"Kafka did not acknowledge the events within {self.ack_timeout_s:g} s",
            ) from None
        except Exception as exc:  # the producer's own failure: Kafka refused or is gone
            metrics.ingest_refused.labels("kafka_error").inc()
            log.warning("Could not produce HTTP events: %r", exc)
            raise Refused(503, DOWN_RETRY_AFTER_S, "Kafka refused the events") from None

    def _sent(self, task: asyncio.Future[None], size: int) -> None:
        self._pending(-size)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("HTTP events failed after their request was answered: %r", exc)

    def _pending(self, change: int) -> None:
        self.pending_bytes += change
        metrics.ingest_pending_bytes.set(self.pending_bytes)


async def _send_all(events: Sequence[Accepted]) -> None:
    """On Faust's plain producer, outside any transaction: under exactly-once, an event sent in
    a worker's open transaction would be lost with it if the worker died before committing,
    after the client was told it was accepted."""
    send = app.producer.send
    topics = {name: settings.topic(name) for name in {event.topic for event in events}}
    sent = [
        await send(topics[event.topic], event.key, event.raw, None, None, None) for event in events
    ]
    await asyncio.gather(*sent)


async def dead_letter(raw: bytes, source: str, reason: str) -> None:
    """A message the tracking API refused: to dead-letters with the reason (its SDK ignores
    the answer's body, so this is where the shop developer sees it)."""
    await app.producer.send(
        settings.topic(names.DEAD_LETTERS),
        None,
        codec.dumps(
            envelope(
                raw=raw,
                key=None,
                topic=f"http:{source}",
                partition=-1,
                offset=-1,
                reason=reason,
                at=int(time.time() * 1000),
            )
        ),
        None,
        None,
        None,
    )


intake = Intake(settings.ingest_max_pending_bytes, settings.ingest_ack_timeout_seconds)
