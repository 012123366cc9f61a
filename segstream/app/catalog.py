"""The segment catalog a worker runs: the live definitions' (``agents.definitions`` reads them
at start-up and follows their topic), swapped in place when they change. Code that evaluates
segments reads ``live.catalog`` at the moment it evaluates, never a copy taken at import."""

from __future__ import annotations

import logging
from collections.abc import Callable

from engine.catalog import Catalog
from engine.definitions import Live

log = logging.getLogger(__name__)

Listener = Callable[[Catalog], None]


class LiveCatalog:
    """The running catalog, the definitions it was built from, and why newer definitions are
    not running (None: they are)."""

    def __init__(self, configured: Catalog) -> None:
        #: The configured file's catalog: it seeds an empty definitions topic.
        self.configured = configured
        self.catalog = configured
        self.definitions = Live()
        self.applied_at: int | None = None
        self.error: str | None = None
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> Listener:
        """Call ``listener`` with each new catalog, as it starts running (a decorator)."""
        self._listeners.append(listener)
        return listener

    def install(self, catalog: Catalog, definitions: Live, at: int) -> bool:
        """Run ``catalog`` (built from ``definitions``); return whether it changed anything
        to evaluate (a new definitions offset with the same catalog changes nothing)."""
        self.definitions, self.error = definitions, None
        if catalog.digest == self.catalog.digest:
            return False
        self.catalog = catalog.following(self.catalog)
        self.applied_at = at
        for listener in self._listeners:
            listener(self.catalog)
        return True

    def refuse(self, definitions: Live, reason: str) -> None:
        """Newer definitions that make no valid catalog: keep running the current one."""
        self.definitions, self.error = definitions, reason
