"""Segment changes: the enter and exit records segstream publishes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from streams.timestamps import format_ts

ENTER: Literal["enter"] = "enter"
EXIT: Literal["exit"] = "exit"


@dataclass(frozen=True, slots=True)
class SegmentChange:
    customer_id: str
    segment: str
    change: Literal["enter", "exit"]
    at: int
    cause_event_id: str | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "segment": self.segment,
            "change": self.change,
            "at": format_ts(self.at),
            "cause_event_id": self.cause_event_id,
            "version": self.version,
        }
