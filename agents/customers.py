"""The customer agent: every input record updates one customer's state and publishes changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.types import TP, Message

from agents.dead_letters import dead_letter_of_step
from agents.internal_errors import POLICIES, InternalError, report, stop_unacknowledged
from agents.outbox import Outbox, entries
from agents.projection import pending_currencies, pending_mailable, pending_spend
from agents.timers import deadlines, resync
from config import names
from config.errors import InvalidEvent
from engine import identity
from engine.attribution import AttributionRule
from engine.catalog import Catalog
from engine.changes import Outcome
from engine.eligibility import Mailable
from engine.erasures import ERASED, RecentErasures
from engine.identity import AnonymousProfile
from engine.state import CustomerState
from engine.step import Step, StepResult
from segstream.app import app, live, settings, topics
from segstream.app.tables import customers
from serving import metrics
from serving.store import catch_up
from streams import codec
from streams.deadletter import late_record
from streams.events import (
    EmailSend,
    Erasure,
    Event,
    IdentityLink,
    Merge,
    ProfileUpdate,
    Purchase,
    decode,
    decode_merge,
    decode_tick,
    is_anonymous,
)
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)

step = Step(
    live.catalog, AttributionRule.of(settings.attribution_window_days, settings.attribution_by)
)


@live.on_change
def _run_catalog(catalog: Catalog) -> None:
    step.catalog = catalog


erasures = RecentErasures()
on_internal_error = POLICIES[settings.on_internal_error]
outbox = Outbox()
transitions = metrics.labelled(metrics.transitions)
triggered = metrics.labelled(metrics.triggers)
change_latency = metrics.labelled(metrics.change_latency)
events_in = metrics.labelled(metrics.events_in)
events_applied = metrics.labelled(metrics.events_applied)
events_dead_lettered = metrics.labelled(metrics.events_dead_lettered)
events_late = metrics.labelled(metrics.events_late)
identity_links = metrics.labelled(metrics.identity_links)


def outputs(outcome: Outcome, late: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """A step's output records, in order, and count them."""
    records: list[tuple[str, dict[str, Any]]] = []
    for change in outcome.changes:
        records.append((names.SEGMENT_CHANGES, change.to_dict()))
        transitions(change.segment, change.change).inc()
    for trigger in outcome.triggers:
        records.append((names.TRIGGERS, trigger.to_dict()))
        triggered(trigger.trigger).inc()
    if late is not None:
        records.append((names.LATE_EVENTS, late))
    records.extend((names.CAMPAIGN_FACTS, fact) for fact in outcome.facts)
    return records


def load(customer_id: str) -> CustomerState | None:
    stored = customers.get(customer_id)
    return step.restore(stored) if stored else None


def load_profile(key: str) -> AnonymousProfile | None:
    stored = customers.get(key)
    return AnonymousProfile.from_dict(codec.loads(stored)) if stored else None


async def settle(
    source: str,
    message: Message,
    state: CustomerState,
    result: StepResult,
    since: float,
    late: dict[str, Any] | None = None,
) -> None:
    """Store the new state, publish what changed and index the state's next deadline.
    ``since`` (epoch seconds) is when the cause happened: the causing record's Kafka
    timestamp, or the deadline for time-driven changes."""
    outcome = result.outcome
    await store(source, message, state, outputs(outcome, late), result.next_deadline)
    if outcome.changes:
        change_latency(outcome.changes[-1].cause).observe(max(time.time() - since, 0.0))
    catch_up.stored(message.partition, state.customer_id)
    resync.done(state.customer_id)


async def store(
    source: str,
    message: Message,
    state: CustomerState | AnonymousProfile,
    records: list[tuple[str, dict[str, Any]]],
    next_deadline: int | None,
) -> None:
    """Store a state with the records its step produced, and index its next deadline.

    Under exactly-once, records and state go in the transaction of the input partition, which
    commits them with its offset: every record, whatever its topic and key (Faust's transaction
    manager would pick the transaction of the record's own partition and topic group, and a
    topic no agent reads, such as late-events, is committed apart from the input). Under
    at-least-once the state is stored with its records in its outbox, and they follow the
    state's delivery (``agents.outbox``)."""
    key, partition = state.customer_id, message.partition
    state.mark_applied(source, message.offset)
    if app.in_transaction:
        for topic, record in records:
            to = record.get("customer_id", key)
            await _send(topic, to.encode(), codec.dumps(record), message.tp)
        customers[key] = step.snapshot(state)
    else:
        new = entries(source, message.offset, records)
        # The stored state carries its outputs: snapshot it only once they are in its outbox.
        state.outbox = outbox.carried(key, partition, state.outbox) + new
        stored = customers.put(key, step.snapshot(state))
        outbox.send_after(key, partition, new, stored)
    deadlines.set(partition, key, next_deadline)


