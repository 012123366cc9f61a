"""The collector's policy for long runs, and that a piece of work under it leaves the collector
as it found it."""

from __future__ import annotations

import gc

from segstream.gc_policy import YOUNG_THRESHOLD, collecting_less


def test_collecting_less_for_a_piece_of_work_then_as_before() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with collecting_less():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_what_the_process_froze_before_stays_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collecting_less():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
