"""Segment's tracking spec (as Segment's and RudderStack's SDKs send it) mapped onto segstream's
event contract, so a shop already instrumented for Segment points its SDK at segstream.

Each message is mapped, ignored or refused:
- mapped: identify (traits, or RudderStack's ``context.traits``) -> profile-updates; track
  "Order Completed" -> purchases; "Product Added" / "Product Removed" / "Checkout Started" ->
  cart-events; "Email Opened" -> email-opens; "Email Link Clicked" -> email-clicks;
  "Email Delivered" and "Email Sent" -> email-sends;
  "Unsubscribed", "Email Bounced" (not a soft bounce), "Email Marked as Spam" -> a profile update
  that suppresses the address, "Email Subscribed" -> the explicit opt-in that lifts it;
  page, and track "Product Viewed" -> page-views;
- linked: an identify with both ``userId`` and ``anonymousId`` also links the anonymous id to
  the customer (``link_of``: an identity-links record), and an alias (``previousId`` -> ``userId``)
  is only that link; a message with only an ``anonymousId`` is the anonymous visitor's, merged
  into the customer once linked;
- ignored, with the reason: calls that are valid but that segstream does not segment on (other
  track events, screen and group calls);
- refused (``InvalidEvent``): a message that breaks the spec (no messageId, a bad timestamp).

The customer is ``userId`` (or ``user_id``, as the spec's examples write it); an explicit null
counts as absent, as the SDKs send it. The message's ``messageId`` becomes the event id, so an
SDK's retry of a message is counted once (each customer remembers the ids it applied for 24
hours: ``engine.state.DEDUP_WINDOW_MS``). ``source`` on each event is the name of the write key
the message came with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config import names
from config.errors import InvalidEvent
from streams.events import known_zone
from streams.timestamps import parse_ts

Mapped = tuple[str, dict[str, Any]]
BIRTHDAY = re.compile(r"[0-9]{4}-")
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Segment's identify traits that the mapping reads itself.
MAPPED_TRAITS = frozenset(
    {"email", "firstName", "gender", "industry", "interests", "source", "address", "birthday"}
    | {"email_consent", "emailConsent"}
)
MAX_ID = 256


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid message that segstream does not segment on, and why."""

    reason: str


# The calls of the spec, each also a route of its own (``/v1/<call>``) beside ``/v1/batch``.
CALLS = ("track", "identify", "page", "screen", "group", "alias")
IGNORED_CALLS = {
    "screen": "screen calls are acknowledged; segstream segments on shop events, not app screens",
    "group": "group calls are acknowledged; segstream segments people, not accounts",
}


def _text(message: dict[str, Any], *fields: str) -> str | None:
    """The first of ``fields`` that is set (null counts as absent), as text."""
    for field in fields:
        value = message.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidEvent(f"{field}: expected a string")
        text = str(value)
        if not text or len(text) > MAX_ID:
            raise InvalidEvent(f"{field}: expected 1 to {MAX_ID} characters")
        return text
    return None


def _head(message: dict[str, Any], customer: str | None, received_at: int) -> dict[str, Any]:
    """The contract's event_id, ts and customer_id (or, for an anonymous visitor, its
    anonymous_id)."""
    message_id = _text(message, "messageId", "message_id")
    if message_id is None:
        raise InvalidEvent("messageId: missing")
    when = message.get("timestamp") or message.get("originalTimestamp")
    ts = received_at if when is None else parse_ts(when, "timestamp")
    if customer is None:
        return {"event_id": message_id, "anonymous_id": _anonymous_id(message), "ts": ts}
    return {"event_id": message_id, "customer_id": customer, "ts": ts}


def _anonymous_id(message: dict[str, Any]) -> str | None:
    return _text(message, "anonymousId", "anonymous_id")


