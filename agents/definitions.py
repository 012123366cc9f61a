"""The live segment definitions: read at start-up (an empty topic is seeded from the configured
file), then followed, so a change runs on every worker within seconds, without a restart.

Each worker reads the whole one-partition topic itself (no consumer group: every worker needs
every definition). A change is applied once the worker has read all committed records, so the
records of one change (one transaction) take effect together; the customers this worker holds
then fall due and their ticks re-evaluate what changed (``agents.timers.reevaluate_held``).
"""

from __future__ import annotations

import contextlib
import logging
import socket

from redis.exceptions import RedisError

from agents.timers import reevaluate_held, resync
from config.errors import CatalogError
from engine.catalog import Catalog
from engine.definitions import SEEDED_KEY, Live, plan, records_for
from segstream.app import app, live, settings
from serving import metrics
from serving.store import store
from streams import codec
from streams.definitions import as_read, definitions_topic, publish, read_records
from streams.kafka_clients import committed_reader
from streams.keyed_log import follow_forever
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)


def catalog_from(definitions: Live) -> Catalog:
    """The catalog the definitions make (CatalogError says why they make none)."""
    return definitions.catalog(settings.cart_quiet_minutes * 60_000)


async def read_live() -> tuple[Live, Catalog | None]:
    """What the topic holds, and the catalog of the latest definitions on it that make one
    (None: none ever did). Definitions that make none are refused, not run: the worker starts
    on the last that did, and says why."""
    records = await read_records(settings)
    definitions, skipped = Live().after(records)
    report_skipped(skipped)
    try:
        return definitions, catalog_from(definitions)
    except CatalogError:
        pass
    walked, last_valid = Live(), None
    for record in records:  # rare: find the last definitions that made a catalog
        walked, _ = walked.after([record])
        with contextlib.suppress(CatalogError):
            last_valid = catalog_from(walked)
    return definitions, last_valid


def report_skipped(skipped: list[str]) -> None:
    for reason in skipped:
        log.warning("Skipped a segment-definitions %s", reason.rstrip("."))


async def start_up() -> None:
    """Read the live definitions before the worker consumes anything; seed an empty topic
    from the configured file. Only definitions that never made a catalog stop the start-up."""
    definitions, catalog = await read_live()
    configured = live.configured
    if not definitions.seeded and not definitions.definitions:
        bodies = {s.name: s.body for s in configured.segments}
        salt = configured.bucket_salt
        change = plan(definitions, bodies, configured.traits, bucket_salt=salt)
        at = wall_clock_ms()
        by = f"seed from {configured.source}"
        records = records_for(definitions, change, bodies, configured.traits, by, at, salt)
        await publish(settings, [*records, (SEEDED_KEY, codec.dumps({"at": at, "by": by}))])
        definitions, catalog = await read_live()
        log.info(
            "Seeded the segment definitions with the %d segments of %s",
            len(configured.segments),
            configured.source,
        )
    try:
        live.install(catalog_from(definitions), definitions, wall_clock_ms())
    except CatalogError as exc:
        if catalog is None:
            raise CatalogError(
                f"{exc} Publish a valid catalog with `segstream segments apply FILE`."
            ) from None
        live.install(catalog, definitions, wall_clock_ms())
        live.refuse(definitions, str(exc))
        metrics.definitions_refused.inc()
        log.error(
            "Running the last segment definitions that made a catalog: the newest make none "
            "(%s); `segstream segments apply FILE` publishes a valid one",
            exc,
        )
    catalog = live.catalog
    metrics.definitions_offset.set(definitions.offset)
    if catalog.digest != configured.digest:
        log.warning(
            "The live segment definitions differ from %s; the live ones run "
            "(`segstream segments apply %s` publishes the file)",
            configured.source,
            configured.source,
        )


def apply(definitions: Live) -> None:
    """Run the catalog of newly read definitions, or keep the current one if they make none."""
    metrics.definitions_offset.set(definitions.offset)
    try:
        catalog = catalog_from(definitions)
    except CatalogError as exc:
        live.refuse(definitions, str(exc))
        metrics.definitions_refused.inc()
        log.error("Kept the running segment definitions: the new ones make no catalog: %s", exc)
        return
    if live.install(catalog, definitions, wall_clock_ms()):
        due = reevaluate_held()
        log.info(
            "Segment definitions at offset %d run (%d segments, digest %s); "
            "re-evaluating %d customers",
            definitions.offset,
            len(catalog.segments),
            catalog.digest,
            due,
        )


@app.task
async def follow_definitions() -> None:
    """Follow the topic for as long as the worker runs."""
    await follow_forever("segment definitions", _follow)


async def _follow() -> None:
    topic = definitions_topic(settings)
    consumer = committed_reader(settings)
    await consumer.start()
    try:
        consumer.assign([topic])
        consumer.seek(topic, live.definitions.offset)
        definitions = live.definitions
        while True:
            batches = await consumer.getmany(topic, timeout_ms=1000)
            records = batches.get(topic, [])
            if records:
                definitions, skipped = definitions.after(as_read(records))
                report_skipped(skipped)
            stable = consumer.last_stable_offset(topic)
            caught_up = stable is None or await consumer.position(topic) >= stable
            if caught_up and definitions.offset > live.definitions.offset:
                apply(definitions)
    finally:
        await consumer.stop()


WORKER = f"{socket.gethostname()}:{settings.web_port}"
REPORT_INTERVAL_S = 2.0


@app.timer(interval=REPORT_INTERVAL_S)
async def report_definitions() -> None:
    """Say in Redis which definitions this worker runs and how far it has re-evaluated."""
    report = {
        "worker": WORKER,
        "offset": live.definitions.offset,
        "digest": live.catalog.digest,
        "segments": len(live.catalog.segments),
        "applied_at": live.applied_at,
        "error": live.error,
        "reevaluation": resync.progress(),
        "at": wall_clock_ms(),
    }
    # Redis down: the API leaves this worker out until it reports again.
    with contextlib.suppress(RedisError, OSError):
        await store.report_worker(WORKER, report)
