"""What the engine publishes: segment enter/exit changes and trigger records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streams.timestamps import format_ts

ENTER: Literal["enter"] = "enter"
EXIT: Literal["exit"] = "exit"

# Why a change happened: an event, the passage of time, a changed segment definition, an erasure.
Cause = Literal["event", "time", "catalog", "erasure"]


@dataclass(frozen=True, slots=True)
class SegmentChange:
    customer_id: str
    segment: str
    change: Literal["enter", "exit"]
    at: int
    cause: Cause
    cause_event_id: str | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "segment": self.segment,
            "change": self.change,
            "at": format_ts(self.at),
            "cause": self.cause,
            "cause_event_id": self.cause_event_id,
            "version": self.version,
        }


# What each trigger carries beside who and when: the cart, or the products viewed.
TRIGGER_PAYLOADS = {"cart_abandoned": "cart", "browse_abandoned": "viewed"}
# The state field whose time names the episode a trigger fires for (the cart's last activity,
# the last product view): a trigger fires once per episode (``engine.evaluate``).
TRIGGER_EPISODES = {"cart_abandoned": "last_cart_at", "browse_abandoned": "last_product_view_at"}


@dataclass(frozen=True, slots=True)
class Trigger:
    """An automation trigger fired by entering a segment (the cart-abandon reminder, the
    browse-abandon one); ``items`` are its payload (``TRIGGER_PAYLOADS``)."""

    customer_id: str
    trigger: str
    at: int
    items: list[dict[str, Any]]
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "trigger": self.trigger,
            "at": format_ts(self.at),
            TRIGGER_PAYLOADS.get(self.trigger, "items"): self.items,
            "version": self.version,
        }


@dataclass(slots=True)
class Outcome:
    """Everything one step of the engine publishes, in order."""

    changes: list[SegmentChange] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    # Why part of the event could not count, if it came too late for it (engine.state).
    late: str | None = None
    # What the event adds to the campaign report (engine.attribution), as output records.
    facts: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.changes += other.changes
        self.triggers += other.triggers

    def __bool__(self) -> bool:
        return bool(self.changes or self.triggers)
