"""The serving store catches up with the customers table by itself, per partition, while events
flow: after a restart (or a rebalance) the customers restored on this worker's active partitions
are checked, and a partition with no in-step mark in Redis (a new, flushed or restarted store)
has every customer it holds checked. A check writes each customer whose stored version Redis
lacks, with the script `segstream rebuild` uses (``RedisStore.sync``: version-guarded, so the
projection's writes and these meet in any order).

The in-step mark of a partition is set to "checking" when a full check begins and to "done" only
if it is still "checking" at the end: a flush in between removes it and the check is redone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import faust
from faust.tables.manager import TableManager
from redis.exceptions import RedisError

from agents.projection import store
from config import names
from engine.state import CustomerState
from segstream.app import app, settings
from segstream.tuning import TunedConsumer
from serving import metrics
from streams import codec

if TYPE_CHECKING:  # rocksdict is an optional extra
    from faust.stores.rocksdb import Store as RocksStore

log = logging.getLogger(__name__)

CHUNK = 500  # customers per Redis call; the loop gets a turn between chunks
CHECK_INTERVAL_S = 1.0
LOG_EVERY = 50_000


@dataclass
class CatchUp:
    """Which customers this worker holds per partition, which it still has to check, and the
    progress the health check reports."""

    held: dict[int, set[str]] = field(default_factory=dict)
    pending: dict[int, set[str]] = field(default_factory=dict)
    full: set[int] = field(default_factory=set)  # partitions under a full check
    # Customers Redis held a newer change of than the table: the table's version then.
    stale_at: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    total: int = 0
    repaired: int = 0

    def stored(self, partition: int, customer_id: str) -> None:
        """A customer's state was written on this worker (live)."""
        self.held.setdefault(partition, set()).add(customer_id)

    def restored(self, partition: int, customer_id: str, active: bool, present: bool) -> None:
        """A changelog record was restored (active or standby partition)."""
        if present:
            self.held.setdefault(partition, set()).add(customer_id)
        else:
            self.held.get(partition, set()).discard(customer_id)
        if active:
            self.pending.setdefault(partition, set()).add(customer_id)

    def keep_only(self, active: set[int], standby: set[int]) -> None:
        """Forget the work and customers of partitions that moved to another worker."""
        for partition in [p for p in self.pending if p not in active]:
            del self.pending[partition]
        self.full &= active
        for partition in [p for p in self.held if p not in active | standby]:
            del self.held[partition]

    def still_stale(self, states: list[CustomerState]) -> set[str]:
        """Customers found stale before whose table state has not moved since: the newer change
        Redis holds is not in the table's history (an erased customer's earlier life), so the
        table's state is written over it."""
        return {s.customer_id for s in states if self.stale_at.get(s.customer_id) == s.version}

    def found_stale(self, states: list[CustomerState], stale: list[str]) -> None:
        found = set(stale)
        for state in states:
            if state.customer_id in found:
                self.stale_at[state.customer_id] = state.version
            else:
                self.stale_at.pop(state.customer_id, None)

    def start_full(self, partitions: set[int], customers_of: Callable[[int], set[str]]) -> None:
        for partition in partitions - self.full:
            self.pending[partition] = customers_of(partition)
        self.full |= partitions


catch_up = CatchUp()


async def health() -> dict[str, Any]:
    """What /health shows of the store: ok, or degraded with the reason and the progress."""
    if rebalancing():
        return degraded("the worker is taking its partitions; the serving store is checked next")
    active = table_partitions()[0]
    try:
        unmarked = active - await store.partitions_in_step(active)
    except (RedisError, OSError):
        return degraded("Redis is unreachable: the serving store is behind the customers table")
    if unmarked or catch_up.pending:
        return degraded("the serving store is catching up with the customers table")
    return {"status": "ok"}


def degraded(reason: str) -> dict[str, Any]:
    progress = {"checked": catch_up.checked, "of": catch_up.total, "repaired": catch_up.repaired}
    return {"status": "degraded", "reason": reason, "store_catch_up": progress}


def rebalancing() -> bool:
    """Partitions are not settled: not assigned yet, restoring, or being given up."""
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()
    return (
        not recovered
        or app.rebalancing  # from the revoke listener until the tables are recovered again
        or app.in_recovery
        or cast(TunedConsumer, app.consumer).giving_up_partitions
    )


