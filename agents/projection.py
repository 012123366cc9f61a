"""The projection agent: keeps the Redis membership store in step with segment-changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import faust
from redis.exceptions import RedisError

from agents.dead_letters import dead_letter
from agents.internal_errors import POLICIES, InternalError, report, stop_unacknowledged
from config import names
from config.errors import InvalidEvent
from segstream.app import app, live, settings, topics
from serving import metrics
from serving.store import store
from streams.events import decode_change

log = logging.getLogger(__name__)

BATCH = 500
BATCH_WITHIN_S = 0.05
MAX_BACKOFF_S = 5.0

on_internal_error = POLICIES[settings.on_internal_error]

# Lifetime spend per customer, written to Redis every second (None: the customer was erased),
# and the purchases per currency since (the unit the dashboard shows revenue in).
pending_spend: dict[str, float | None] = {}
pending_currencies: Counter[str] = Counter()
# What send eligibility needs of customers whose consent, time zone or sends changed (None: the
# customer was erased), written with the spend.
pending_mailable: dict[str, list[Any] | None] = {}


async def apply_until_done(write: Callable[[], Awaitable[Any]], what: str) -> bool:
    """Write a batch (``what`` names it), waiting out a Redis outage: the store catches up when
    Redis is back. False if the worker gives its partitions up first (a rebalance or a stop):
    the batch is then left to whoever reads these partitions next, since waiting would hold up
    the handover until Redis returns."""
    backoff = 0.2
    while True:
        try:
            await write()
            if backoff > 0.2:
                log.warning("Redis is reachable again; the membership store is catching up")
            return True
        except (RedisError, OSError) as exc:
            metrics.redis_errors.inc()
            if backoff == 0.2:
                log.warning("Redis unreachable (%s); retrying, %s wait", exc, what)
            if app.giving_up_partitions:
                log.warning(
                    "Redis still unreachable as partitions are given up: %s are left to their "
                    "next reader",
                    what,
                )
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


def checked(events: list[faust.EventT]) -> tuple[list[faust.EventT], list[dict[str, Any]]]:
    """The batch's well-formed changes; the others go to dead-letters with the reason (only
    segstream writes segment-changes, but anyone with access to the topic can)."""
    good, changes = [], []
    for event in events:
        try:
            changes.append(decode_change(event.value))
            good.append(event)
        except InvalidEvent as exc:
            dead_letter(event, names.SEGMENT_CHANGES, exc.reason)
    return good, changes


async def _apply(changes: list[dict[str, Any]]) -> None:
    metrics.redis_writes.inc(await store.apply(changes))


@app.agent(topics.segment_changes)
async def project(stream: faust.StreamT[bytes]) -> None:
    # Acknowledged once applied: a batch left unapplied keeps its offsets uncommitted.
    async for batch in cast(faust.Stream, stream).noack_take(BATCH, within=BATCH_WITHIN_S):
        events = cast(list[faust.EventT], batch)
        good, changes = checked(events)
        try:
            applied = await apply_until_done(
                partial(_apply, changes), f"{len(changes)} segment changes"
            )
        except Exception as exc:  # a bug: the policy says whether the changes around it go on
            first = events[0].message  # the batch's first record names where it failed
            failure = InternalError(names.SEGMENT_CHANGES, first.partition, first.offset, exc)
            report(failure)
            if not on_internal_error(failure):
                await stop_unacknowledged(failure, [event.message for event in events])
            for event in good:
                dead_letter(event, names.SEGMENT_CHANGES, failure.reason)
            applied = True
        if applied:
            for event in events:
                await stream.ack(event)
        else:
            app.let_go([event.message for event in events])


@app.timer(interval=settings.size_sample_seconds)
async def sample_segment_sizes() -> None:
    try:
        await store.sample_sizes(
            live.catalog.names(), int(time.time() * 1000), settings.size_sample_seconds
        )
    except (RedisError, OSError) as exc:
        log.warning("Could not sample segment sizes: %s", exc)


@app.timer(interval=1.0)
async def flush_mailable() -> None:
    if not pending_mailable:
        return
    batch = dict(pending_mailable)
    pending_mailable.clear()
    try:
        await store.set_mailable(batch)
    except (RedisError, OSError) as exc:
        metrics.redis_errors.inc()
        for customer_id, value in batch.items():  # keep them for the next try
            pending_mailable.setdefault(customer_id, value)
        log.warning("Could not record send eligibility: %s", exc)


@app.timer(interval=1.0)
async def flush_spend() -> None:
    if not pending_spend:
        return
    batch, currencies = dict(pending_spend), dict(pending_currencies)
    pending_spend.clear()
    pending_currencies.clear()
    try:
        await store.set_spend(batch)
        await store.count_currencies(currencies)
    except (RedisError, OSError) as exc:
        metrics.redis_errors.inc()
        for customer_id, total in batch.items():  # keep them for the next try
            pending_spend.setdefault(customer_id, total)
        pending_currencies.update(currencies)
        log.warning("Could not record spend: %s", exc)
