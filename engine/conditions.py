"""The condition language: each condition says whether it holds for a customer at a time, and
when, at the earliest, the passage of time alone could change its answer.

``deadline(state, now)`` returns a time after ``now`` (or None). It may be early (the engine then
re-evaluates and finds nothing changed) but never late: that is what makes time-driven
transitions exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config import names
from engine.state import (
    CLICKS,
    DAY_MS,
    MAX_ORDER_QUANTITY,
    MAX_ORDER_TOTAL,
    OPENS,
    ORDERS,
    SPEND,
    SUPPORT,
    CustomerState,
)


class Condition:
    """Base of every condition."""

    #: Input topics whose events can change the answer.
    topics: frozenset[str] = frozenset()
    #: Whether the passage of time alone can change the answer (it has deadlines).
    timed: bool = False

    def holds(self, state: CustomerState, now: int) -> bool:
        raise NotImplementedError

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return None

    def refs(self) -> frozenset[str]:
        """Names of the segments this condition refers to."""
        return frozenset()


def _earliest(times: Any) -> int | None:
    earliest = None
    for t in times:
        if t is not None and (earliest is None or t < earliest):
            earliest = t
    return earliest


@dataclass(frozen=True)
class All(Condition):
    children: tuple[Condition, ...]

    def holds(self, state: CustomerState, now: int) -> bool:
        return all(child.holds(state, now) for child in self.children)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _earliest(child.deadline(state, now) for child in self.children)

    def refs(self) -> frozenset[str]:
        return frozenset().union(*(child.refs() for child in self.children))

    @property
    def timed(self) -> bool:  # type: ignore[override]
        return any(child.timed for child in self.children)

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(child.topics for child in self.children))


@dataclass(frozen=True)
class AnyOf(All):
    def holds(self, state: CustomerState, now: int) -> bool:
        return any(child.holds(state, now) for child in self.children)


@dataclass(frozen=True)
class Not(Condition):
    child: Condition

    def holds(self, state: CustomerState, now: int) -> bool:
        return not self.child.holds(state, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return self.child.deadline(state, now)

    def refs(self) -> frozenset[str]:
        return self.child.refs()

    @property
    def timed(self) -> bool:  # type: ignore[override]
        return self.child.timed

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return self.child.topics


@dataclass(frozen=True)
class InSegment(Condition):
    """Membership of another segment (evaluated before this one, in dependency order)."""

    segment: str

    def holds(self, state: CustomerState, now: int) -> bool:
        return self.segment in state.segments

    def refs(self) -> frozenset[str]:
        return frozenset({self.segment})


PROFILE = frozenset({names.PROFILE_UPDATES})


@dataclass(frozen=True)
class Trait(Condition):
    """A profile trait: equals a value, is one of a set, contains an item, lies in a range, or
    merely exists (``exists: false`` holds when the trait is absent)."""

    name: str
    equals: Any = None
    one_of: frozenset[Any] | None = None
    contains: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exists: bool | None = None
    topics: frozenset[str] = PROFILE

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


def _fold_case(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@dataclass(frozen=True)
class KnownProfile(Condition):
    """A profile update has arrived for the customer."""

    topics: frozenset[str] = PROFILE

    def holds(self, state: CustomerState, now: int) -> bool:
        return state.profile_known


def _year(ts: int) -> int:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).year


def _new_year_after(ts: int) -> int:
    return int(datetime(_year(ts) + 1, 1, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Age(Condition):
    """Age in whole years from the birth year, as of the current calendar year (UTC)."""

    timed = True

    minimum: int | None = None
    maximum: int | None = None
    topics: frozenset[str] = PROFILE

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


# Countable metrics: the day-bucket field, and the topics that feed it.
METRICS: dict[str, tuple[tuple[int, ...], frozenset[str]]] = {
    "orders": ((ORDERS,), frozenset({names.PURCHASES})),
    "spend": ((SPEND,), frozenset({names.PURCHASES})),
    "opens": ((OPENS,), frozenset({names.EMAIL_OPENS})),
    "clicks": ((CLICKS,), frozenset({names.EMAIL_CLICKS})),
    "engagement": ((OPENS, CLICKS), frozenset({names.EMAIL_OPENS, names.EMAIL_CLICKS})),
    "support_contacts": ((SUPPORT,), frozenset({names.SUPPORT_CONTACTS})),
}


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

    metric: str
    within_days: int | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return METRICS[self.metric][1]

    @property
    def timed(self) -> bool:  # type: ignore[override]
        return self.within_days is not None

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


@dataclass(frozen=True)
class LargestOrder(Condition):
    """Some order inside the window reached a quantity or a total."""

    timed = True

    within_days: int
    min_quantity: int | None = None
    min_total: float | None = None
    topics: frozenset[str] = frozenset({names.PURCHASES})

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


# What "the last X" can be: the state's time of it, and the topics that move it.
LAST_OF: dict[str, tuple[str, frozenset[str]]] = {
    "purchase": ("last_purchase_at", frozenset({names.PURCHASES})),
    "open": ("last_open_at", frozenset({names.EMAIL_OPENS})),
    "click": ("last_click_at", frozenset({names.EMAIL_CLICKS})),
    "engagement": ("last_engaged_at", frozenset({names.EMAIL_OPENS, names.EMAIL_CLICKS})),
    "cart": ("last_cart_at", frozenset({names.CART_EVENTS})),
    "support_contact": ("last_support_at", frozenset({names.SUPPORT_CONTACTS})),
}


def _last(state: CustomerState, of: str) -> int | None:
    value: int | None = getattr(state, LAST_OF[of][0])
    return value


@dataclass(frozen=True)
class Recency(Condition):
    """The last X happened less than ``within`` ago, or more than ``more_than`` ago (at exactly
    ``more_than`` it counts as more). Never having done X satisfies neither."""

    timed = True

    of: str
    within_ms: int | None = None
    more_than_ms: int | None = None

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return LAST_OF[self.of][1]

    def holds(self, state: CustomerState, now: int) -> bool:
        last = _last(state, self.of)
        if last is None:
            return False
        age = now - last
        if self.within_ms is not None and age >= self.within_ms:
            return False
        return not (self.more_than_ms is not None and age < self.more_than_ms)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        last = _last(state, self.of)
        if last is None:
            return None
        return _earliest(
            last + span
            for span in (self.within_ms, self.more_than_ms)
            if span is not None and last + span > now
        )


def _has_lasted(start: int | None, span: int, now: int) -> bool:
    """A period that began at ``start`` has lasted ``span`` by ``now``."""
    return start is not None and now - start >= span


def _lasts_until(start: int | None, span: int, now: int) -> int | None:
    """When that period completes, if it still lies ahead."""
    return start + span if start is not None and start + span > now else None


@dataclass(frozen=True)
class Quiet(Condition):
    """No X for ``for_ms``: the customer has been known that long, and the last X (if any) is
    at least that old."""

    timed = True

    of: str
    for_ms: int

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(names.EVENT_TOPICS)

    def _since(self, state: CustomerState) -> int | None:
        last = _last(state, self.of)
        if state.first_seen_at is None:
            return last
        return state.first_seen_at if last is None else max(last, state.first_seen_at)

    def holds(self, state: CustomerState, now: int) -> bool:
        return _has_lasted(self._since(state), self.for_ms, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _lasts_until(self._since(state), self.for_ms, now)


@dataclass(frozen=True)
class Abandoned(Condition):
    """Did X, then no Y since, for a quiet period (the cart-abandon shape). For a cart, the cart
    must still hold something."""

    timed = True

    did: str
    then_not: str
    quiet_ms: int

    @property
    def topics(self) -> frozenset[str]:  # type: ignore[override]
        return LAST_OF[self.did][1] | LAST_OF[self.then_not][1]

    def _armed_at(self, state: CustomerState) -> int | None:
        did = _last(state, self.did)
        if did is None or (self.did == "cart" and not state.cart):
            return None
        then = _last(state, self.then_not)
        return did if then is None or then < did else None

    def holds(self, state: CustomerState, now: int) -> bool:
        return _has_lasted(self._armed_at(state), self.quiet_ms, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _lasts_until(self._armed_at(state), self.quiet_ms, now)


PURCHASES = frozenset({names.PURCHASES})


@dataclass(frozen=True)
class Bought(Condition):
    """Bought a category or SKU (in at least ``min_orders`` orders), or any single SKU in at
    least ``min_orders`` orders when neither is named (the repeat-product shape)."""

    category: str | None = None
    sku: str | None = None
    min_orders: int = 1
    topics: frozenset[str] = PURCHASES

    def holds(self, state: CustomerState, now: int) -> bool:
        if self.category is not None:
            entry = state.categories.get(self.category)
            return entry is not None and entry[0] >= self.min_orders
        if self.sku is not None:
            entry = state.skus.get(self.sku)
            return entry is not None and entry[0] >= self.min_orders
        return any(entry[0] >= self.min_orders for entry in state.skus.values())


@dataclass(frozen=True)
class ClicksPerOpen(Condition):
    """Clicks divided by opens inside a window (false while there are fewer opens than
    ``min_opens``)."""

    within_days: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_opens: int = 1
    topics: frozenset[str] = frozenset({names.EMAIL_OPENS, names.EMAIL_CLICKS})

    @property
    def timed(self) -> bool:  # type: ignore[override]
        return self.within_days is not None

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


@dataclass(frozen=True)
class Always(Condition):
    """Holds for everyone (a segment of all known customers)."""

    def holds(self, state: CustomerState, now: int) -> bool:
        return True
