"""How far a worker's re-evaluation against changed segment definitions has come: the
customers still to re-evaluate, for the log, the metrics, the API and the demo."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from serving import metrics

log = logging.getLogger(__name__)


class CatalogResync:
    """Counts the customers still to re-evaluate after a definition change, for the log, the
    metrics and the API (the demo shows its progress from them)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.pending: dict[str, int] = {}  # customer -> its partition
        self.total = 0
        self.clock = clock
        self.started = clock()

    def mark(self, customer_id: str, stale: bool, partition: int) -> None:
        """Record what the customer's latest restored state says (changelogs repeat keys)."""
        if stale and customer_id not in self.pending:
            if not self.pending:  # a new re-evaluation: count from here
                self.total, self.started = 0, self.clock()
            self.pending[customer_id] = partition
            self.total += 1
        elif not stale and customer_id in self.pending:
            del self.pending[customer_id]
            self.total -= 1

    def keep_only(self, active: set[int]) -> None:
        """Forget the customers of partitions that moved to another worker (it re-evaluates
        them), so this worker's progress can end."""
        moved = [c for c, partition in self.pending.items() if partition not in active]
        for customer_id in moved:
            del self.pending[customer_id]
        self.total -= len(moved)

    def done(self, customer_id: str) -> None:
        if not self.pending:
            return
        self.pending.pop(customer_id, None)
        finished = self.total - len(self.pending)
        metrics.catalog_reevaluation_done.set(finished)
        if not self.pending or finished % 10_000 == 0:
            log.info(
                "Re-evaluated %d of %d customers against the changed segment definitions",
                finished,
                self.total,
            )

    def progress(self) -> dict[str, Any]:
        """Customers re-evaluated of how many, per second, and the seconds still to go."""
        finished = self.total - len(self.pending)
        elapsed = max(self.clock() - self.started, 1e-3)
        rate = finished / elapsed
        left = len(self.pending)
        return {
            "done": finished,
            "total": self.total,
            "per_second": round(rate, 1),
            "eta_seconds": 0 if not left else (round(left / rate, 1) if rate else None),
        }
