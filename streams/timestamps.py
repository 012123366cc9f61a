"""Event times: RFC 3339 strings or epoch milliseconds, held as epoch milliseconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from config.errors import InvalidEvent

RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?\Z"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
# Earlier than this is no e-commerce event (2000-01-01T00:00:00Z); later than this is a
# mistake such as epoch microseconds (2200-01-01T00:00:00Z).
EARLIEST_MS = 946_684_800_000
LATEST_MS = 7_258_118_400_000


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds (the live worker's and the tools' clock)."""
    return int(time.time() * 1000)


def parse_ts(value: object, field: str = "ts") -> int:
    """Epoch milliseconds from an RFC 3339 string or an epoch-milliseconds integer."""
    if isinstance(value, bool):
        raise InvalidEvent(f"{field}: expected an RFC 3339 string or epoch milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        if not RFC3339.match(value):
            raise InvalidEvent(f"{field}: {value[:40]!r} is not an RFC 3339 timestamp")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"{field}: {value[:40]!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise InvalidEvent(f"{field}: RFC 3339 timestamps need an offset such as Z")
        ms = (parsed - EPOCH) // MILLISECOND
    else:
        raise InvalidEvent(f"{field}: expected an RFC 3339 string or epoch milliseconds")
    if ms < EARLIEST_MS:
        raise InvalidEvent(f"{field}: {value!r} is before the year 2000")
    if ms >= LATEST_MS:
        raise InvalidEvent(f"{field}: {value!r} is after the year 2199 (epoch microseconds?)")
    return ms


def format_ts(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, the form segstream writes."""
    moment = EPOCH + ms * MILLISECOND
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
