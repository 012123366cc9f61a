"""engine.deadlines.DeadlineIndex: each customer's next deadline, by partition."""

from __future__ import annotations

from engine.deadlines import SLACK, DeadlineIndex


def index_of(*entries: tuple[int, str, int | None]) -> DeadlineIndex:
    index = DeadlineIndex()
    for partition, customer_id, due in entries:
        index.set(partition, customer_id, due)
    return index


def test_pop_due_returns_what_is_due_earliest_first() -> None:
    index = index_of((0, "a", 300), (1, "b", 100), (0, "c", 200), (1, "d", 900))
    assert len(index) == 4
    assert index.pop_due(300, [0, 1]) == [(1, "b", 100), (0, "c", 200), (0, "a", 300)]
    assert len(index) == 1
    assert index.pop_due(300, [0, 1]) == []
    assert index.pop_due(900, [0, 1]) == [(1, "d", 900)]
    assert len(index) == 0


def test_pop_due_is_inclusive_and_leaves_later_deadlines() -> None:
    index = index_of((0, "a", 100), (0, "b", 101))
    assert index.pop_due(99, [0]) == []
    assert index.pop_due(100, [0]) == [(0, "a", 100)]
    assert len(index) == 1


def test_pop_due_only_for_the_given_partitions() -> None:
    index = index_of((0, "a", 100), (1, "b", 100), (2, "c", 100))
    assert index.pop_due(1_000, [1]) == [(1, "b", 100)]
    assert index.pop_due(1_000, []) == []
    assert index.pop_due(1_000, [5]) == []
    assert sorted(index.pop_due(1_000, [0, 2])) == [(0, "a", 100), (2, "c", 100)]


def test_set_replaces_the_previous_deadline() -> None:
    index = index_of((0, "a", 100), (0, "a", 500))
    assert len(index) == 1
    assert index.pop_due(400, [0]) == []
    assert index.pop_due(500, [0]) == [(0, "a", 500)]


def test_moving_a_deadline_earlier_fires_it_once_at_the_new_time() -> None:
    index = index_of((0, "a", 500), (0, "a", 100))
    assert index.pop_due(100, [0]) == [(0, "a", 100)]
    assert index.pop_due(1_000, [0]) == []


def test_moving_back_to_an_earlier_value_fires_once() -> None:
    index = index_of((0, "a", 100), (0, "a", 50), (0, "a", 100))
    assert index.pop_due(1_000, [0]) == [(0, "a", 100)]
    assert len(index) == 0


def test_setting_the_same_deadline_twice_fires_once() -> None:
    index = index_of((0, "a", 100), (0, "a", 100))
    assert index.pop_due(1_000, [0]) == [(0, "a", 100)]


def test_clear_with_none() -> None:
    index = index_of((0, "a", 100), (0, "b", 200), (0, "a", None))
    assert len(index) == 1
    assert index.pop_due(1_000, [0]) == [(0, "b", 200)]


def test_clear_then_set_again_fires_once() -> None:
    index = index_of((0, "a", 100), (0, "a", None), (0, "a", 100))
    assert index.pop_due(1_000, [0]) == [(0, "a", 100)]
    assert index.pop_due(1_000, [0]) == []


def test_clearing_an_unknown_customer_is_harmless() -> None:
    index = index_of((0, "a", None))
    assert len(index) == 0
    assert index.pop_due(1_000, [0]) == []


def test_a_fired_deadline_can_be_set_again() -> None:
    index = index_of((0, "a", 100))
    assert index.pop_due(100, [0]) == [(0, "a", 100)]
    index.set(0, "a", 100)
    assert index.pop_due(100, [0]) == [(0, "a", 100)]


def test_a_deadline_of_zero_is_due_at_once() -> None:
    """The timer marks customers of an older catalog due at 0: they fire on the next pop."""
    index = index_of((3, "a", 0))
    assert index.pop_due(1, [3]) == [(3, "a", 0)]


def test_forget_drops_the_partitions_deadlines() -> None:
    index = index_of((0, "a", 100), (1, "b", 100), (1, "c", 300), (2, "d", 200))
    index.forget([1, 7])
    assert len(index) == 2
    assert index.pop_due(1_000, [0, 1, 2]) == [(0, "a", 100), (2, "d", 200)]


def test_forget_then_reassigned_partition_starts_empty() -> None:
    index = index_of((1, "b", 100))
    index.forget([1])
    assert index.pop_due(1_000, [1]) == []
    index.set(1, "b", 150)
    assert index.pop_due(1_000, [1]) == [(1, "b", 150)]


def test_moved_deadlines_do_not_pile_up() -> None:
    """A customer whose deadline moves with every event costs one live entry, not one per
    event: stale entries are compacted away, and what is due still fires once."""
    index = DeadlineIndex()
    customers = 100
    for step in range(1, 2_001):
        for n in range(customers):
            index.set(n % 3, f"c{n}", 1_000_000 + step * 10 + n)
    assert len(index) == customers
    assert index.entries <= 2 * customers + SLACK
    fired = index.pop_due(2_000_000_000, range(3))
    assert sorted(customer for _, customer, _ in fired) == sorted(f"c{n}" for n in range(customers))
    assert [due for _, customer, due in fired if customer == "c7"] == [1_000_000 + 20_000 + 7]
