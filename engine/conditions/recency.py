"""Conditions on how long ago the customer last did something: last, quiet, abandoned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config import names
from engine.conditions.base import Condition, Reader, earliest
from engine.conditions.form import At, Node, Where, choice, duration_ms, mapping, span
from engine.state import CustomerState

# What "the last X" can be: the state's time of it, and the topics that move it.
LAST_OF: dict[str, tuple[str, frozenset[str]]] = {
    "purchase": ("last_purchase_at", frozenset({names.PURCHASES})),
    "open": ("last_open_at", frozenset({names.EMAIL_OPENS})),
    "click": ("last_click_at", frozenset({names.EMAIL_CLICKS})),
    "engagement": ("last_engaged_at", frozenset({names.EMAIL_OPENS, names.EMAIL_CLICKS})),
    "cart": ("last_cart_at", frozenset({names.CART_EVENTS})),
    "support_contact": ("last_support_at", frozenset({names.SUPPORT_CONTACTS})),
    "view": ("last_product_view_at", frozenset({names.PAGE_VIEWS})),  # a product page
}


def _last(state: CustomerState, of: str) -> int | None:
    value: int | None = getattr(state, LAST_OF[of][0])
    return value


def _optional_duration(node: dict[str, Node], key: str, where: Where) -> int | None:
    return duration_ms(node[key], where.at(key)) if key in node else None


def _has_lasted(start: int | None, span: int, now: int) -> bool:
    """A period that began at ``start`` has lasted ``span`` by ``now``."""
    return start is not None and now - start >= span


def _lasts_until(start: int | None, span: int, now: int) -> int | None:
    """When that period completes, if it still lies ahead."""
    return start + span if start is not None and start + span > now else None


@dataclass(frozen=True)
class Last(Condition):
    """The last X happened less than ``within`` ago, or more than ``more_than`` ago (at exactly
    ``more_than`` it counts as more). Never having done X satisfies neither."""

    form = "last"

    of: str
    within_ms: int | None = None
    more_than_ms: int | None = None

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"of", "within", "more_than"}, required=["of"])
        if "within" not in node and "more_than" not in node:
            raise where.error("give within, more_than or both")
        return cls(
            choice(node["of"], where.at("of"), LAST_OF),
            _optional_duration(node, "within", where),
            _optional_duration(node, "more_than", where),
        )

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
        return earliest(
            last + span
            for span in (self.within_ms, self.more_than_ms)
            if span is not None and last + span > now
        )

    def topics(self) -> frozenset[str]:
        return LAST_OF[self.of][1]

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        ages = [
            f"{word} {span(ms)} ago"
            for word, ms in (("less than", self.within_ms), ("more than", self.more_than_ms))
            if ms is not None
        ]
        return f"last {self.of} {' and '.join(ages)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        """When the customer last did it."""
        return At(_last(state, self.of))


@dataclass(frozen=True)
class Quiet(Condition):
    """No X for ``for_ms``: the customer has been known that long, and the last X (if any) is
    at least that old."""

    form = "quiet"

    of: str
    for_ms: int

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"of", "for"}, required=["of", "for"])
        return cls(
            choice(node["of"], where.at("of"), LAST_OF), duration_ms(node["for"], where.at("for"))
        )

    def _since(self, state: CustomerState) -> int | None:
        last = _last(state, self.of)
        if state.first_seen_at is None:
            return last
        return state.first_seen_at if last is None else max(last, state.first_seen_at)

    def holds(self, state: CustomerState, now: int) -> bool:
        return _has_lasted(self._since(state), self.for_ms, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _lasts_until(self._since(state), self.for_ms, now)

    def topics(self) -> frozenset[str]:
        # Any event makes the customer known (first_seen_at), which starts the quiet period.
        return frozenset(names.EVENT_TOPICS)

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        return f"no {self.of} for {span(self.for_ms)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        """Since when it has been quiet."""
        return At(self._since(state))


@dataclass(frozen=True)
class Abandoned(Condition):
    """Did X, then none of Y since, for a quiet period (the cart-abandon shape: a cart, then no
    purchase; the browse-abandon one: a product view, then no cart activity or purchase). For a
    cart, the cart must still hold something."""

    form = "abandoned"

    did: str
    then_not: tuple[str, ...]
    quiet_ms: int

    @classmethod
    def parse(cls, body: Node, where: Where, reader: Reader) -> Condition:
        node = mapping(body, where, {"did", "then_not", "quiet"}, required=["did", "then_not"])
        quiet = _optional_duration(node, "quiet", where)
        then_not = node["then_not"]
        listed = then_not if isinstance(then_not, list) and then_not else [then_not]
        return cls(
            choice(node["did"], where.at("did"), LAST_OF),
            tuple(choice(x, where.at("then_not"), LAST_OF) for x in listed),
            reader.cart_quiet_ms if quiet is None else quiet,
        )

    def _armed_at(self, state: CustomerState) -> int | None:
        did = _last(state, self.did)
        if did is None or (self.did == "cart" and not state.cart):
            return None
        since = [_last(state, then) for then in self.then_not]
        return did if all(then is None or then < did for then in since) else None

    def holds(self, state: CustomerState, now: int) -> bool:
        return _has_lasted(self._armed_at(state), self.quiet_ms, now)

    def deadline(self, state: CustomerState, now: int) -> int | None:
        return _lasts_until(self._armed_at(state), self.quiet_ms, now)

    def topics(self) -> frozenset[str]:
        return LAST_OF[self.did][1].union(*(LAST_OF[then][1] for then in self.then_not))

    def timed(self) -> bool:
        return True

    def rule(self) -> str:
        return f"a {self.did}, then no {' or '.join(self.then_not)} for {span(self.quiet_ms)}"

    def observed(self, state: CustomerState, now: int) -> Any:
        """When the customer did it with nothing after (None: nothing waits)."""
        return At(self._armed_at(state))
