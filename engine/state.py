"""Per-customer state: what the segments need to know about one customer, and nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.events import Event, Purchase

# How many recent event ids a customer remembers, to count a redelivered event once.
RECENT_EVENT_IDS = 16


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    version: int = 0
    segments: set[str] = field(default_factory=set)
    purchase_count: int = 0
    total_spend: float = 0.0
    first_purchase_at: int | None = None
    last_purchase_at: int | None = None
    recent_event_ids: list[str] = field(default_factory=list)

    def has_seen(self, event_id: str) -> bool:
        return event_id in self.recent_event_ids

    def remember(self, event_id: str) -> None:
        self.recent_event_ids.append(event_id)
        if len(self.recent_event_ids) > RECENT_EVENT_IDS:
            del self.recent_event_ids[0]

    def fold(self, event: Event) -> None:
        """Take one new event into the state."""
        self.remember(event.event_id)
        if isinstance(event, Purchase):
            self.purchase_count += 1
            self.total_spend += event.total
            if self.first_purchase_at is None or event.ts < self.first_purchase_at:
                self.first_purchase_at = event.ts
            if self.last_purchase_at is None or event.ts > self.last_purchase_at:
                self.last_purchase_at = event.ts

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "version": self.version,
            "segments": sorted(self.segments),
            "purchase_count": self.purchase_count,
            "total_spend": self.total_spend,
            "first_purchase_at": self.first_purchase_at,
            "last_purchase_at": self.last_purchase_at,
            "recent_event_ids": list(self.recent_event_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        return cls(
            customer_id=data["customer_id"],
            version=data["version"],
            segments=set(data["segments"]),
            purchase_count=data["purchase_count"],
            total_spend=data["total_spend"],
            first_purchase_at=data["first_purchase_at"],
            last_purchase_at=data["last_purchase_at"],
            recent_event_ids=list(data["recent_event_ids"]),
        )
