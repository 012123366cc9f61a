"""Time-driven transitions: a timer turns due deadlines into ticks for the customer agent.

The deadlines live in the customers table (changelog-backed); this in-memory index of them is
rebuilt from the changelog whenever a worker recovers its partitions, so a restarted worker
still fires every deadline, and fires it once (a tick for a deadline already handled changes
nothing). A customer whose memberships were evaluated against other segment definitions is
due at once: that is how a changed catalog re-evaluates every stored customer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any, cast

import faust

from config import names
from engine.deadlines import DeadlineIndex
from segstream.app import app, live, settings
from segstream.app.partitions import rebalancing, table_partitions
from segstream.app.tables import on_restored
from serving import metrics
from serving.resync import CatalogResync
from serving.store import catch_up, held_customers
from streams import codec
from streams.events import TICK_BATCH, is_anonymous

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.25

deadlines = DeadlineIndex()


resync = CatalogResync()


@on_restored
async def on_customer_changelog(event: faust.EventT) -> None:
    """Called by Faust for each changelog record it restores, standby copies included: index
    the customer's deadline. A standby partition's deadlines wait in the index (the timer fires
    only those of active partitions) for the moment the partition is promoted: with the RocksDB
    store Faust then restores only what the standby copy has not read yet, so a deadline indexed
    only on active restore was lost with the worker that had it (carts on a promoted partition
    never fell due)."""
    message = event.message
    metrics.changelog_restored.inc()
    if message.key is None:
        return
    active = message.tp not in app.assignor.assigned_standbys()
    customer_id = codec.loads(message.key)
    if is_anonymous(customer_id):  # a visitor's profile: its only deadline is its expiry
        stored = codec.loads(message.value) if message.value is not None else {}
        deadlines.set(message.partition, customer_id, stored.get("next_deadline"))
        return
    catch_up.restored(message.partition, customer_id, active, message.value is not None)
    if message.value is None:
        if active:
            resync.mark(customer_id, stale=False, partition=message.partition)
        deadlines.set(message.partition, customer_id, None)
        return
    state = codec.loads(message.value)
    stale = state.get("catalog_digest") != live.catalog.digest
    if active:
        resync.mark(customer_id, stale, message.partition)
    deadlines.set(message.partition, customer_id, 0 if stale else state.get("next_deadline"))


def reevaluate_held() -> int:
    """Changed definitions: every customer this worker holds falls due now, and its tick
    re-evaluates what changed (while events keep flowing). Standby copies too: their deadlines
    wait in the index for a promotion, which restores only the changelog's tail. Returns the
    customers of the active partitions (those re-evaluated here and now)."""
    active, standby = table_partitions()
    count = 0
    for partition in active | standby:
        for customer_id in held_customers(partition):
            deadlines.set(partition, customer_id, 0)
            if partition in active:
                resync.mark(customer_id, stale=True, partition=partition)
                count += 1
    metrics.catalog_reevaluation_total.set(resync.total)
    return count


def active_partitions() -> set[int]:
    source = settings.topic(names.PURCHASES)
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == source}


@app.timer(interval=TICK_INTERVAL_S)
async def fire_due_deadlines() -> None:
    """One tick per partition (per TICK_BATCH customers) names everyone who fell due."""
    if app.giving_up_partitions:
        return  # a rebalance: the partitions' owner fires their deadlines once it is settled
    now = int(time.time() * 1000)
    due = deadlines.pop_due(now, active_partitions())
    by_partition: dict[int, list[list[Any]]] = {}
    for partition, customer_id, at in due:
        by_partition.setdefault(partition, []).append([customer_id, at])
    # Ticks are inputs, and idempotent: they go outside any transaction. Under exactly-once a
    # tick inside one stayed invisible until the worker next committed input offsets, which a
    # quiet stream does not do (a cart that fell due in a quiet moment never fired).
    ticks = settings.topic(names.CUSTOMER_TICKS)
    chunks = [
        (partition, customers[start : start + TICK_BATCH])
        for partition, customers in by_partition.items()
        for start in range(0, len(customers), TICK_BATCH)
    ]
    for index, (partition, chunk) in enumerate(chunks):
        try:
            sent = await app.producer.send(
                ticks, None, codec.dumps({"due": chunk}), partition, None, None
            )
        except Exception as exc:
            for unsent in chunks[index:]:
                keep(*unsent)
            log.warning("Could not send ticks; they go at the next run: %r", exc)
            return
        cast(asyncio.Future, sent).add_done_callback(partial(keep_if_lost, partition, chunk))
    if len(due) >= 1000:
        log.info("Fired %d due deadlines (%d scheduled)", len(due), len(deadlines))


def keep(partition: int, chunk: list[list[Any]]) -> None:
    """Put a tick's deadlines back in the index: the next run fires them again."""
    for customer_id, at in chunk:
        deadlines.set(partition, customer_id, at)


def keep_if_lost(partition: int, chunk: list[list[Any]], sent: asyncio.Future[Any]) -> None:
    """A tick the broker never took: its deadlines go back in the index."""
    if sent.cancelled() or sent.exception() is not None:
        keep(partition, chunk)
        log.warning("A tick was not delivered; its %d deadlines are fired again", len(chunk))


@app.timer(interval=5.0)
async def measure_deadlines() -> None:
    if not rebalancing():  # customers of partitions that moved are re-evaluated by their owner
        resync.keep_only(active_partitions())
    metrics.catalog_reevaluation_total.set(resync.total)
    metrics.deadlines_scheduled.set(len(deadlines))
    metrics.deadlines_overdue.set(deadlines.count_due(int(time.time() * 1000)))
