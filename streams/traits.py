"""Profile traits: the ones the contract always keeps, and those a shop declares in its catalog
(``traits: {income_band: string, children: number, vip_since: date, lifestyle: list}``).

A declared trait is kept, typed and bounded; a trait neither built in nor declared is dropped
(so personal data a producer sends along never reaches the state unless a shop declares it),
and ``email`` and ``first_name`` are never kept, whatever a catalog says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from config.errors import InvalidEvent
from streams.timestamps import EPOCH, LATEST_MS, MILLISECOND, RFC3339

TYPES = ("string", "number", "boolean", "date", "list")
#: The traits every deployment keeps, and their types.
BUILT_IN: Mapping[str, str] = MappingProxyType(
    {
        "gender": "string",
        "country": "string",
        "city": "string",
        "source": "string",
        "industry": "string",
        "birth_year": "number",
        "interests": "list",
        "email_consent": "boolean",
        "timezone": "string",
    }
)
#: Personal data that is checked for type and never stored.
PERSONAL = ("email", "first_name")
NO_TRAITS: Mapping[str, str] = MappingProxyType({})
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
MAX_DECLARED = 50
MAX_TEXT = 256
MAX_LIST_ITEMS = 20
MAX_NUMBER = 1e15
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
FIRST_DATE_MS = -2_208_988_800_000  # 1900-01-01T00:00:00Z


def declaration_error(name: Any, kind: Any) -> str | None:
    """Why a catalog may not declare ``name: kind`` (None: it may)."""
    if not isinstance(name, str) or not NAME.match(name):
        return "trait names are lower-case letters, digits and _ (64 at most)"
    if name in PERSONAL:
        return f"{name} is personal data that segstream never stores"
    if name in BUILT_IN:
        return f"{name} is built in (a {BUILT_IN[name]}); declare only your own traits"
    if kind not in TYPES:
        return f"expected one of {', '.join(TYPES)}"
    return None


def declared_value(name: str, kind: str, value: Any) -> Any:
    """A declared trait's value as stored, or InvalidEvent naming the trait and the rule."""
    where = f"traits.{name}"
    if kind == "string":
        if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
            raise InvalidEvent(f"{where}: expected a string of 1 to {MAX_TEXT} characters")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEvent(f"{where}: expected a number")
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise InvalidEvent(f"{where}: expected a number within ±{MAX_NUMBER:.0e}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidEvent(f"{where}: expected true or false")
        return value
    if kind == "date":
        return date_value(value, where)
    if not isinstance(value, list) or not all(
        isinstance(item, str) and 0 < len(item) <= MAX_TEXT for item in value
    ):
        raise InvalidEvent(f"{where}: expected a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidEvent(f"{where}: at most {MAX_LIST_ITEMS} items")
    return sorted({item.lower() for item in value})


def date_value(value: Any, where: str) -> int:
    """A date trait as epoch milliseconds: ``YYYY-MM-DD`` (midnight UTC), an RFC 3339 time or
    epoch milliseconds, from 1900 to 2199."""
    if isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str) and (DAY.match(value) or RFC3339.match(value)):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None:
            raise InvalidEvent(f"{where}: {value[:40]!r} is not a valid date")
        if moment.tzinfo is None and DAY.match(value):
            moment = moment.replace(tzinfo=UTC)
        if moment.tzinfo is None:
            raise InvalidEvent(f"{where}: a time needs an offset such as Z")
        ms = (moment - EPOCH) // MILLISECOND
    else:
        raise InvalidEvent(
            f"{where}: expected a date (YYYY-MM-DD), an RFC 3339 time or epoch milliseconds"
        )
    if not FIRST_DATE_MS <= ms < LATEST_MS:
        raise InvalidEvent(f"{where}: expected a date from 1900 to 2199")
    return ms


def kept_only(value: dict[str, Any], declared: Mapping[str, str]) -> dict[str, Any]:
    """An event's value with only the traits the state keeps (built in or declared): what
    segstream produces for a shop carries no trait it would drop, personal ones included."""
    traits = value.get("traits")
    if not isinstance(traits, dict):
        return value
    kept = {name: v for name, v in traits.items() if name in BUILT_IN or name in declared}
    return value if len(kept) == len(traits) else value | {"traits": kept}
