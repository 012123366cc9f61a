"""An input record as a producer sends it: its topic, its key (the customer) and its value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: str
    value: dict[str, Any]


# A record of a keyed log as read: key (None if it has none), value (None: a tombstone), offset.
KeyedRecord = tuple[str | None, bytes | None, int]
