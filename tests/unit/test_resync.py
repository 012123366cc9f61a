"""A worker's re-evaluation progress after a definition change, with an injected clock: what
is counted, what ends it, and that customers whose partition moved away do not keep it open."""

from __future__ import annotations

import pytest

from serving.resync import CatalogResync


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([], (0, 0, 0), id="nothing-to-do"),
        pytest.param([("mark", "a", 0), ("mark", "b", 1)], (0, 2, 2), id="two-due"),
        pytest.param([("mark", "a", 0), ("mark", "a", 0)], (0, 1, 1), id="a-changelog-repeat"),
        pytest.param([("mark", "a", 0), ("fresh", "a", 0)], (0, 0, 0), id="restored-fresh"),
        pytest.param([("mark", "a", 0), ("done", "a", 0)], (1, 1, 0), id="one-done"),
        pytest.param(
            [("mark", "a", 0), ("mark", "b", 1), ("keep", None, 0)], (0, 1, 1), id="moved"
        ),
        pytest.param(
            [("mark", "a", 0), ("done", "a", 0), ("mark", "b", 0)], (0, 1, 1), id="next-change"
        ),
    ],
)
def test_progress_counts_what_is_due_and_ends(
    steps: list[tuple[str, str | None, int]], expected: tuple[int, int, int]
) -> None:
    resync = CatalogResync(Clock())
    for action, customer, partition in steps:
        if action == "keep":
            resync.keep_only({partition})
        elif action == "done":
            resync.done(str(customer))
        else:
            resync.mark(str(customer), action == "mark", partition)
    progress = resync.progress()
    assert (progress["done"], progress["total"], len(resync.pending)) == expected


def test_progress_says_the_rate_and_the_time_left() -> None:
    clock = Clock()
    resync = CatalogResync(clock)
    for n in range(4):
        resync.mark(f"c{n}", True, 0)
    clock.now += 2.0
    resync.done("c0")
    resync.done("c1")
    assert resync.progress() == {"done": 2, "total": 4, "per_second": 1.0, "eta_seconds": 2.0}
    resync.done("c2")
    resync.done("c3")
    assert resync.progress()["eta_seconds"] == 0
