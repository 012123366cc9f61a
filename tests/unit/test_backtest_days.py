"""The day-by-day account of a backtest: per segment and UTC day, enters, exits and the size at
the day's end."""

from __future__ import annotations

from engine.changes import SegmentChange
from engine.state import DAY_MS
from segstream.offline.history import by_day

DAY0 = 20_000 * DAY_MS  # 2024-10-04, 00:00 UTC


def change(segment: str, kind: str, at: int, customer: str = "c1") -> SegmentChange:
    return SegmentChange(customer, segment, kind, at, "event", None, 1)  # type: ignore[arg-type]


def test_each_day_counts_enters_and_exits_and_carries_the_size() -> None:
    changes = [
        change("repeat_buyers", "enter", DAY0 + 5, "a"),
        change("repeat_buyers", "enter", DAY0 + DAY_MS - 1, "b"),
        change("repeat_buyers", "exit", DAY0 + 2 * DAY_MS, "a"),
        change("lapsed_customers", "enter", DAY0 + 2 * DAY_MS + 10, "a"),
        change("repeat_buyers", "enter", DAY0 + 2 * DAY_MS + 20, "c"),
    ]
    assert by_day(changes) == {
        "lapsed_customers": [{"day": "2024-10-06", "enters": 1, "exits": 0, "size": 1}],
        "repeat_buyers": [
            {"day": "2024-10-04", "enters": 2, "exits": 0, "size": 2},
            {"day": "2024-10-06", "enters": 1, "exits": 1, "size": 2},
        ],
    }


def test_no_changes_no_days() -> None:
    assert by_day([]) == {}
