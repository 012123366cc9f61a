"""Segment's tracking spec mapped onto segstream's event contract, so a shop already
instrumented for Segment can point its `track` and `identify` calls at segstream.

Mapped: identify (traits) -> profile-updates; track "Order Completed" -> purchases;
"Product Added" / "Product Removed" / "Checkout Started" -> cart-events; "Email Opened" ->
email-opens; "Email Link Clicked" -> email-clicks. Every message needs a userId (segstream
segments known customers, not anonymous visitors) and a messageId.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from config import names
from config.errors import InvalidEvent
from streams.timestamps import parse_ts

Mapped = tuple[str, dict[str, Any]]
BIRTHDAY = re.compile(r"[0-9]{4}-")


def _head(message: dict[str, Any]) -> dict[str, Any]:
    customer = message.get("userId")
    if not isinstance(customer, str) or not customer:
        raise InvalidEvent("userId: missing (anonymous events are not segmented)")
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidEvent("messageId: missing")
    when = message.get("timestamp") or message.get("originalTimestamp")
    if when is None:
        raise InvalidEvent("timestamp: missing")
    return {"event_id": message_id, "customer_id": customer, "ts": parse_ts(when, "timestamp")}


def _properties(message: dict[str, Any]) -> dict[str, Any]:
    props = message.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidEvent("properties: expected an object")
    return props


def _sku(item: dict[str, Any]) -> Any:
    return item.get("sku") or item.get("product_id")


def _order_completed(message: dict[str, Any]) -> Mapped:
    props = _properties(message)
    products = props.get("products") or []
    if not isinstance(products, list):
        raise InvalidEvent("properties.products: expected a list")
    items = [
        {
            "sku": _sku(p),
            "category": p.get("category") or "uncategorized",
            "quantity": p.get("quantity", 1),
            "unit_price": p.get("price", 0),
        }
        for p in products
        if isinstance(p, dict)
    ]
    total = props.get("total", props.get("revenue"))
    return names.PURCHASES, _head(message) | {
        "order_id": props.get("order_id"),
        "total": total,
        "currency": props.get("currency", "USD"),
        "items": items,
    }


def _cart(action: str) -> Callable[[dict[str, Any]], Mapped]:
    def mapped(message: dict[str, Any]) -> Mapped:
        props = _properties(message)
        value = _head(message) | {"action": action}
        if action != "checkout_started":
            value |= {
                "sku": _sku(props),
                "category": props.get("category") or "uncategorized",
                "quantity": props.get("quantity", 1),
                "unit_price": props.get("price", 0),
            }
        return names.CART_EVENTS, value

    return mapped


def _email_opened(message: dict[str, Any]) -> Mapped:
    props = _properties(message)
    campaign = props.get("campaign_id") or props.get("email_id")
    return names.EMAIL_OPENS, _head(message) | {"campaign_id": campaign}


def _email_clicked(message: dict[str, Any]) -> Mapped:
    props = _properties(message)
    campaign = props.get("campaign_id") or props.get("email_id")
    url = props.get("link_url") or props.get("url")
    return names.EMAIL_CLICKS, _head(message) | {"campaign_id": campaign, "url": url}


TRACKED: dict[str, Callable[[dict[str, Any]], Mapped]] = {
    "Order Completed": _order_completed,
    "Product Added": _cart("add"),
    "Product Removed": _cart("remove"),
    "Checkout Started": _cart("checkout_started"),
    "Email Opened": _email_opened,
    "Email Link Clicked": _email_clicked,
}


def _identify(message: dict[str, Any]) -> Mapped:
    raw = message.get("traits") or {}
    if not isinstance(raw, dict):
        raise InvalidEvent("traits: expected an object")
    head = _head(message)
    traits: dict[str, Any] = {}
    for ours, theirs in (
        ("email", "email"),
        ("first_name", "firstName"),
        ("gender", "gender"),
        ("industry", "industry"),
        ("interests", "interests"),
        ("source", "source"),
    ):
        if raw.get(theirs) is not None:
            traits[ours] = raw[theirs]
    address = raw.get("address")
    if isinstance(address, dict):
        for field in ("city", "country"):
            if address.get(field) is not None:
                traits[field] = address[field]
    birthday = raw.get("birthday")
    if isinstance(birthday, str) and BIRTHDAY.match(birthday):
        traits["birth_year"] = int(birthday[:4])
    consent = raw.get("email_consent", raw.get("emailConsent"))
    if consent is not None:
        traits["email_consent"] = consent
    return names.PROFILE_UPDATES, head | {"traits": traits}


def to_contract(message: Any) -> Mapped:
    """(topic, contract value) for one Segment message, or InvalidEvent with the reason."""
    if not isinstance(message, dict):
        raise InvalidEvent("expected a Segment message object")
    kind = message.get("type")
    if kind == "identify":
        return _identify(message)
    if kind == "track":
        event = message.get("event")
        mapper = TRACKED.get(event) if isinstance(event, str) else None
        if mapper is None:
            raise InvalidEvent(f"event: {event!r} is not mapped (mapped: {', '.join(TRACKED)})")
        return mapper(message)
    raise InvalidEvent("type: only track and identify are accepted")


def messages(body: Any) -> list[Any]:
    """The messages of a request body: one message, or Segment's {"batch": [...]}."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        return list(body["batch"])
    return [body]
