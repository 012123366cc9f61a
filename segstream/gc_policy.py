"""The garbage collector's policy for segstream's long runs (the worker, replay, the bench's
engine alone). They allocate and free several objects per event, nearly all short-lived, and
keep many long-lived ones (the catalog, Faust's services, replay's customer states), which
Python's default (a young collection every 700 allocations, promoting survivors into
generations that are scanned again and again) keeps traversing: replay of the bench workload
ran 1.47x faster with this policy, 1.6x with no collector at all (docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Allocations between two young-generation collections (Python's default is 700).
YOUNG_THRESHOLD = 20_000


def collect_less() -> None:
    """What is alive now lives as long as the process: the collector no longer scans it, and
    runs less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@contextlib.contextmanager
def collecting_less() -> Iterator[None]:
    """``collect_less`` for one piece of work; the thresholds as they were afterwards, and what
    it froze unfrozen, unless the process had frozen objects already (Python unfreezes all or
    none: they all stay frozen then)."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    collect_less()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:
            gc.unfreeze()
