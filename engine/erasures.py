"""Recently erased customers: an older event that arrives after its customer's erasure (Kafka
orders records within one topic partition, not across topics) must not bring them back.

Held in memory only, bounded, and forgotten after a while: it covers the moments in which such
reordering happens, while segstream's tables keep nothing of an erased customer.
"""

from __future__ import annotations

from collections import OrderedDict

REMEMBER = 100_000
ERASED = "customer erased: the event is older than the erasure request"


class RecentErasures:
    def __init__(self, capacity: int = REMEMBER) -> None:
        self._erased: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def add(self, customer_id: str, at: int) -> None:
        self._erased[customer_id] = max(at, self._erased.pop(customer_id, at))
        while len(self._erased) > self._capacity:
            self._erased.popitem(last=False)

    def predates_erasure(self, customer_id: str, ts: int) -> bool:
        """True when the customer was erased at or after ``ts``: the event must be dropped."""
        erased_at = self._erased.get(customer_id)
        return erased_at is not None and ts <= erased_at

    def erased_at(self, customer_id: str) -> int | None:
        return self._erased.get(customer_id)