def customers_table() -> faust.Table:
    """The customers table (agents.customers imports this module, so it is looked up)."""
    return cast(faust.Table, app.tables[names.CUSTOMERS_TABLE])


def table_partitions() -> tuple[set[int], set[int]]:
    """The customers table's active and standby partitions on this worker."""
    changelog = customers_table().changelog_topic.get_topic_name()
    assignor = app.assignor
    active = {tp.partition for tp in assignor.assigned_actives() if tp.topic == changelog}
    standby = {tp.partition for tp in assignor.assigned_standbys() if tp.topic == changelog}
    return active, standby


def held_customers(partition: int) -> set[str]:
    """Every customer the table holds in the partition. The RocksDB store keeps one database per
    partition and restores only the changelog past its local offset, so the customers it had
    are read from that database; the memory store restores them all, so ``held`` knows them."""
    if settings.store != "rocksdb://":
        return set(catch_up.held.get(partition, ()))
    rocks = cast("RocksStore", customers_table().data)
    database = rocks._db_for_partition(partition)
    return {cast(str, rocks._decode_key(key)) for key in rocks._visible_keys(database)}


def stored_states(partition: int, customer_ids: list[str]) -> list[CustomerState]:
    """The customers' states in the table; those no longer in it (erased) are forgotten."""
    table = customers_table()
    states = []
    for customer_id in customer_ids:
        raw = table.get(customer_id)
        if raw:
            states.append(CustomerState.from_dict(codec.loads(raw)))
        else:
            catch_up.held.get(partition, set()).discard(customer_id)
    return states


async def check(partition: int) -> bool:
    """Check the partition's pending customers chunk by chunk; True once none is left. A
    rebalance cuts a check short; customers Redis has a newer change of than the table's state
    read (applied meanwhile) stay pending for the next run, which reads the table again."""
    pending = catch_up.pending[partition]
    stale: set[str] = set()
    try:
        while pending:
            if rebalancing() or partition not in table_partitions()[0]:
                return False
            chunk = list(itertools.islice(pending, CHUNK))
            states = stored_states(partition, chunk)
            result = await store.sync(states, force=catch_up.still_stale(states))
            pending.difference_update(chunk)  # only now: a Redis error leaves the chunk pending
            stale.update(result.stale)
            catch_up.found_stale(states, result.stale)
            catch_up.checked += len(chunk)
            catch_up.repaired += result.repaired
            metrics.store_customers_checked.inc(len(chunk))
            metrics.store_customers_repaired.inc(result.repaired)
            if catch_up.checked % LOG_EVERY < len(chunk):
                log.info(
                    "Serving store catch-up: %d of %d customers checked, %d repaired",
                    catch_up.checked,
                    catch_up.total,
                    catch_up.repaired,
                )
            await asyncio.sleep(0)
    finally:
        pending |= stale  # stale customers, and a Redis error's: read again at the next run
    if pending:
        return False
    del catch_up.pending[partition]
    return True


async def catch_up_once() -> None:
    """One run: find the partitions to check, check them, and mark those found in step."""
    if rebalancing():
        return
    active, standby = table_partitions()
    catch_up.keep_only(active, standby)
    unmarked = active - await store.partitions_in_step(active)
    if fresh := unmarked - catch_up.full:
        await store.begin_check(fresh)
        log.info(
            "Serving store: %d partitions not marked in step; checking all their customers",
            len(fresh),
        )
        catch_up.start_full(fresh, held_customers)
    if not catch_up.pending:
        return
    if not catch_up.total:  # a new catch-up (not one cut short): count afresh
        catch_up.checked = catch_up.repaired = 0
    catch_up.total = catch_up.checked + sum(len(p) for p in catch_up.pending.values())
    started = time.monotonic()
    for partition in sorted(catch_up.pending):
        if rebalancing():
            return
        if await check(partition) and partition in catch_up.full:
            catch_up.full.discard(partition)
            await store.mark_in_step([partition])
    if catch_up.pending:  # stale customers, or a partition that moved: the next run goes on
        return
    log.info(
        "Serving store in step: %d customers checked, %d repaired (%.1f s)",
        catch_up.checked,
        catch_up.repaired,
        time.monotonic() - started,
    )
    catch_up.total = 0


@app.timer(interval=CHECK_INTERVAL_S)
async def keep_store_in_step() -> None:
    try:
        await catch_up_once()
    except (RedisError, OSError) as exc:
        log.warning("Serving store catch-up waits for Redis: %s", exc)
