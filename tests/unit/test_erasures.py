"""engine.erasures.RecentErasures: events older than a customer's erasure are dropped."""

from __future__ import annotations

from engine.erasures import RecentErasures
from tests.unit.engine_helpers import T0


def test_an_event_at_or_before_the_erasure_predates_it() -> None:
    erased = RecentErasures()
    erased.add("a", T0)
    assert erased.predates_erasure("a", T0 - 1)
    assert erased.predates_erasure("a", T0)
    assert not erased.predates_erasure("a", T0 + 1)
    assert not erased.predates_erasure("b", T0 - 1)


def test_the_latest_erasure_counts() -> None:
    erased = RecentErasures()
    erased.add("a", T0 + 10)
    erased.add("a", T0)
    assert erased.predates_erasure("a", T0 + 10)


def test_the_oldest_entry_is_forgotten_first() -> None:
    erased = RecentErasures(capacity=2)
    erased.add("a", T0)
    erased.add("b", T0)
    erased.add("a", T0 + 1)  # "a" is now the most recent
    erased.add("c", T0)
    assert not erased.predates_erasure("b", T0)
    assert erased.predates_erasure("a", T0)
    assert erased.predates_erasure("c", T0)
