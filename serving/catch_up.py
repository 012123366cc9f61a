"""What the serving store's catch-up with the customers table knows: which customers this
worker holds per partition, which it still has to check, and the progress /health reports
(``agents.store_sync`` does the checking)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.state import CustomerState


@dataclass
class CatchUp:
    """Which customers this worker holds per partition, which it still has to check, and the
    progress the health check reports."""

    held: dict[int, set[str]] = field(default_factory=dict)
    pending: dict[int, set[str]] = field(default_factory=dict)
    full: set[int] = field(default_factory=set)  # partitions under a full check
    # Customers Redis held a newer change of than the table: the table's version then.
    stale_at: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    total: int = 0
    repaired: int = 0

    def stored(self, partition: int, customer_id: str) -> None:
        """A customer's state was written on this worker (live)."""
        self.held.setdefault(partition, set()).add(customer_id)

    def restored(self, partition: int, customer_id: str, active: bool, present: bool) -> None:
        """A changelog record was restored (active or standby partition)."""
        if present:
            self.held.setdefault(partition, set()).add(customer_id)
        else:
            self.held.get(partition, set()).discard(customer_id)
        if active:
            self.pending.setdefault(partition, set()).add(customer_id)

    def keep_only(self, active: set[int], standby: set[int]) -> None:
        """Forget the work and customers of partitions that moved to another worker."""
        for partition in [p for p in self.pending if p not in active]:
            del self.pending[partition]
        self.full &= active
        for partition in [p for p in self.held if p not in active | standby]:
            del self.held[partition]

    def still_stale(self, states: list[CustomerState]) -> set[str]:
        """Customers found stale before whose table state has not moved since: the newer change
        Redis holds is not in the table's history (an erased customer's earlier life), so the
        table's state is written over it."""
        return {s.customer_id for s in states if self.stale_at.get(s.customer_id) == s.version}

    def found_stale(self, states: list[CustomerState], stale: list[str]) -> None:
        found = set(stale)
        for state in states:
            if state.customer_id in found:
                self.stale_at[state.customer_id] = state.version
            else:
                self.stale_at.pop(state.customer_id, None)

    def start_full(self, partitions: set[int], customers_of: Callable[[int], set[str]]) -> None:
        for partition in partitions - self.full:
            self.pending[partition] = customers_of(partition)
        self.full |= partitions
