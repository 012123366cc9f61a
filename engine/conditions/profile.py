"""Conditions on the customer's profile: trait, age, known_profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from config import names
from config.errors import InvalidEvent
from engine.conditions.base import Condition, Reader
from engine.conditions.form import At, Node, Where, bounds, limits, mapping, some_bound, text
from engine.state import CustomerState
from streams.timestamps import format_ts
from streams.traits import BUILT_IN, TYPES, date_value

PROFILE = frozenset({names.PROFILE_UPDATES})
TRAIT_KEYS = {"name", "equals", "in", "contains", "min", "max", "exists"}


@dataclass(frozen=True)
class Trait(Condition):
    """A profile trait: equals a value, is one of a set, contains an item, lies in a range, or
    merely exists (``exists: false`` holds when the trait is absent)."""

    form = "trait"

    name: str
    equals: Any = None
    one_of: frozenset[Any] | None = None
    contains: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exists: bool | None = None
    # A date trait: its value and bounds are epoch milliseconds.
    dated: bool = False

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, TRAIT_KEYS, required=["name"])
        tests = [key for key in ("equals", "in", "contains", "exists") if key in node]
        if len(tests) + bool({"min", "max"} & set(node)) != 1:
            raise where.error("give exactly one of equals, in, contains, exists, or min/max")
        name = text(node["name"], where.at("name"))
        kind = reader.traits.get(name)
        if kind is None:
            raise where.at("name").error(_unknown(name, reader.traits))
        test = tests[0] if tests else "min/max"
        if kind not in ALLOWED[test]:
            raise where.at(test.partition("/")[0]).error(
                f"{name} is a {kind} trait; {test} tests a {' or '.join(ALLOWED[test])} trait"
            )
        one_of = None
        if "in" in node:
            values = node["in"]
            if not isinstance(values, list) or not values:
                raise where.at("in").error("expected a non-empty list")
            if not all(isinstance(v, str | int | float | bool) for v in values):
                raise where.at("in").error("expected a list of strings or numbers")
            one_of = frozenset(_fold_case(v) for v in values)
        if "exists" in node and not isinstance(node["exists"], bool):
            raise where.at("exists").error("expected true or false")
        if "equals" in node:
            _check_type(node["equals"], kind, where.at("equals"))
        if kind == "date":
            node = {**node, **{k: _date(node[k], where.at(k)) for k in ("min", "max") if k in node}}
        low, high = bounds(node, where)
        contains = text(node["contains"], where.at("contains")) if "contains" in node else None
        return cls(
            name=name,
            equals=node.get("equals"),
            one_of=one_of,
            contains=None if contains is None else contains.casefold(),
            minimum=low,
            maximum=high,
            exists=node.get("exists"),
            dated=kind == "date",
        )

    def holds(self, state: CustomerState, now: int) -> bool:
        value = state.traits.get(self.name)
        if self.exists is not None:
            return (value is not None) == self.exists
        if value is None:
            return False
        if self.equals is not None:
            return bool(_fold_case(value) == _fold_case(self.equals))
        if self.one_of is not None:
            if isinstance(value, list):  # a list trait (interests): any of its items
                return any(_fold_case(item) in self.one_of for item in value)
            return _fold_case(value) in self.one_of
        if self.contains is not None:
            return isinstance(value, list) and self.contains in value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        low = self.minimum if self.minimum is not None else float("-inf")
        high = self.maximum if self.maximum is not None else float("inf")
        return low <= value <= high

    def topics(self) -> frozenset[str]:
        return PROFILE

    def rule(self) -> str:
        if self.exists is not None:
            return f"trait {self.name} {'is set' if self.exists else 'is not set'}"
        if self.equals is not None:
            return f"trait {self.name} equals {self.equals!r}"
        if self.one_of is not None:
            return f"trait {self.name} in {sorted(map(str, self.one_of))}"
        if self.contains is not None:
            return f"trait {self.name} contains {self.contains!r}"
        if self.dated:
            return f"trait {self.name} {limits(_day(self.minimum), _day(self.maximum))}"
        return f"trait {self.name} {limits(self.minimum, self.maximum)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        value = state.traits.get(self.name)
        return At(value) if self.dated and isinstance(value, int) else value


def _day(ms: float | None) -> str | None:
    return None if ms is None else format_ts(int(ms))[:10]


# The trait types each test applies to.
ALLOWED = {
    "equals": ("string", "number", "boolean"),
    "in": ("string", "number", "list"),
    "contains": ("list",),
    "exists": TYPES,
    "min/max": ("number", "date"),
}


def _unknown(name: str, traits: Mapping[str, str]) -> str:
    declared = sorted(set(traits) - set(BUILT_IN))
    return f"unknown trait {name!r} (built in: {', '.join(sorted(BUILT_IN))}; declared under " + (
        f"traits: {', '.join(declared)})" if declared else "traits: none yet)"
    )


def _check_type(value: Any, kind: str, where: Where) -> None:
    expected = {"string": str, "boolean": bool}.get(kind)
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = expected is not None and isinstance(value, expected)
    if not ok:
        raise where.error(f"expected a {kind}, as the trait is declared")


def _date(value: Any, where: Where) -> int:
    """A date bound: YYYY-MM-DD (YAML reads it as a date) or an RFC 3339 time."""
    if isinstance(value, datetime):
        value = value.isoformat() if value.tzinfo else value.replace(tzinfo=UTC).isoformat()
    elif isinstance(value, date):
        value = value.isoformat()
    try:
        return date_value(value, "")
    except InvalidEvent:
        raise where.error("expected a date such as 2024-01-31") from None


def _fold_case(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@dataclass(frozen=True)
class KnownProfile(Condition):
    """A profile update has arrived for the customer."""

    form = "known_profile"

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        if body is not True:
            raise where.error("expected true (use not: for the opposite)")
        return cls()

    def holds(self, state: CustomerState, now: int) -> bool:
        return state.profile_known

    def topics(self) -> frozenset[str]:
        return PROFILE

    def rule(self) -> str:
        return "a profile update has arrived"


def _year(ts: int) -> int:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).year


def _new_year_after(ts: int) -> int:
    return int(datetime(_year(ts) + 1, 1, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Age(Condition):
    """Age in whole years from the birth year, as of the current calendar year (UTC)."""

    form = "age"

    minimum: int | None = None
    maximum: int | None = None

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"min", "max"})
        return cls(*some_bound(node, where, whole_numbers=True))

    def holds(self, state: CustomerState, now: int) -> bool:
        birth_year = state.traits.get("birth_year")
        if birth_year is None:
            return False
        age = _year(now) - birth_year
        return (self.minimum is None or age >= self.minimum) and (
            self.maximum is None or age <= self.maximum
        )

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _new_year_after(now) if "birth_year" in state.traits else None

    def topics(self) -> frozenset[str]:
        return PROFILE

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        return f"age {limits(self.minimum, self.maximum)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        birth_year = state.traits.get("birth_year")
        return None if birth_year is None else _year(now) - birth_year
