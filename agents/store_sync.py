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

from redis.exceptions import RedisError

from engine.eligibility import Mailable
from engine.state import CustomerState
from engine.step import Step
from segstream.app import app
from segstream.app.partitions import rebalancing, table_partitions
from segstream.app.tables import customers
from serving import metrics
from serving.store import catch_up, held_customers, store

log = logging.getLogger(__name__)

CHUNK = 500  # customers per Redis call; the loop gets a turn between chunks
CHECK_INTERVAL_S = 1.0
LOG_EVERY = 50_000


def stored_states(partition: int, customer_ids: list[str]) -> list[CustomerState]:
    """The customers' states in the table; those no longer in it (erased) are forgotten."""
    states = []
    for customer_id in customer_ids:
        raw = customers.get(customer_id)
        if raw:
            states.append(Step.restore(raw))
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
            # Send eligibility too: a worker that died before its once-a-second write lost it.
            await store.set_mailable({s.customer_id: Mailable.of(s).to_list() for s in states})
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
