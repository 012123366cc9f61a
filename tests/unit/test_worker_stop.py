"""segstream.faust_patches.worker: no terminal spinner, and a graceful stop with a reason."""

from __future__ import annotations

import asyncio
import logging

import faust
import pytest

from config.errors import InternalFailure
from segstream.faust_patches.app import SegstreamApp
from segstream.faust_patches.worker import GracefulStopWorker


def test_without_a_spinner_faust_leaves_the_root_logger_at_its_level() -> None:
    loop = asyncio.new_event_loop()
    try:
        worker = GracefulStopWorker(faust.App("t-spinner"), loglevel="warning", loop=loop)
        assert worker.spinner is None
        logger = logging.getLogger("t-spinner")
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.WARNING)
        worker.on_setup_root_logger(logger, logging.WARNING)
        # Faust's spinner would have set it to DEBUG: a log record built per debug call.
        assert logger.level == logging.WARNING
    finally:
        loop.close()


def test_an_app_outside_a_worker_raises_the_reason_it_was_asked_to_stop_for() -> None:
    reason = InternalFailure("Stopped on an internal error (KeyError) at purchases[0]@3.")
    with pytest.raises(InternalFailure) as raised:
        SegstreamApp("t-stop").stop_worker(reason)
    assert raised.value is reason
