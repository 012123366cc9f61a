"""The customer agent: every input record updates one customer's state and publishes changes."""

from __future__ import annotations

import logging
import time

import faust

from agents.timers import deadlines, on_customer_changelog, resync
from config import names
from engine.changes import Outcome
from engine.erasures import ERASED, RecentErasures
from engine.evaluate import advance, apply_event, erase
from engine.state import CustomerState
from segstream.app import app, catalog, settings
from segstream.errors import InvalidEvent
from streams import codec, topics
from streams.deadletter import envelope
from streams.events import Erasure, decode, decode_tick

log = logging.getLogger(__name__)

erasures = RecentErasures()

customers = app.Table(
    names.CUSTOMERS_TABLE,
    partitions=settings.partitions,
    key_type=str,
    # Values are the state's JSON bytes: a third of the memory of the decoded dict.
    value_type=bytes,
    on_changelog_event=on_customer_changelog,
)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


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
                at=wall_clock_ms(),
            )
        ),
    )


async def publish(key: bytes, outcome: Outcome) -> None:
    for change in outcome.changes:
        await topics.segment_changes.send(key=key, value=codec.dumps(change.to_dict()))
    for trigger in outcome.triggers:
        await topics.triggers.send(key=key, value=codec.dumps(trigger.to_dict()))


def load(customer_id: str) -> CustomerState | None:
    stored = customers.get(customer_id)
    return CustomerState.from_dict(codec.loads(stored)) if stored else None


async def settle(partition: int, customer_id: str, state: CustomerState, outcome: Outcome) -> None:
    """Store the new state, index its next deadline, publish what changed."""
    customers[customer_id] = codec.dumps_kept(state.to_dict())
    deadlines.set(partition, customer_id, state.next_deadline)
    resync.done(customer_id)
    await publish(customer_id.encode(), outcome)


async def on_tick(partition: int, raw: bytes) -> None:
    for customer_id, due in decode_tick(raw):
        state = load(customer_id)
        if state is not None:
            await settle(partition, customer_id, state, advance(state, due, catalog))


async def on_event(partition: int, topic: str, key: bytes | None, raw: bytes) -> None:
    decoded = decode(topic, key, raw, settings.max_event_bytes)
    customer_id = decoded.customer_id
    if erasures.predates_erasure(customer_id, decoded.ts):
        raise InvalidEvent(ERASED)
    state = load(customer_id)
    if isinstance(decoded, Erasure):
        erasures.add(customer_id, decoded.ts)
        if state is not None:
            await publish(customer_id.encode(), erase(state, decoded))
            del customers[customer_id]
        deadlines.set(partition, customer_id, None)
        log.info("Erased a customer's state (partition %d)", partition)
        return
    state = state or CustomerState(customer_id)
    await settle(partition, customer_id, state, apply_event(state, decoded, topic, catalog))


@app.agent(topics.customer_events)
async def customer_events(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        topic = topics.base_name(message.topic)
        try:
            if topic == names.CUSTOMER_TICKS:
                await on_tick(message.partition, event.value)
            else:
                await on_event(message.partition, topic, event.key, event.value)
        except InvalidEvent as exc:
            await dead_letter(event, topic, exc.reason)
