"""Small typed factories for engine tests: events at T0 + offsets, and an injected clock."""

from __future__ import annotations

import itertools
from typing import Any

from config import names
from engine.catalog import Catalog
from engine.changes import Outcome, SegmentChange
from engine.evaluate import advance, apply_event
from engine.state import CustomerState
from streams.events import (
    CartEvent,
    EmailClick,
    EmailOpen,
    Event,
    LineItem,
    PageView,
    ProfileUpdate,
    Purchase,
    SupportContact,
)

CUSTOMER = "c000001"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a UTC midnight
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NEW_YEAR_2027 = 1_798_761_600_000  # 2027-01-01T00:00:00Z

_serial = itertools.count(1)

TOPIC_OF: dict[type, str] = {
    Purchase: names.PURCHASES,
    EmailOpen: names.EMAIL_OPENS,
    EmailClick: names.EMAIL_CLICKS,
    CartEvent: names.CART_EVENTS,
    ProfileUpdate: names.PROFILE_UPDATES,
    SupportContact: names.SUPPORT_CONTACTS,
    PageView: names.PAGE_VIEWS,
}


def at(days: float = 0, hours: float = 0, minutes: float = 0, ms: int = 0) -> int:
    """T0 plus an offset, in epoch milliseconds."""
    return T0 + round(days * DAY + hours * HOUR + minutes * MINUTE) + ms


def _id(prefix: str, event_id: str | None) -> str:
    return event_id if event_id is not None else f"{prefix}-{next(_serial)}"


def item(
    sku: str = "sku-lamp", category: str = "outdoor", quantity: int = 1, unit_price: float = 10.0
) -> LineItem:
    return LineItem(sku=sku, category=category, quantity=quantity, unit_price=unit_price)


def purchase(
    ts: int,
    *items: LineItem,
    total: float | None = None,
    event_id: str | None = None,
) -> Purchase:
    """A purchase of ``items`` (one 10.00 lamp if none); the total defaults to their sum."""
    lines = items or (item(),)
    amount = sum(i.quantity * i.unit_price for i in lines) if total is None else total
    eid = _id("p", event_id)
    return Purchase(eid, CUSTOMER, ts, f"o-{eid}", amount, "EUR", tuple(lines))


def email_open(ts: int, event_id: str | None = None) -> EmailOpen:
    return EmailOpen(_id("m", event_id), CUSTOMER, ts, "camp-1")


def email_click(ts: int, event_id: str | None = None) -> EmailClick:
    return EmailClick(_id("k", event_id), CUSTOMER, ts, "camp-1", "https://shop.example/sale")


def cart(
    ts: int,
    action: str = "add",
    sku: str | None = "sku-boot",
    category: str | None = "shoes",
    quantity: int = 1,
    unit_price: float = 140.0,
    event_id: str | None = None,
) -> CartEvent:
    if action == "checkout_started":
        sku, category, quantity, unit_price = None, None, 0, 0.0
    elif action == "remove":
        unit_price = 0.0
    return CartEvent(_id("c", event_id), CUSTOMER, ts, action, sku, category, quantity, unit_price)


def profile(ts: int, event_id: str | None = None, **traits: Any) -> ProfileUpdate:
    return ProfileUpdate(_id("u", event_id), CUSTOMER, ts, dict(traits))


def consent(ts: int = T0, event_id: str | None = None, **traits: Any) -> ProfileUpdate:
    """A profile update that gives email consent (and any other traits)."""
    return profile(ts, event_id, email_consent=True, **traits)


def view(
    ts: int,
    sku: str | None = "sku-tent",
    category: str | None = "outdoor",
    event_id: str | None = None,
) -> PageView:
    url = f"https://shop.example/p/{sku}" if sku else f"https://shop.example/c/{category}"
    return PageView(_id("v", event_id), CUSTOMER, ts, url, sku, category)


def support(ts: int, event_id: str | None = None) -> SupportContact:
    return SupportContact(_id("s", event_id), CUSTOMER, ts, "chat", "delivery")


def topic_of(event: Event) -> str:
    return TOPIC_OF[type(event)]


def feed(state: CustomerState, events: list[Event], catalog: Catalog) -> Outcome:
    """Apply ``events`` in order, each on its own topic; everything they publish, in order."""
    outcome = Outcome()
    for event in events:
        outcome.extend(apply_event(state, event, topic_of(event), catalog))
    return outcome


def member_at(events: list[Event], now: int, catalog: Catalog) -> set[str]:
    """A new customer's segments after ``events`` and the passage of time up to ``now``."""
    assert all(event.ts <= now for event in events), "the clock only moves forward"
    state = CustomerState(CUSTOMER)
    feed(state, events, catalog)
    advance(state, now, catalog)
    return state.segments


Row = tuple[str, str, int, str | None]


def rows(changes: list[SegmentChange]) -> list[Row]:
    return [(c.segment, c.change, c.version, c.cause_event_id) for c in changes]


def timeline(changes: list[SegmentChange]) -> list[tuple[str, str, int, str | None]]:
    """(segment, change, at, cause) of each change."""
    return [(c.segment, c.change, c.at, c.cause_event_id) for c in changes]
