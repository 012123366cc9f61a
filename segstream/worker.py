"""Run the Faust worker: create the topics, load the agents, hand over to Faust."""

from __future__ import annotations

import asyncio
import logging

import faust

from streams.layout import ensure_topics

log = logging.getLogger(__name__)


def run_worker() -> None:
    """Blocks until the worker is stopped (SIGINT or SIGTERM shut it down cleanly)."""
    from segstream.app import app, settings  # reads the settings: a bad one stops here

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    import agents.customers  # noqa: F401 - registers the agent and its table on the app

    worker = faust.Worker(app, loglevel=settings.log_level, loop=loop)
    worker.execute_from_commandline()
