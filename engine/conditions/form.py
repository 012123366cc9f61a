"""Reading a condition's YAML form: where a value sits in the file, and readers that turn a bad
value into one CatalogError sentence; and writing a condition back in words, for explanations
(``span``, ``limits``, ``window``, ``At``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.errors import CatalogError
from engine.state import HORIZON_DAYS

#: A value as the YAML parser gave it: a mapping, a list, a string, a number or a bool.
Node = Any

DURATION = re.compile(r"(\d+)\s*(s|m|h|d|w)\Z")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%\Z")
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class Where:
    """Where in the file a value sits: turns a problem into a CatalogError sentence."""

    def __init__(self, source: str, segment: str | None, path: str = "") -> None:
        self.source, self.segment, self.path = source, segment, path

    def at(self, key: str | int) -> Where:
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return Where(self.source, self.segment, f"{self.path}{step}")

    def error(self, message: str) -> CatalogError:
        where = f"{self.source}: "
        if self.segment is not None:
            where += f"segment {self.segment!r}, "
        if self.path:
            where += f"field {self.path!r}: "
        elif self.segment is not None:
            where = where.removesuffix(", ") + ": "
        return CatalogError(f"{where}{message}.")


def mapping(
    node: Node, where: Where, allowed: set[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise where.error("expected a mapping")
    unknown = sorted(set(map(str, node)) - allowed)
    if unknown:
        raise where.at(unknown[0]).error(
            f"unknown key (expected one of {', '.join(sorted(allowed))})"
        )
    for key in required:
        if key not in node:
            raise where.at(key).error("missing")
    return node


def number(node: Node, where: Where, minimum: float = 0) -> float:
    if isinstance(node, bool) or not isinstance(node, int | float) or node < minimum:
        raise where.error(f"expected a number of at least {minimum:g}")
    return float(node)


def whole(node: Node, where: Where, minimum: int = 0) -> int:
    if isinstance(node, bool) or not isinstance(node, int) or node < minimum:
        raise where.error(f"expected a whole number of at least {minimum}")
    return node


def text(node: Node, where: Where) -> str:
    if not isinstance(node, str) or not node:
        raise where.error("expected a non-empty string")
    return node


def choice(node: Node, where: Where, options: Iterable[str]) -> str:
    options = list(options)
    if node not in options:
        raise where.error(f"expected one of {', '.join(options)}")
    return str(node)


def duration_ms(node: Node, where: Where) -> int:
    match = DURATION.match(str(node).strip()) if isinstance(node, str | int) else None
    if match is None or int(match.group(1)) <= 0:
        raise where.error("expected a duration such as 45s, 60m, 12h, 30d or 2w")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def percent(node: Node, where: Where) -> float:
    """A share of customers above 0 and below 100: ``10%``, ``2.5%`` or the number 10, to
    0.01% (what a split of 10,000 buckets can tell apart)."""
    match = PERCENT.match(node.strip()) if isinstance(node, str) else None
    if match is not None:
        value = float(match.group(1))
    elif isinstance(node, int | float) and not isinstance(node, bool):
        value = float(node)
    else:
        raise where.error("expected a percentage such as 10% or 2.5%")
    if not 0 < value < 100:
        raise where.error("expected a percentage above 0% and below 100%")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise where.error("percentages go in steps of 0.01%")
    return value


@dataclass(frozen=True)
class At:
    """A moment a condition observed (epoch ms, or None: never), shown as a time."""

    ms: int | None


def span(ms: int) -> str:
    """A duration as the catalog writes it (the largest unit that divides it: 90d, 12h, 45s)."""
    for unit in ("w", "d", "h", "m"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms // 1000}s"


def amount(value: float) -> str:
    """A number as written in the catalog: 3, 1500000, 12345.67."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def limits(low: Any, high: Any) -> str:
    """A min/max pair as words: at least 3, at most 5, between 1 and 5 (numbers, or dates
    already written as text)."""
    low, high = (amount(v) if isinstance(v, int | float) else v for v in (low, high))
    if low is not None and low == high:
        return f"exactly {low}"
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def window(days: int | None) -> str:
    return "ever" if days is None else f"within {days}d"


def window_days(node: Node, where: Where) -> int:
    ms = duration_ms(node, where)
    if ms % UNIT_MS["d"]:
        raise where.error("windows count whole days: use d or w")
    days = ms // UNIT_MS["d"]
    if days > HORIZON_DAYS:
        raise where.error(f"windows reach back at most {HORIZON_DAYS}d")
    return days


def bounds(node: dict[str, Any], where: Where, whole_numbers: bool = False) -> tuple[Any, Any]:
    """The ``min`` and ``max`` of ``node`` (either may be None); min may not exceed max."""
    read = whole if whole_numbers else number
    low = read(node["min"], where.at("min")) if "min" in node else None
    high = read(node["max"], where.at("max")) if "max" in node else None
    if low is not None and high is not None and low > high:
        raise where.at("min").error("min is greater than max")
    return low, high


def some_bound(node: dict[str, Any], where: Where, whole_numbers: bool = False) -> tuple[Any, Any]:
    """Like ``bounds``, but at least one of them must be given."""
    low, high = bounds(node, where, whole_numbers)
    if low is None and high is None:
        raise where.error("give min, max or both")
    return low, high
