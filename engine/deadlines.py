"""Which customers fall due when: a heap per partition, rebuilt from table state at start-up."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

# Stale heap entries allowed beyond the live ones before the heaps are compacted.
SLACK = 10_000


class DeadlineIndex:
    """Each customer's next deadline, by partition. A moved deadline leaves a stale heap entry,
    skipped when it comes up; when stale entries outnumber live ones, the heaps are compacted,
    so memory follows the customers, not the events."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._due: dict[str, int] = {}
        self._entries = 0

    def __len__(self) -> int:
        return len(self._due)

    def set(self, partition: int, customer_id: str, due: int | None) -> None:
        if due is None:
            self._due.pop(customer_id, None)
            return
        if self._due.get(customer_id) == due:
            return
        self._due[customer_id] = due
        heapq.heappush(self._heaps.setdefault(partition, []), (due, customer_id))
        self._entries += 1
        if self._entries > 2 * len(self._due) + SLACK:
            self._compact()

    def _compact(self) -> None:
        for partition, heap in self._heaps.items():
            live = [(due, customer) for due, customer in heap if self._due.get(customer) == due]
            heapq.heapify(live)
            self._heaps[partition] = live
        self._entries = sum(len(heap) for heap in self._heaps.values())

    @property
    def entries(self) -> int:
        """Heap entries held, live and stale."""
        return self._entries

    def pop_due(self, now: int, partitions: Iterable[int]) -> list[tuple[int, str, int]]:
        """(partition, customer, due) for every deadline at or before ``now``, earliest first."""
        fired: list[tuple[int, str, int]] = []
        for partition in partitions:
            heap = self._heaps.get(partition)
            while heap and heap[0][0] <= now:
                due, customer_id = heapq.heappop(heap)
                self._entries -= 1
                if self._due.get(customer_id) == due:
                    del self._due[customer_id]
                    fired.append((partition, customer_id, due))
        fired.sort(key=lambda item: item[2])
        return fired

    def count_due(self, now: int) -> int:
        """How many deadlines are at or before ``now`` (the backlog the timer has to fire)."""
        return sum(1 for due in self._due.values() if due <= now)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the deadlines of partitions this worker no longer owns."""
        for partition in partitions:
            heap = self._heaps.pop(partition, [])
            self._entries -= len(heap)
            for _, customer_id in heap:
                self._due.pop(customer_id, None)