def skip_applied(message: Message, state: CustomerState) -> None:
    """A record the stored state applied already (redelivered after a crash or a rebalance):
    nothing to apply, but outputs of the state not known delivered are published again."""
    if not app.in_transaction:
        outbox.carried(state.customer_id, message.partition, state.outbox)


async def _send(
    topic: str, key: bytes, value: bytes, source: TP | None = None
) -> asyncio.Future[Any]:
    """Publish a step's record; one keyed by another key than the step's names the input
    partition ``source`` whose transaction it belongs to under exactly-once."""
    if source is None:
        sent = await app.publisher.send(settings.topic(topic), key, value, None, None, None)
    else:
        sent = await app.publish_from(source, settings.topic(topic), key, value)
    sent = cast(asyncio.Future, sent)
    sent.add_done_callback(_report_failure)
    return sent


def _report_failure(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.error("A published record was not delivered: %r", sent.exception())


async def on_tick(message: Message, raw: bytes) -> None:
    for customer_id, due in decode_tick(raw):
        if is_anonymous(customer_id):
            expire(message, customer_id, due)
            continue
        state = load(customer_id)
        if state is None:
            resync.done(customer_id)
            continue
        if state.has_applied(names.CUSTOMER_TICKS, message.offset):
            skip_applied(message, state)
            continue
        result = step.on_time(state, due, catalog_at=wall_clock_ms())
        # A customer due at 0 is one to re-evaluate against changed definitions: the tick that
        # says so is the cause.
        since = due / 1000 if due else message.timestamp
        await settle(names.CUSTOMER_TICKS, message, state, result, since)


async def on_event(message: Message, topic: str, key: bytes | None, raw: bytes) -> None:
    partition, since, now = message.partition, message.timestamp, wall_clock_ms()
    decoded = decode(topic, key, raw, settings.max_event_bytes, now, live.catalog.traits)
    if isinstance(decoded, IdentityLink) or is_anonymous(decoded.customer_id):
        await on_anonymous(message, topic, decoded, raw)
        return
    customer_id = decoded.customer_id
    if erasures.predates_erasure(customer_id, decoded.ts):
        raise InvalidEvent(ERASED)
    state = load(customer_id)
    if state is not None and state.has_applied(topic, message.offset):
        skip_applied(message, state)
        return
    if isinstance(decoded, Erasure):
        erasures.add(customer_id, decoded.ts)
        if state is not None:
            outcome = step.on_erasure(state, decoded).outcome
            await erase_state(message.tp, state, decoded, outcome)
        deadlines.set(partition, customer_id, None)
        pending_spend[customer_id] = None
        pending_mailable[customer_id] = None
        log.info("Erased a customer's state (partition %d)", partition)
        return
    await apply(message, topic, state or CustomerState(customer_id), decoded, since, now)


async def apply(
    message: Message,
    topic: str,
    state: CustomerState,
    event: Event,
    since: float,
    now: int,
    source: str | None = None,
) -> None:
    """One event of the customer's (its own, or one forwarded from a linked anonymous id,
    read from ``source``)."""
    result = step.on_event(state, event, topic, catalog_at=now)
    late = None
    if result.outcome.late is not None:
        events_late(topic).inc()
        late = late_record(
            topic=topic,
            partition=message.partition,
            offset=message.offset,
            customer_id=state.customer_id,
            event_id=event.event_id,
            ts=event.ts,
            reason=result.outcome.late,
            at=wall_clock_ms(),
        )
    if isinstance(event, Purchase):
        pending_spend[state.customer_id] = state.total_spend
        pending_currencies[event.currency] += 1
    elif isinstance(event, ProfileUpdate | EmailSend):
        pending_mailable[state.customer_id] = Mailable.of(state).to_list()
    await settle(source or topic, message, state, result, since, late)


async def on_merge(message: Message, key: bytes | None, raw: bytes) -> None:
    """An identity-merges record: a visitor's events at the link, or a later event forwarded
    from a linked anonymous id. Both are the customer's from here on."""
    now = wall_clock_ms()
    merged = decode_merge(key, raw, live.catalog.traits)
    customer_id, ts = (
        (merged.customer_id, merged.ts)
        if isinstance(merged, Merge)
        else (merged[1].customer_id, merged[1].ts)
    )
    if erasures.predates_erasure(customer_id, ts):
        # The customer's erasure did not know this anonymous id yet (the merge was on its way):
        # it is erased now, as those the customer knew were.
        erased_at = cast(int, erasures.erased_at(customer_id))
        await erase_aliases(message.tp, [codec.loads(raw)["anonymous_id"]], erased_at)
        raise InvalidEvent(ERASED)
    state = load(customer_id)
    if state is not None and state.has_applied(names.IDENTITY_MERGES, message.offset):
        skip_applied(message, state)
        return
    state = state or CustomerState(customer_id)
    if isinstance(merged, Merge):
        result = step.on_merge(state, merged, catalog_at=now)
        pending_mailable[customer_id] = Mailable.of(state).to_list()
        await settle(names.IDENTITY_MERGES, message, state, result, message.timestamp)
        return
    topic, event = merged
    await apply(message, topic, state, event, message.timestamp, now, names.IDENTITY_MERGES)


async def on_anonymous(
    message: Message, topic: str, decoded: Event | Erasure | IdentityLink, raw: bytes
) -> None:
    """A record under an anonymous id: kept in the visitor's profile, or (once the id is
    linked) forwarded to its customer; a link sends the visitor's events to the customer."""
    key = decoded.key if isinstance(decoded, IdentityLink) else decoded.customer_id
    if isinstance(decoded, Erasure):  # (repeating one changes nothing: not refused as erased)
        erasures.add(key, decoded.ts)
        if key in customers:
            del customers[key]
        deadlines.set(message.partition, key, None)
        return
    if erasures.predates_erasure(key, decoded.ts):
        raise InvalidEvent(ERASED)
    profile = load_profile(key) or AnonymousProfile(key)
    if profile.has_applied(topic, message.offset):
        outbox.carried(key, message.partition, profile.outbox)
        return
    try:
        decision, sent = identity.on_record(profile, topic, decoded, codec.loads(raw))
    except InvalidEvent:
        identity_links("conflict").inc()
        raise
    if decision is not None:
        identity_links(decision).inc()
    records = [] if sent is None else [(names.IDENTITY_MERGES, sent)]
    await store(topic, message, profile, records, profile.next_deadline)


def expire(message: Message, key: str, due: int) -> None:
    """A visitor's profile (or a stub) that fell due: forgotten once it has expired."""
    profile = load_profile(key)
    if profile is None:
        return
    if identity.expired(profile, due):
        del customers[key]
        deadlines.set(message.partition, key, None)
    else:
        deadlines.set(message.partition, key, profile.next_deadline)


async def erase_state(source: TP, state: CustomerState, request: Erasure, outcome: Outcome) -> None:
    """Publish the erased customer's exits and the erasures of its anonymous ids, then delete
    the state. Under at-least-once the agent waits for their delivery first (erasures are
    rare): a crash before the deletion leaves the state, and the redelivered erasure is applied
    again."""
    key = state.customer_id.encode()
    sent = [
        await _send(topic, key, codec.dumps(record)) for topic, record in outputs(outcome, None)
    ]
    await erase_aliases(source, state.aliases, request.ts, sent)
    del customers[state.customer_id]


async def erase_aliases(
    source: TP, aliases: Iterable[str], ts: int, sent: list[asyncio.Future[Any]] | None = None
) -> None:
    """Send the erasure of each anonymous id an erased customer was linked to (to the id's
    own partition, in the transaction of ``source`` under exactly-once); under at-least-once,
    wait for their delivery and that of ``sent``."""
    sent = list(sent or ())
    for key, erasure in identity.alias_erasures(aliases, ts):
        value = codec.dumps(erasure)
        sent.append(await _send(names.CUSTOMER_ERASURES, key.encode(), value, source))
    if sent and not app.in_transaction:
        await asyncio.wait(sent)
        for record in sent:  # one not delivered: the state stays, and the policy decides
            record.result()


@app.agent(topics.customer_events)
async def customer_events(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        message = event.message
        topic = topics.base_name(message.topic)
        offsets[message.tp] = message.offset
        if topic not in names.INTERNAL_TOPICS:
            events_in(topic).inc()
        fatal = None
        # Under exactly-once no commit falls between a record's outputs and its offset.
        async with app.atomic_step():
            try:
                if topic == names.CUSTOMER_TICKS:
                    await on_tick(message, event.value)
                elif topic == names.IDENTITY_MERGES:
                    await on_merge(message, event.key, event.value)
                else:
                    await on_event(message, topic, event.key, event.value)
                    events_applied(topic).inc()
            except InvalidEvent as exc:
                events_dead_lettered(topic).inc()
                await dead_letter_of_step(event, topic, exc.reason)
            except Exception as exc:  # a bug: the policy says whether the events around it go on
                failure = InternalError(topic, message.partition, message.offset, exc)
                report(failure)
                if on_internal_error(failure):
                    events_dead_lettered(topic).inc()
                    await dead_letter_of_step(event, topic, failure.reason)
                else:
                    fatal = failure
            if fatal is None and app.in_transaction:
                # Acknowledged inside the turn, so the next commit covers its outputs and its
                # offset together (the stream acknowledges it again later: no change).
                event.ack()
        if fatal is not None:  # outside the except block: the stop logs no traceback of it
            await stop_unacknowledged(fatal, [message])


@app.timer(interval=5.0)
async def forget_delivered() -> None:
    outbox.forget_committed()


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
