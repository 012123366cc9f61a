"""The customer agent: every input event updates the customer's state and publishes changes."""

from __future__ import annotations

import logging
import time

import faust

from config import names
from engine.evaluate import apply_event
from engine.segments import DEFAULT_SEGMENTS
from engine.state import CustomerState
from segstream.app import app, settings
from segstream.errors import InvalidEvent
from streams import codec, topics
from streams.deadletter import envelope
from streams.events import decode

log = logging.getLogger(__name__)

customers = app.Table(
    names.CUSTOMERS_TABLE,
    partitions=settings.partitions,
    key_type=str,
)


async def dead_letter(event: faust.EventT, topic: str, reason: str) -> None:
    message = event.message
    log.warning(
        "Dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
    )
    await topics.dead_letters.send(
        key=message.key,
        value=codec.dumps(
            envelope(
                raw=message.value,
                key=message.key,
                topic=topic,
                partition=message.partition,
                offset=message.offset,
                reason=reason,
                at=int(time.time() * 1000),
            )
        ),
    )


@app.agent(topics.customer_events)
async def customer_events(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        topic = topics.base_name(event.message.topic)
        try:
            decoded = decode(topic, event.key, event.value)
        except InvalidEvent as exc:
            await dead_letter(event, topic, exc.reason)
            continue
        stored = customers.get(decoded.customer_id)
        state = CustomerState.from_dict(stored) if stored else CustomerState(decoded.customer_id)
        changes = apply_event(state, decoded, topic, DEFAULT_SEGMENTS)
        customers[decoded.customer_id] = state.to_dict()
        for change in changes:
            await topics.segment_changes.send(key=event.key, value=codec.dumps(change.to_dict()))
