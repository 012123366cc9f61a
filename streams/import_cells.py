"""Cells of a CSV export (text) and values of JSON lines as the contract's types, for
``segstream import``: numbers, whole numbers, years, booleans (true/false, yes/no, 1/0), lists
split at ``|`` or ``;``, times as epoch milliseconds (from epoch milliseconds, RFC 3339,
``YYYY-MM-DD`` or a date and time without an offset, taken as UTC) and an order's lines.

Each ``as_*`` function returns the value or raises InvalidEvent saying why it cannot be one;
a value already of the type (JSON) passes as it is. The decoder checks ranges afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from config.errors import InvalidEvent
from streams.timestamps import EPOCH, MILLISECOND

Coerce = Callable[[Any], Any]

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?)?\Z"
)
YEAR = re.compile(r"(\d{4})(-\d{2}-\d{2}.*)?\Z")
TRUE, FALSE = frozenset({"true", "yes", "y", "t", "1"}), frozenset({"false", "no", "n", "f", "0"})
LIST_SEPARATORS = re.compile(r"[|;]")


def _shown(value: Any) -> str:
    return repr(value[:40] if isinstance(value, str) else value)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # JSON exports often write ids as numbers
    raise InvalidEvent("expected text")


def as_number(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and NUMBER.match(value):
        return float(value)
    raise InvalidEvent(f"{_shown(value)} is not a number")


def as_whole(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float | str):
        number = float(value) if isinstance(value, float) or NUMBER.match(value) else None
        if number is not None and number.is_integer():
            return int(number)
    raise InvalidEvent(f"{_shown(value)} is not a whole number")


def as_year(value: Any) -> int:
    """A year, or the year of a date (a birthday in a CRM)."""
    if isinstance(value, str) and (match := YEAR.match(value)):
        return int(match.group(1))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidEvent(f"{_shown(value)} is not a year or a date")


def as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    raise InvalidEvent(f"{_shown(value)} is not true or false (true/false, yes/no, 1/0)")


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [part.strip() for part in LIST_SEPARATORS.split(value) if part.strip()]
    raise InvalidEvent("expected a list (items separated by | or ;)")


def as_time(value: Any) -> int:
    """Epoch milliseconds from epoch milliseconds, RFC 3339, ``YYYY-MM-DD`` (midnight UTC) or a
    date and time without an offset (UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and TIME.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return (moment - EPOCH) // MILLISECOND
    raise InvalidEvent(
        f"{_shown(value)} is not a date or time (YYYY-MM-DD, RFC 3339 or epoch milliseconds)"
    )


def as_items(value: Any) -> list[Any]:
    """A whole order's lines: a list, or a JSON list in a CSV cell; their numbers coerced."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidEvent("expected a JSON list of order lines") from None
    if not isinstance(value, list):
        raise InvalidEvent("expected a JSON list of order lines")
    return [_line_item(item, i) if isinstance(item, dict) else item for i, item in enumerate(value)]


def _line_item(item: dict[str, Any], index: int) -> dict[str, Any]:
    line = dict(item)
    for name, coerce in ITEM_FIELDS.items():
        if isinstance(line.get(name), str):
            try:
                line[name] = coerce(line[name].strip())
            except InvalidEvent as exc:
                raise InvalidEvent(f"[{index}].{name}: {exc.reason}") from None
    return line


ITEM_FIELDS: dict[str, Coerce] = {
    "sku": as_text,
    "category": as_text,
    "quantity": as_whole,
    "unit_price": as_number,
}
# Trait types (``streams.traits.TYPES``) as cells become them.
TRAIT_TYPES: dict[str, Coerce] = {
    "string": as_text,
    "number": as_number,
    "boolean": as_boolean,
    "date": as_time,
    "list": as_list,
}
