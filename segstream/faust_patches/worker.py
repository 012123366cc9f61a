"""Faust's worker without its terminal spinner, and with a graceful stop that names a reason.

- The spinner: Faust's ``Worker.__init__`` builds one, and ``on_setup_root_logger`` then sets
  the root logger to DEBUG whenever the log level is WARNING or above, so every debug call on
  the per-event path built a log record (about a tenth of a worker's time). A worker logs to
  files and journals, not a terminal.
- The stop: ``App.crash`` marks every service crashed at once, so the consumer's thread stopped
  serving before the last commit, which then waited for it for ever (a worker stopping on an
  internal error hung). ``stop_on`` stops the way SIGTERM does, every service in order, and the
  process then exits 1 with the reason.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, NoReturn

import faust

from config.errors import SegstreamError

log = logging.getLogger(__name__)


class GracefulStopWorker(faust.Worker):
    """Faust's worker with no spinner, which an agent can stop with a reason (``stop_on``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
        self.stop_reason: SegstreamError | None = None

    def stop_on(self, reason: SegstreamError) -> None:
        """Stop as SIGTERM does; the process then exits 1 naming ``reason``."""
        log.error("Stopping the worker: %s", reason)
        self.stop_reason = reason
        self._schedule_shutdown(signal.SIGTERM)

    def execute_from_commandline(self) -> NoReturn:
        try:
            super().execute_from_commandline()
        except SystemExit as exit:
            if exit.code in (0, None) and self.stop_reason is not None:
                log.critical("Worker stopped: %s", self.stop_reason)
                raise SystemExit(1) from None
            raise
