"""How a definitions change rolls out over the workers: each reports (through Redis) the
definitions it runs and its re-evaluation's progress; the API adds them up and says whether
the workers agree."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A worker that has not reported for this long is left out (stopped, or cut off from Redis).
STALE_MS = 15_000


def rollout(reports: Iterable[dict[str, Any]], now: int) -> dict[str, Any]:
    """The fresh reports, whether they run the same definitions, and the progress in total."""
    fresh = [r for r in reports if now - r["at"] <= STALE_MS]
    progress = [r["reevaluation"] for r in fresh]
    etas = [p["eta_seconds"] for p in progress]
    return {
        "workers": fresh,
        "agree": len({(r["offset"], r["digest"]) for r in fresh}) <= 1,
        "reevaluation": {
            "done": sum(p["done"] for p in progress),
            "total": sum(p["total"] for p in progress),
            "per_second": round(sum(p["per_second"] for p in progress), 1),
            "eta_seconds": None if None in etas else max(etas, default=0),
        },
    }
