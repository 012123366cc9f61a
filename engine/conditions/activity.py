"""Conditions on what the customer did, counted in day buckets or per product: count,
largest_order, bought, clicks_per_open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config import names
from engine.conditions.base import Condition, Reader
from engine.conditions.form import (
    Node,
    Where,
    amount,
    choice,
    limits,
    mapping,
    number,
    some_bound,
    text,
    whole,
    window,
    window_days,
)
from engine.state import (
    CLICKS,
    DAY_MS,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_TOTAL,
    OPENS,
    ORDERS,
    SPEND,
    SUPPORT,
    VIEW_DAYS,
    CustomerState,
)

PURCHASES = frozenset({names.PURCHASES})
EMAILS = frozenset({names.EMAIL_OPENS, names.EMAIL_CLICKS})

# Countable metrics: the day-bucket fields, and the topics that feed them.
METRICS: dict[str, tuple[tuple[int, ...], frozenset[str]]] = {
    "orders": ((ORDERS,), PURCHASES),
    "spend": ((SPEND,), PURCHASES),
    "opens": ((OPENS,), frozenset({names.EMAIL_OPENS})),
    "clicks": ((CLICKS,), frozenset({names.EMAIL_CLICKS})),
    "engagement": ((OPENS, CLICKS), EMAILS),
    "support_contacts": ((SUPPORT,), frozenset({names.SUPPORT_CONTACTS})),
}


def _within(node: dict[str, Node], where: Where) -> int | None:
    return window_days(node["within"], where.at("within")) if "within" in node else None


def _window_expiry(
    state: CustomerState, now: int, days: int, fields: tuple[int, ...]
) -> int | None:
    """When the oldest in-window bucket that holds any of ``fields`` leaves the window."""
    today = now // DAY_MS
    first = today - days + 1
    oldest = None
    for day, bucket in state.days.items():
        if first <= day <= today and (oldest is None or day < oldest):
            for index in fields:
                if bucket[index]:
                    oldest = day
                    break
    return None if oldest is None else (oldest + days) * DAY_MS


@dataclass(frozen=True)
class Count(Condition):
    """A count or sum inside a rolling window of whole UTC days (today included), or ever."""

    form = "count"

    metric: str
    within_days: int | None = None
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"of", "within", "min", "max"}, required=["of"])
        low, high = some_bound(node, where)
        within = _within(node, where)
        return cls(choice(node["of"], where.at("of"), METRICS), within, low, high)

    def value(self, state: CustomerState, now: int) -> float:
        return sum(
            state.window_total(now, self.within_days, index) for index in METRICS[self.metric][0]
        )

    def holds(self, state: CustomerState, now: int) -> bool:
        value = self.value(state, now)
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )

    def deadline(self, state: CustomerState, now: int) -> int | None:
        if self.within_days is None:
            return None
        return _window_expiry(state, now, self.within_days, METRICS[self.metric][0])

    def topics(self) -> frozenset[str]:
        return METRICS[self.metric][1]

    def timed(self) -> bool:
        return self.within_days is not None

    def rule(self) -> str:
        return f"{self.metric} {window(self.within_days)} {limits(self.minimum, self.maximum)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        return self.value(state, now)


VIEWS = frozenset({names.PAGE_VIEWS})


@dataclass(frozen=True)
class Viewed(Condition):
    """Viewed a product (``sku``) or a category at least ``min`` times (default once) inside a
    window of whole UTC days (today included), of at most VIEW_DAYS days."""

    form = "viewed"

    key: str
    within_days: int
    minimum: int = 1

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"sku", "category", "within", "min"}, required=["within"])
        named = [kind for kind in ("sku", "category") if kind in node]
        if len(named) != 1:
            raise where.error("name a sku or a category")
        within = window_days(node["within"], where.at("within"))
        if within > VIEW_DAYS:
            raise where.at("within").error(f"page views are kept for {VIEW_DAYS}d at most")
        minimum = whole(node["min"], where.at("min")) if "min" in node else 1
        if minimum < 1:
            raise where.at("min").error("expected 1 or more")
        kind = named[0]
        return cls(f"{kind}:{text(node[kind], where.at(kind))}", within, minimum)

    def holds(self, state: CustomerState, now: int) -> bool:
        return state.views_within(self.key, now, self.within_days) >= self.minimum

    def deadline(self, state: CustomerState, now: int) -> int | None:
        oldest = state.oldest_view_day(self.key, now, self.within_days)
        return None if oldest is None else (oldest + self.within_days) * DAY_MS

    def topics(self) -> frozenset[str]:
        return VIEWS

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        kind, _, name = self.key.partition(":")
        return f"viewed {kind} {name} {window(self.within_days)} at least {self.minimum} times"

    def observed(self, state: CustomerState, now: int) -> Any:
        return state.views_within(self.key, now, self.within_days)


@dataclass(frozen=True)
class LargestOrder(Condition):
    """Some order inside the window reached a quantity or a total."""

    form = "largest_order"

    within_days: int
    min_quantity: int | None = None
    min_total: float | None = None

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"within", "min_quantity", "min_total"}, required=["within"])
        if "min_quantity" not in node and "min_total" not in node:
            raise where.error("give min_quantity, min_total or both")
        return cls(
            window_days(node["within"], where.at("within")),
            whole(node["min_quantity"], where.at("min_quantity"), 1)
            if "min_quantity" in node
            else None,
            number(node["min_total"], where.at("min_total")) if "min_total" in node else None,
        )

    def holds(self, state: CustomerState, now: int) -> bool:
        if self.min_quantity is not None:
            largest = state.window_max(now, self.within_days, MAX_ORDER_QUANTITY)
            if largest >= self.min_quantity:
                return True
        if self.min_total is not None:
            return state.window_max(now, self.within_days, MAX_ORDER_TOTAL) >= self.min_total
        return False

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _window_expiry(state, now, self.within_days, (ORDERS,))

    def topics(self) -> frozenset[str]:
        return PURCHASES

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        wanted = [
            f"{label} at least {amount(bound)}"
            for label, bound in (("items", self.min_quantity), ("total", self.min_total))
            if bound is not None
        ]
        return f"an order {window(self.within_days)} with {' or '.join(wanted)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        return {
            "most_items": state.window_max(now, self.within_days, MAX_ORDER_QUANTITY),
            "largest_total": state.window_max(now, self.within_days, MAX_ORDER_TOTAL),
        }


@dataclass(frozen=True)
class Bought(Condition):
    """Bought a category or SKU (in at least ``min_orders`` orders), or any single SKU in at
    least ``min_orders`` orders when neither is named (the repeat-product shape)."""

    form = "bought"

    category: str | None = None
    sku: str | None = None
    min_orders: int = 1

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"category", "sku", "min_orders"})
        if "category" in node and "sku" in node:
            raise where.error("give category or sku, not both")
        return cls(
            category=text(node["category"], where.at("category")) if "category" in node else None,
            sku=text(node["sku"], where.at("sku")) if "sku" in node else None,
            min_orders=whole(node.get("min_orders", 1), where.at("min_orders"), 1),
        )

    def holds(self, state: CustomerState, now: int) -> bool:
        if self.category is not None:
            entry = state.categories.get(self.category)
            return entry is not None and entry[0] >= self.min_orders
        if self.sku is not None:
            entry = state.skus.get(self.sku)
            return entry is not None and entry[0] >= self.min_orders
        return any(entry[0] >= self.min_orders for entry in state.skus.values())

    def topics(self) -> frozenset[str]:
        return PURCHASES

    def rule(self) -> str:
        what = (
            f"category {self.category}"
            if self.category is not None
            else f"sku {self.sku}"
            if self.sku is not None
            else "one product"
        )
        return f"bought {what} in at least {self.min_orders} orders"

    def observed(self, state: CustomerState, now: int) -> Any:
        """The orders of the category or SKU (of the most bought SKU when neither is named)."""
        if self.category is not None:
            return state.categories.get(self.category, [0])[0]
        if self.sku is not None:
            return state.skus.get(self.sku, [0])[0]
        return max((entry[0] for entry in state.skus.values()), default=0)


@dataclass(frozen=True)
class ClicksPerOpen(Condition):
    """Clicks divided by opens inside a window (false while there are fewer opens than
    ``min_opens``)."""

    form = "clicks_per_open"

    within_days: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_opens: int = 1

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"within", "min", "max", "min_opens"})
        low, high = some_bound(node, where)
        within = _within(node, where)
        min_opens = whole(node.get("min_opens", 1), where.at("min_opens"), 1)
        return cls(within, low, high, min_opens)

    def holds(self, state: CustomerState, now: int) -> bool:
        opens = state.window_total(now, self.within_days, OPENS)
        if opens < max(self.min_opens, 1):
            return False
        ratio = state.window_total(now, self.within_days, CLICKS) / opens
        return (self.minimum is None or ratio >= self.minimum) and (
            self.maximum is None or ratio <= self.maximum
        )

    def deadline(self, state: CustomerState, now: int) -> int | None:
        if self.within_days is None:
            return None
        return _window_expiry(state, now, self.within_days, (OPENS, CLICKS))

    def topics(self) -> frozenset[str]:
        return EMAILS

    def timed(self) -> bool:
        return self.within_days is not None

    def rule(self) -> str:
        return (
            f"clicks per open {window(self.within_days)} {limits(self.minimum, self.maximum)}, "
            f"with at least {self.min_opens} opens"
        )

    def observed(self, state: CustomerState, now: int) -> Any:
        opens = state.window_total(now, self.within_days, OPENS)
        clicks = state.window_total(now, self.within_days, CLICKS)
        return {"opens": opens, "clicks": clicks}
