"""The expected answer for live runs: a shop that remembers its events, offline replay of them,
and the folding of published changes that checks the stream's rules on the way."""

from __future__ import annotations

import time
from typing import Any

import orjson

from config import names
from engine.catalog import load_catalog
from segstream.offline.replay import replay
from segstream.offline.simulator import SyntheticShop
from streams.events import record_key
from tests.integration.deployment import Deployment
from tests.integration.kafka_io import event, read_until_quiet
from tests.integration.waiting import poll_until

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

Records = list[tuple[str, bytes, bytes]]
GUARANTEES = ["at_least_once", "exactly_once"]


def now_ms() -> int:
    return int(time.time() * 1000)


class Shop:
    """Builds contract events with unique ids and remembers them for replay."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.serial = 0

    def _add(self, topic: str, customer: str, ts: int, **fields: Any) -> dict[str, Any]:
        """An event of ``customer``, or of an anonymous visitor when it is ``anon:<id>``."""
        self.serial += 1
        anonymous = customer.removeprefix(names.ANONYMOUS_KEY)
        who = {"customer_id": customer} if anonymous == customer else {"anonymous_id": anonymous}
        value = {"event_id": f"e{self.serial}", **who, "ts": ts, **fields}
        self.records.append((topic, value))
        return value

    def link(self, anonymous_id: str, customer: str, ts: int) -> dict[str, Any]:
        """An identify with both ids (or an alias): the anonymous id is the customer's."""
        return self._add(names.IDENTITY_LINKS, customer, ts, anonymous_id=anonymous_id)

    def profile(self, customer: str, ts: int, **traits: Any) -> dict[str, Any]:
        return self._add(names.PROFILE_UPDATES, customer, ts, traits=traits)

    def purchase(
        self,
        customer: str,
        ts: int,
        total: float = 50.0,
        quantity: int = 1,
        sku: str = "sku-1",
        category: str = "shoes",
    ) -> dict[str, Any]:
        item = {
            "sku": sku,
            "category": category,
            "quantity": quantity,
            "unit_price": total / quantity,
        }
        return self._add(
            names.PURCHASES,
            customer,
            ts,
            order_id=f"o{self.serial}",
            total=total,
            currency="EUR",
            items=[item],
        )

    def open(self, customer: str, ts: int) -> dict[str, Any]:
        return self._add(names.EMAIL_OPENS, customer, ts, campaign_id="spring")

    def click(self, customer: str, ts: int) -> dict[str, Any]:
        return self._add(
            names.EMAIL_CLICKS, customer, ts, campaign_id="spring", url="https://x.test/"
        )

    def cart_add(self, customer: str, ts: int, sku: str = "sku-9") -> dict[str, Any]:
        return self._add(
            names.CART_EVENTS,
            customer,
            ts,
            action="add",
            sku=sku,
            category="socks",
            quantity=1,
            unit_price=9.5,
        )

    def support(self, customer: str, ts: int) -> dict[str, Any]:
        return self._add(names.SUPPORT_CONTACTS, customer, ts, channel="chat", reason="delivery")

    def erase(self, customer: str, ts: int) -> None:
        self.records.append((names.CUSTOMER_ERASURES, {"customer_id": customer, "ts": ts}))

    def kafka_records(self, start: int = 0) -> Records:
        return [event(topic, value) for topic, value in self.records[start:]]

    def jsonl(self) -> list[bytes]:
        return [
            orjson.dumps({"topic": topic, "key": record_key(topic, value), "value": value})
            for topic, value in self.records
        ]


def by_customer(changes: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for c in changes:
        grouped.setdefault(c["customer_id"], []).append(
            (c["segment"], c["change"], c["at"], c["cause_event_id"], c["version"])
        )
    return grouped


def expected_by_replay(
    shop: Shop, until: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, set[str]]]:
    result = replay(shop.jsonl(), load_catalog(), until)
    members = {cid: set(state.segments) for cid, state in result.states.items() if state.segments}
    changes = [c.to_dict() for c in result.changes]
    return changes, [t.to_dict() for t in result.triggers], members


def folded(changes: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each customer's memberships after applying the changes, checking the stream's rules."""
    members: dict[str, set[str]] = {}
    versions: dict[str, int] = {}
    for c in changes:
        customer, segment = c["customer_id"], c["segment"]
        assert c["version"] == versions.get(customer, 0) + 1, f"version gap: {c}"
        versions[customer] = c["version"]
        current = members.setdefault(customer, set())
        if c["change"] == "enter":
            assert segment not in current, f"double enter: {c}"
            current.add(segment)
        else:
            assert segment in current, f"exit without enter: {c}"
            current.discard(segment)
    return {customer: segments for customer, segments in members.items() if segments}


async def read_settled(
    deployment: Deployment,
    shop: Shop,
    minimum: int = 1,
    committed: bool = False,
    redelivered: bool = False,
    timeout: float = 90.0,
) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """The published changes, once segment-changes is quiet (at least ``minimum`` of them) and
    their fold equals replay's memberships; and those memberships. ``redelivered``: repeats of
    a change (at-least-once) are dropped before folding; ``committed``: read committed only."""
    seen: tuple[list[dict[str, Any]], dict[str, set[str]]] = ([], {})

    async def settled() -> bool:
        nonlocal seen
        _, _, expected = expected_by_replay(shop, now_ms())
        changes = await read_until_quiet(
            deployment.settings, names.SEGMENT_CHANGES, at_least=minimum, committed=committed
        )
        seen = changes, expected
        return folded(deduplicated(changes) if redelivered else changes) == expected

    def difference() -> str:
        changes, expected = seen
        live = folded(deduplicated(changes) if redelivered else changes)
        return f"customer: (segments missing, segments extra) {differing(live, expected)}"

    await poll_until(settled, "the changes' fold equal to replay's", timeout, 0, detail=difference)
    return seen


def synthetic_shop(customers: int, count: int, seed: int) -> Shop:
    """A synthetic shop's events, all old enough that every cart deadline is already due."""
    shop = Shop()
    simulated = SyntheticShop(customers=customers, seed=seed, start_ms=now_ms() - 5 * HOUR)
    shop.records += [(record.topic, record.value) for record in simulated.events(count)]
    return shop


def differing(
    live: dict[str, set[str]], expected: dict[str, set[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """Per customer whose memberships differ: (segments missing, segments extra)."""
    return {
        customer: (
            sorted(expected.get(customer, set()) - live.get(customer, set())),
            sorted(live.get(customer, set()) - expected.get(customer, set())),
        )
        for customer in set(live) | set(expected)
        if live.get(customer, set()) != expected.get(customer, set())
    }


def assert_same_members(live: dict[str, set[str]], expected: dict[str, set[str]]) -> None:
    """Equal memberships; on failure, per customer: (segments missing, segments extra)."""
    assert not differing(live, expected), differing(live, expected)


def deduplicated(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop redelivered changes (at-least-once), as the Redis store and subscribers do: by
    customer and version. A redelivery must be the very change first published."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    kept = []
    for change in changes:
        key = (change["customer_id"], change["version"])
        if key in first:
            assert change == first[key], f"same version, different change: {change}"
            continue
        first[key] = change
        kept.append(change)
    return kept