def link_of(message: Any, received_at: int) -> Mapped | None:
    """The identity link an identify with both ``userId`` and ``anonymousId`` makes besides its
    profile update (an alias is only a link: ``to_contract`` maps it)."""
    if not isinstance(message, dict) or message.get("type") != "identify":
        return None
    customer, anonymous = _text(message, "userId", "user_id"), _anonymous_id(message)
    if customer is None or anonymous is None:
        return None
    head = _head(message, customer, received_at)
    return names.IDENTITY_LINKS, head | {"anonymous_id": anonymous}


def _alias(message: dict[str, Any], received_at: int) -> Mapped:
    """alias(previousId, userId): the previous id is the anonymous id the customer used."""
    customer = _text(message, "userId", "user_id")
    previous = _text(message, "previousId", "previous_id")
    if customer is None or previous is None:
        raise InvalidEvent("previousId and userId: an alias names both")
    head = _head(message, customer, received_at)
    return names.IDENTITY_LINKS, head | {"anonymous_id": previous}


def _properties(message: dict[str, Any]) -> dict[str, Any]:
    props = message.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidEvent("properties: expected an object")
    return props


def _sku(item: dict[str, Any]) -> Any:
    return item.get("sku") or item.get("product_id")


def _order_completed(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
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
    return names.PURCHASES, head | {
        "order_id": props.get("order_id"),
        "total": total,
        "currency": props.get("currency", "USD"),
        "items": items,
    }


Mapper = Callable[[dict[str, Any], dict[str, Any]], "Mapped | Ignored"]


def _cart(action: str) -> Mapper:
    def mapped(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
        props = _properties(message)
        value = head | {"action": action}
        if action != "checkout_started":
            value |= {
                "sku": _sku(props),
                "category": props.get("category") or "uncategorized",
                "quantity": props.get("quantity", 1),
                "unit_price": props.get("price", 0),
            }
        return names.CART_EVENTS, value

    return mapped


def _email_opened(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    props = _properties(message)
    campaign = props.get("campaign_id") or props.get("email_id")
    return names.EMAIL_OPENS, head | {"campaign_id": campaign}


def _email_sent(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    props = _properties(message)
    campaign = props.get("campaign_id") or props.get("campaign_name") or props.get("email_id")
    sent = head | {"campaign_id": campaign}
    if props.get("segment") is not None:
        sent["segment"] = props["segment"]
    return names.EMAIL_SENDS, sent


def _email_clicked(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    props = _properties(message)
    campaign = props.get("campaign_id") or props.get("email_id")
    url = props.get("link_url") or props.get("url")
    return names.EMAIL_CLICKS, head | {"campaign_id": campaign, "url": url}


def _url_of(message: dict[str, Any], props: dict[str, Any]) -> Any:
    """The page's URL: the properties', else the SDK's context.page (else a path)."""
    context = message.get("context")
    page = context.get("page") if isinstance(context, dict) else None
    page = page if isinstance(page, dict) else {}
    return props.get("url") or page.get("url") or props.get("path") or page.get("path")


def _product_viewed(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    props = _properties(message)
    sku = _sku(props)
    return names.PAGE_VIEWS, head | {
        "url": _url_of(message, props) or f"product:{sku}",
        "sku": sku,
        "category": props.get("category"),
    }


def _page(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    props = _properties(message)
    url = _url_of(message, props)
    if not url:
        raise InvalidEvent("properties.url: missing (a page call names its page)")
    category = props.get("category") or message.get("category")
    return names.PAGE_VIEWS, head | {"url": url, "category": category}


def _consent(suppression: str | None) -> Mapper:
    """Segment's email events that change whether the address may be mailed: a profile update
    that suppresses it (or, for suppression None, the explicit opt-in that lifts that)."""

    def mapped(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
        change: dict[str, Any] = {"suppression": suppression} if suppression else {"opt_in": True}
        return names.PROFILE_UPDATES, head | {"traits": {}} | change

    return mapped


def _bounced(message: dict[str, Any], head: dict[str, Any]) -> Mapped | Ignored:
    kind = _properties(message).get("bounce_type") or _properties(message).get("type")
    if isinstance(kind, str) and kind.lower() == "soft":
        return Ignored("a soft bounce does not suppress the address")
    return _consent("bounced")(message, head)


TRACKED: dict[str, Mapper] = {
    "Order Completed": _order_completed,
    "Product Added": _cart("add"),
    "Product Removed": _cart("remove"),
    "Checkout Started": _cart("checkout_started"),
    "Email Opened": _email_opened,
    "Email Link Clicked": _email_clicked,
    "Email Delivered": _email_sent,
    "Email Sent": _email_sent,
    "Product Viewed": _product_viewed,
    "Unsubscribed": _consent("unsubscribed"),
    "Email Bounced": _bounced,
    "Email Marked as Spam": _consent("spam"),
    "Email Subscribed": _consent(None),
}


def _traits(message: dict[str, Any]) -> dict[str, Any]:
    """Segment sends identify traits at the top; RudderStack's SDK in ``context.traits``."""
    raw = message.get("traits")
    if raw is None:
        context = message.get("context")
        raw = context.get("traits") if isinstance(context, dict) else None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InvalidEvent("traits: expected an object")
    return raw


def _context(message: dict[str, Any]) -> dict[str, Any]:
    context = message.get("context")
    return context if isinstance(context, dict) else {}


def _identify(message: dict[str, Any], head: dict[str, Any]) -> Mapped:
    raw = _traits(message)
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
    zone = raw.get("timezone") or _context(message).get("timezone")
    if known_zone(zone):  # a browser's odd zone is dropped, not a reason to lose the identify
        traits["timezone"] = zone
    consent = raw.get("email_consent", raw.get("emailConsent"))
    if consent is not None:
        traits["email_consent"] = consent
    # Any other trait goes by its snake_case name: the decoder keeps those the catalog declares
    # (incomeBand or income_band -> income_band) and drops the rest.
    for theirs, value in raw.items():
        ours = _snake_case(theirs)
        if value is not None and theirs not in MAPPED_TRAITS and ours not in traits:
            traits[ours] = value
    return names.PROFILE_UPDATES, head | {"traits": traits}


def _snake_case(name: str) -> str:
    return CAMEL.sub("_", name).lower()


def to_contract(message: Any, received_at: int, source: str | None = None) -> Mapped | Ignored:
    """(topic, contract value) for one message, or why it is ignored; InvalidEvent with the
    reason if it breaks the spec. ``received_at`` stands in for a missing timestamp."""
    if not isinstance(message, dict):
        raise InvalidEvent("expected a Segment message object")
    kind = message.get("type")
    if kind in IGNORED_CALLS:
        return Ignored(IGNORED_CALLS[kind])
    if kind == "alias":
        return _alias(message, received_at)
    if kind not in ("identify", "track", "page"):
        raise InvalidEvent(
            "type: expected one of identify, track, page, screen, group, alias"
            if kind is not None
            else "type: missing"
        )
    customer = _text(message, "userId", "user_id")
    if customer is None and _anonymous_id(message) is None:
        raise InvalidEvent("userId or anonymousId: one of them is required")
    if kind == "identify":
        mapper: Mapper = _identify
    elif kind == "page":
        mapper = _page
    else:
        event = message.get("event")
        if not isinstance(event, str) or not event:
            raise InvalidEvent("event: missing (a track call names its event)")
        if event not in TRACKED:
            return Ignored(f"track event {event!r} is not one segstream segments on")
        mapper = TRACKED[event]
    result = mapper(message, _head(message, customer, received_at))
    if isinstance(result, Ignored):
        return result
    topic, value = result
    return topic, value if source is None else value | {"source": source}


def messages(body: Any) -> list[Any]:
    """The messages of a request body: one message, or {"batch": [...]}."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        return list(body["batch"])
    return [body]
