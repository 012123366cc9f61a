"""Segment's tracking spec mapped onto the contract: each mapped message decodes cleanly."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from config import names
from config.errors import InvalidEvent
from streams.events import CartEvent, EmailClick, EmailOpen, ProfileUpdate, Purchase, decode
from streams.segment_spec import messages, to_contract

WHEN = "2026-03-01T10:00:00.000Z"
WHEN_MS = 1_772_359_200_000


def message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "userId": "u1", "messageId": "m1", "timestamp": WHEN, **fields}


def decoded(msg: dict[str, Any]) -> Any:
    topic, value = to_contract(msg)
    return topic, decode(topic, b"u1", orjson.dumps(value))


def test_order_completed_is_a_purchase() -> None:
    msg = message(
        "track",
        event="Order Completed",
        properties={
            "order_id": "o9",
            "total": 57.5,
            "currency": "EUR",
            "products": [
                {"product_id": "p1", "category": "shoes", "quantity": 1, "price": 50},
                {"sku": "s2", "category": "socks", "quantity": 3, "price": 2.5},
            ],
        },
    )
    topic, event = decoded(msg)
    assert topic == names.PURCHASES
    assert isinstance(event, Purchase)
    assert (event.event_id, event.customer_id, event.ts) == ("m1", "u1", WHEN_MS)
    assert (event.order_id, event.total, event.currency) == ("o9", 57.5, "EUR")
    assert [(i.sku, i.category, i.quantity, i.unit_price) for i in event.items] == [
        ("p1", "shoes", 1, 50.0),
        ("s2", "socks", 3, 2.5),
    ]


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("Product Added", "add"),
        ("Product Removed", "remove"),
        ("Checkout Started", "checkout_started"),
    ],
)
def test_cart_events(event: str, action: str) -> None:
    props = {"sku": "s1", "category": "shoes", "quantity": 2, "price": 40}
    topic, cart = decoded(message("track", event=event, properties=props))
    assert topic == names.CART_EVENTS
    assert isinstance(cart, CartEvent)
    assert cart.action == action
    if action != "checkout_started":
        assert (cart.sku, cart.category, cart.quantity) == ("s1", "shoes", 2)


def test_email_opened_and_clicked() -> None:
    topic, opened = decoded(
        message("track", event="Email Opened", properties={"campaign_id": "c7"})
    )
    assert topic == names.EMAIL_OPENS
    assert isinstance(opened, EmailOpen)
    assert opened.campaign_id == "c7"
    props = {"campaign_id": "c7", "link_url": "https://shop.test/a"}
    topic, clicked = decoded(message("track", event="Email Link Clicked", properties=props))
    assert topic == names.EMAIL_CLICKS
    assert isinstance(clicked, EmailClick)
    assert clicked.url == "https://shop.test/a"


def test_identify_maps_traits_and_drops_what_no_segment_needs() -> None:
    traits = {
        "email": "ann@example.test",
        "firstName": "Ann",
        "birthday": "1990-05-17",
        "gender": "Female",
        "address": {"city": "Berlin", "country": "DE"},
        "industry": "retail",
        "emailConsent": True,
        "plan": "gold",
    }
    topic, profile = decoded(message("identify", traits=traits))
    assert topic == names.PROFILE_UPDATES
    assert isinstance(profile, ProfileUpdate)
    assert profile.traits == {
        "birth_year": 1990,
        "gender": "female",
        "city": "Berlin",
        "country": "DE",
        "industry": "retail",
        "email_consent": True,
    }


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (message("page"), "type: only track and identify are accepted"),
        (
            message("track", event="Signed Up"),
            "event: 'Signed Up' is not mapped (mapped: Order Completed, Product Added, "
            "Product Removed, Checkout Started, Email Opened, Email Link Clicked)",
        ),
        (
            {**message("identify"), "userId": None},
            "userId: missing (anonymous events are not segmented)",
        ),
        ({**message("identify"), "messageId": ""}, "messageId: missing"),
        ({"type": "identify", "userId": "u1", "messageId": "m"}, "timestamp: missing"),
        ("nope", "expected a Segment message object"),
    ],
)
def test_refusals(msg: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        to_contract(msg)
    assert caught.value.reason == reason


def test_batch_unpacks_and_a_single_message_stays_one() -> None:
    single = message("identify")
    assert messages({"batch": [single, single]}) == [single, single]
    assert messages(single) == [single]
