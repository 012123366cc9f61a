"""The customer agent: every input record updates one customer's state and publishes changes."""

from __future__ import annotations

import logging
import time

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
from serving import metrics
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


def publish(key: bytes, outcome: Outcome, since: float) -> None:
    """Send the changes and triggers; ``since`` (epoch seconds) is when their cause happened:
    the causing record's Kafka timestamp, or the deadline for time-driven changes.

    They go through Faust's producer buffer, as the table's changelog records do: in order,
    without an await per record, and flushed before Faust commits the input offsets."""
    for change in outcome.changes:
        topics.segment_changes.send_soon(key=key, value=codec.dumps(change.to_dict()))
        metrics.transitions.labels(change.segment, change.change).inc()
    for trigger in outcome.triggers:
        topics.triggers.send_soon(key=key, value=codec.dumps(trigger.to_dict()))
        metrics.triggers.labels(trigger.trigger).inc()
    if outcome.changes:
        cause = "event" if outcome.changes[-1].cause_event_id else "time"
        metrics.change_latency.labels(cause).observe(max(time.time() - since, 0.0))


def load(customer_id: str) -> CustomerState | None:
    stored = customers.get(customer_id)
    return CustomerState.from_dict(codec.loads(stored)) if stored else None


def settle(
    partition: int, customer_id: str, state: CustomerState, outcome: Outcome, since: float
) -> None:
    """Publish what changed, then store the new state and index its next deadline.

    Changes go to the producer before the state that records them: after a crash under
    at-least-once, a restored state never holds a change that was not published (the event is
    processed again and its changes are published again, with the same versions)."""
    publish(customer_id.encode(), outcome, since)
    customers[customer_id] = codec.dumps_kept(state.to_dict())
    deadlines.set(partition, customer_id, state.next_deadline)
    resync.done(customer_id)


def on_tick(partition: int, raw: bytes) -> None:
    for customer_id, due in decode_tick(raw):
        state = load(customer_id)
        if state is not None:
            outcome = advance(state, due, catalog)
            settle(partition, customer_id, state, outcome, due / 1000)


def on_event(message: Message, topic: str, key: bytes | None, raw: bytes) -> None:
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
            publish(customer_id.encode(), erase(state, decoded), since)
            del customers[customer_id]
        deadlines.set(partition, customer_id, None)
        pending_spend[customer_id] = None
        log.info("Erased a customer's state (partition %d)", partition)
        return
    state = state or CustomerState(customer_id)
    outcome = apply_event(state, decoded, topic, catalog)
    state.mark_applied(topic, message.offset)
    if topic == names.PURCHASES:
        pending_spend[customer_id] = state.total_spend
    settle(partition, customer_id, state, outcome, since)


@app.agent(topics.customer_events)
async def customer_events(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        topic = topics.base_name(message.topic)
        offsets[message.tp] = message.offset
        if topic != names.CUSTOMER_TICKS:
            metrics.events_in.labels(topic).inc()
        try:
            if topic == names.CUSTOMER_TICKS:
                on_tick(message.partition, event.value)
            else:
                on_event(message, topic, event.key, event.value)
                metrics.events_applied.labels(topic).inc()
        except InvalidEvent as exc:
            metrics.events_dead_lettered.labels(topic).inc()
            dead_letter(event, topic, exc.reason)
        except Exception as exc:  # a bug must not stop the worker or the events around it
            log.exception("Failed on %s[%d]@%d", message.topic, message.partition, message.offset)
            metrics.events_dead_lettered.labels(topic).inc()
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
