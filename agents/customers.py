"""The customer agent: every input record updates one customer's state and publishes changes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust
from faust.types import TP, Message

from agents.projection import pending_spend
from agents.timers import deadlines, on_customer_changelog, resync
from config import names
from engine.changes import Outcome
from engine.erasures import ERASED, RecentErasures
from engine.evaluate import advance, apply_event, erase
from engine.state import CustomerState
from segstream.app import app, catalog, settings
from segstream.errors import InvalidEvent
from segstream.tuning import publisher
from serving import metrics
from streams import codec, topics
from streams.deadletter import envelope, late_record
from streams.events import Erasure, decode, decode_tick

log = logging.getLogger(__name__)

erasures = RecentErasures()
transitions = metrics.labelled(metrics.transitions)
triggered = metrics.labelled(metrics.triggers)
change_latency = metrics.labelled(metrics.change_latency)
events_in = metrics.labelled(metrics.events_in)
events_applied = metrics.labelled(metrics.events_applied)
events_dead_lettered = metrics.labelled(metrics.events_dead_lettered)
events_late = metrics.labelled(metrics.events_late)
CHANGES = settings.topic(names.SEGMENT_CHANGES)
TRIGGERS = settings.topic(names.TRIGGERS)
LATE_EVENTS = settings.topic(names.LATE_EVENTS)

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


async def publish(key: bytes, outcome: Outcome, since: float) -> None:
    """Send the changes and triggers; ``since`` (epoch seconds) is when their cause happened:
    the causing record's Kafka timestamp, or the deadline for time-driven changes.

    They go straight to the producer Faust's topics publish through: the one Faust flushes
    before it commits the input offsets, and under exactly-once the transaction manager.
    (``send_soon`` would route each through Faust's producer buffer, a future and a queue per
    record, for nothing here: this agent can await.) The producer waits only when its batches
    are full."""
    for change in outcome.changes:
        await _send(CHANGES, key, codec.dumps(change.to_dict()))
        transitions(change.segment, change.change).inc()
    for trigger in outcome.triggers:
        await _send(TRIGGERS, key, codec.dumps(trigger.to_dict()))
        triggered(trigger.trigger).inc()
    if outcome.changes:
        cause = "event" if outcome.changes[-1].cause_event_id else "time"
        change_latency(cause).observe(max(time.time() - since, 0.0))


async def _send(topic: str, key: bytes, value: bytes) -> None:
    sent = await publisher(app).send(topic, key, value, None, None, None)
    cast(asyncio.Future, sent).add_done_callback(_report_failure)


def _report_failure(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.error("A published record was not delivered: %r", sent.exception())


def load(customer_id: str) -> CustomerState | None:
    stored = customers.get(customer_id)
    return CustomerState.from_dict(codec.loads(stored)) if stored else None


async def settle(
    partition: int, customer_id: str, state: CustomerState, outcome: Outcome, since: float
) -> None:
    """Publish what changed, then store the new state and index its next deadline.

    Changes go to the producer before the state that records them. That orders what the
    producer is given, not what reaches the broker first: under at-least-once a crash can still
    lose a change whose state record was delivered (open, see the README)."""
    await publish(customer_id.encode(), outcome, since)
    customers[customer_id] = codec.dumps_kept(state.to_dict())
    deadlines.set(partition, customer_id, state.next_deadline)
    resync.done(customer_id)


async def on_tick(partition: int, raw: bytes) -> None:
    for customer_id, due in decode_tick(raw):
        state = load(customer_id)
        if state is not None:
            outcome = advance(state, due, catalog)
            await settle(partition, customer_id, state, outcome, due / 1000)


async def on_event(message: Message, topic: str, key: bytes | None, raw: bytes) -> None:
    partition, since = message.partition, message.timestamp
    decoded = decode(topic, key, raw, settings.max_event_bytes, wall_clock_ms())
    customer_id = decoded.customer_id
    if erasures.predates_erasure(customer_id, decoded.ts):
        raise InvalidEvent(ERASED)
    state = load(customer_id)
    if state is not None and state.has_applied(topic, message.offset):
        return  # redelivered after a crash or a rebalance: applied once already
    if isinstance(decoded, Erasure):
        erasures.add(customer_id, decoded.ts)
        if state is not None:
            await publish(customer_id.encode(), erase(state, decoded), since)
            del customers[customer_id]
        deadlines.set(partition, customer_id, None)
        pending_spend[customer_id] = None
        log.info("Erased a customer's state (partition %d)", partition)
        return
    state = state or CustomerState(customer_id)
    outcome = apply_event(state, decoded, topic, catalog)
    state.mark_applied(topic, message.offset)
    if outcome.late is not None:
        events_late(topic).inc()
        side_record = late_record(
            topic=topic,
            partition=partition,
            offset=message.offset,
            customer_id=customer_id,
            event_id=decoded.event_id,
            ts=decoded.ts,
            reason=outcome.late,
            at=wall_clock_ms(),
        )
        await _send(LATE_EVENTS, customer_id.encode(), codec.dumps(side_record))
    if topic == names.PURCHASES:
        pending_spend[customer_id] = state.total_spend
    await settle(partition, customer_id, state, outcome, since)


@app.agent(topics.customer_events)
async def customer_events(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        topic = topics.base_name(message.topic)
        offsets[message.tp] = message.offset
        if topic != names.CUSTOMER_TICKS:
            events_in(topic).inc()
        try:
            if topic == names.CUSTOMER_TICKS:
                await on_tick(message.partition, event.value)
            else:
                await on_event(message, topic, event.key, event.value)
                events_applied(topic).inc()
        except InvalidEvent as exc:
            events_dead_lettered(topic).inc()
            dead_letter(event, topic, exc.reason)
        except Exception as exc:  # a bug must not stop the worker or the events around it
            log.exception("Failed on %s[%d]@%d", message.topic, message.partition, message.offset)
            events_dead_lettered(topic).inc()
            dead_letter(event, topic, f"internal error: {type(exc).__name__}")


# The last offset processed per input partition, for the lag gauge.
offsets: dict[TP, int] = {}


@app.timer(interval=5.0)
async def measure_lag() -> None:
    """Records behind per input topic, over the partitions this worker owns now (a rebalance
    can take any of them away between two runs)."""
    assigned = app.consumer.assignment()
    for tp in [tp for tp in offsets if tp not in assigned]:
        del offsets[tp]
    lag = {topics.base_name(tp.topic): 0 for tp in offsets}
    for tp, offset in list(offsets.items()):
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            lag[topics.base_name(tp.topic)] += max(highwater - offset - 1, 0)
    for name, behind in lag.items():
        metrics.consumer_lag.labels(name).set(behind)
