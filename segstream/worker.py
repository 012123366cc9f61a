"""Run the Faust worker: create the topics, load the agents, hand over to Faust."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterator

import uvloop

from config import Settings
from config.errors import ConfigError
from config.settings import env_name
from segstream.app import app, live, settings
from segstream.faust_patches.worker import GracefulStopWorker
from segstream.gc_policy import collect_less
from streams.layout import ensure_topics

log = logging.getLogger(__name__)


class SegmentWorker(GracefulStopWorker):
    """Faust's worker, saying once at start-up what it runs against (never secrets)."""

    settings: Settings

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        # What is alive once the worker is ready (modules, the catalog, Faust's services) lives
        # as long as the worker.
        collect_less()
        conf = self.settings
        log.info(
            "segstream worker %s ready: Kafka %s, %d partitions, %s, web on %s:%d, "
            "segment definitions at offset %d (%d segments, digest %s)",
            conf.group_id,
            conf.kafka_bootstrap,
            conf.partitions,
            conf.processing_guarantee,
            conf.web_host,
            conf.web_port,
            live.definitions.offset,
            len(live.catalog.segments),
            live.catalog.digest,
        )


def make_data_dir(conf: Settings) -> None:
    """Create the worker's state directory with its parents (Faust makes only the last one, so
    a fresh clone's default ``var/worker`` stopped the worker at start-up)."""
    try:
        conf.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Bad setting in the environment: {env_name('data_dir')}={str(conf.data_dir)!r}: "
            f"cannot create it ({exc.strerror})."
        ) from None


START_UP_FORMAT = "[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s"  # Faust's


@contextlib.contextmanager
def start_up_logging(level: str) -> Iterator[None]:
    """Log what happens before Faust starts (and sets up logging) as Faust then logs."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")
    )
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


# What a worker runs: every module of agents/ and the HTTP routes.
WORKER_MODULES = (
    "agents.customers",
    "agents.dead_letters",
    "agents.definitions",
    "agents.internal_errors",
    "agents.outbox",
    "agents.projection",
    "agents.reports",
    "agents.store_sync",
    "agents.timers",
    "agents.webhooks",
    "serving.api",
    "serving.audience",
    "serving.reports",
    "serving.subscriptions",
)


def run_worker() -> None:
    """Blocks until the worker is stopped (SIGINT or SIGTERM shut it down cleanly)."""
    make_data_dir(settings)
    # uvloop: the same asyncio API with a faster event loop, and Faust runs one loop
    # iteration after another per event.
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    for module in WORKER_MODULES:  # each registers its agents, timers or routes on the app
        importlib.import_module(module)
    from agents.definitions import start_up

    with start_up_logging(settings.log_level):  # Faust sets up its logging when it starts
        loop.run_until_complete(start_up())  # the live segment definitions, before any event

    worker = SegmentWorker(app, loglevel=settings.log_level, loop=loop)
    worker.settings = settings
    worker.execute_from_commandline()
