"""Segment's tracking spec mapped onto the contract: each mapped message decodes cleanly."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from config import names
from config.errors import InvalidEvent
from streams.events import (
    CartEvent,
    EmailClick,
    EmailOpen,
    EmailSend,
    IdentityLink,
    PageView,
    ProfileUpdate,
    Purchase,
    decode,
    record_key,
)
from streams.segment_spec import IGNORED_CALLS, Ignored, link_of, messages, to_contract

WHEN = "2026-03-01T10:00:00.000Z"
WHEN_MS = 1_772_359_200_000


def message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "userId": "u1", "messageId": "m1", "timestamp": WHEN, **fields}


RECEIVED = 1_772_400_000_000


def decoded(msg: dict[str, Any]) -> Any:
    mapped = to_contract(msg, RECEIVED)
    assert not isinstance(mapped, Ignored), mapped
    topic, value = mapped
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


@pytest.mark.parametrize(
    ("event", "props", "campaign", "segment"),
    [
        ("Email Delivered", {"campaign_id": "c7", "segment": "lapsed"}, "c7", "lapsed"),
        ("Email Sent", {"campaign_name": "Spring sale"}, "Spring sale", None),
        ("Email Delivered", {"email_id": "e-42"}, "e-42", None),
    ],
)
def test_email_delivered_and_sent_record_a_send(
    event: str, props: dict[str, Any], campaign: str, segment: str | None
) -> None:
    topic, sent = decoded(message("track", event=event, properties=props))
    assert topic == names.EMAIL_SENDS
    assert isinstance(sent, EmailSend)
    assert (sent.campaign_id, sent.segment, sent.customer_id) == (campaign, segment, "u1")


def test_a_timezone_comes_from_the_traits_or_the_sdks_context() -> None:
    _, update = decoded(message("identify", traits={"timezone": "Europe/Berlin"}))
    assert update.traits["timezone"] == "Europe/Berlin"  # type: ignore[union-attr]
    _, update = decoded(message("identify", traits={}, context={"timezone": "America/Chicago"}))
    assert update.traits["timezone"] == "America/Chicago"  # type: ignore[union-attr]
    # A zone the machine does not know is dropped; the rest of the identify still counts.
    odd = message("identify", traits={"emailConsent": False}, context={"timezone": "GMT+0530"})
    _, update = decoded(odd)
    assert update.traits == {"email_consent": False}  # type: ignore[union-attr]


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
        ({**message("identify"), "messageId": ""}, "messageId: expected 1 to 256 characters"),
        ({**message("identify"), "messageId": None}, "messageId: missing"),
        (
            {**message("identify"), "userId": None, "anonymousId": None},
            "userId or anonymousId: one of them is required",
        ),
        ({**message("identify"), "userId": ["u1"]}, "userId: expected a string"),
        ({**message("identify"), "userId": True}, "userId: expected a string"),
        ({**message("identify"), "userId": "x" * 257}, "userId: expected 1 to 256 characters"),
        ({**message("track")}, "event: missing (a track call names its event)"),
        ({**message("identify"), "traits": ["a"]}, "traits: expected an object"),
        (
            {**message("unknown")},
            "type: expected one of identify, track, page, screen, group, alias",
        ),
        ({"userId": "u1", "messageId": "m"}, "type: missing"),
        ("nope", "expected a Segment message object"),
    ],
)
def test_refusals(msg: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        to_contract(msg, RECEIVED)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        *((message(kind), why) for kind, why in IGNORED_CALLS.items()),
        (
            message("track", event="Signed Up"),
            "track event 'Signed Up' is not one segstream segments on",
        ),
    ],
)
def test_valid_calls_segstream_does_not_segment_on_are_ignored_with_the_reason(
    msg: Any, reason: str
) -> None:
    assert to_contract(msg, RECEIVED) == Ignored(reason)


@pytest.mark.parametrize(
    "spelling",
    [
        {"userId": "u1", "messageId": "m1"},
        {"user_id": "u1", "message_id": "m1"},
        {"userId": None, "user_id": "u1", "anonymousId": None, "messageId": "m1"},
    ],
)
def test_user_id_and_message_id_in_either_spelling(spelling: dict[str, Any]) -> None:
    msg = {"type": "identify", "timestamp": WHEN, "traits": {"gender": "x"}, **spelling}
    topic, update = decoded(msg)
    assert topic == names.PROFILE_UPDATES
    assert (update.event_id, update.customer_id, update.ts) == ("m1", "u1", WHEN_MS)


def test_a_number_as_user_id_is_its_text() -> None:
    msg = {**message("identify"), "userId": 42}
    mapped = to_contract(msg, RECEIVED)
    assert not isinstance(mapped, Ignored) and mapped[1]["customer_id"] == "42"


def test_rudderstack_sends_identify_traits_in_the_context() -> None:
    msg = {**message("identify"), "context": {"traits": {"gender": "female", "industry": "retail"}}}
    _, update = decoded(msg)
    assert isinstance(update, ProfileUpdate)
    assert update.traits == {"gender": "female", "industry": "retail"}


def test_top_level_traits_win_over_the_context() -> None:
    msg = {**message("identify", traits={"gender": "male"}), "context": {"traits": {"gender": "x"}}}
    assert decoded(msg)[1].traits == {"gender": "male"}


def test_a_missing_timestamp_is_the_time_received() -> None:
    msg = {k: v for k, v in message("identify").items() if k != "timestamp"}
    assert decoded(msg)[1].ts == RECEIVED


def test_the_write_keys_source_is_kept_on_the_event() -> None:
    mapped = to_contract(message("identify"), RECEIVED, source="web")
    assert not isinstance(mapped, Ignored) and mapped[1]["source"] == "web"
    plain = to_contract(message("identify"), RECEIVED)
    assert not isinstance(plain, Ignored) and "source" not in plain[1]


def test_batch_unpacks_and_a_single_message_stays_one() -> None:
    single = message("identify")
    assert messages({"batch": [single, single]}) == [single, single]
    assert messages(single) == [single]


def test_other_identify_traits_go_by_snake_case_name_and_declared_ones_are_kept() -> None:
    msg = message("identify", traits={"incomeBand": "high", "jobTitle": "cto", "plan": None})
    mapped = to_contract(msg, RECEIVED)
    assert not isinstance(mapped, Ignored)
    topic, value = mapped
    assert value["traits"] == {"income_band": "high", "job_title": "cto"}
    update = decode(topic, b"u1", orjson.dumps(value), traits={"income_band": "string"})
    assert isinstance(update, ProfileUpdate)
    assert update.traits == {"income_band": "high"}


@pytest.mark.parametrize(
    ("event", "properties", "suppression", "opt_in"),
    [
        ("Unsubscribed", {}, "unsubscribed", False),
        ("Email Bounced", {}, "bounced", False),
        ("Email Bounced", {"bounce_type": "hard"}, "bounced", False),
        ("Email Marked as Spam", {}, "spam", False),
        ("Email Subscribed", {}, None, True),
    ],
)
def test_email_events_that_change_consent_are_profile_updates(
    event: str, properties: dict[str, Any], suppression: str | None, opt_in: bool
) -> None:
    topic, update = decoded(message("track", event=event, properties=properties))
    assert topic == names.PROFILE_UPDATES
    assert isinstance(update, ProfileUpdate)
    assert (update.suppression, update.opt_in, update.traits) == (suppression, opt_in, {})


def test_a_soft_bounce_is_ignored() -> None:
    msg = message("track", event="Email Bounced", properties={"bounce_type": "soft"})
    assert to_contract(msg, RECEIVED) == Ignored("a soft bounce does not suppress the address")


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            message("page", name="Runner", properties={"url": "https://s.example/p/run"}),
            ("https://s.example/p/run", None, None),
        ),
        (
            message("page", category="Shoes", context={"page": {"url": "https://s.example/c"}}),
            ("https://s.example/c", None, "Shoes"),
        ),
        (
            message(
                "track", event="Product Viewed", properties={"sku": "sku-1", "category": "shoes"}
            ),
            ("product:sku-1", "sku-1", "shoes"),
        ),
        (
            message(
                "track",
                event="Product Viewed",
                properties={"product_id": "p-9", "url": "https://s.example/p/9"},
            ),
            ("https://s.example/p/9", "p-9", None),
        ),
    ],
)
def test_pages_and_product_views_are_page_views(
    msg: dict[str, Any], expected: tuple[str, str | None, str | None]
) -> None:
    topic, view = decoded(msg)
    assert topic == names.PAGE_VIEWS
    assert isinstance(view, PageView)
    assert (view.url, view.sku, view.category) == expected


def test_a_page_call_without_a_url_is_refused() -> None:
    with pytest.raises(InvalidEvent) as caught:
        to_contract(message("page", name="Home"), RECEIVED)
    assert caught.value.reason == "properties.url: missing (a page call names its page)"


# -- anonymous visitors and identity links ------------------------------------------------------


def test_a_message_with_only_an_anonymous_id_is_the_visitors() -> None:
    msg = message("track", userId=None, anonymousId="a-1", event="Product Viewed")
    mapped = to_contract(msg | {"properties": {"sku": "s1", "url": "https://s/p/s1"}}, RECEIVED)
    assert not isinstance(mapped, Ignored)
    topic, value = mapped
    assert "customer_id" not in value and value["anonymous_id"] == "a-1"
    event = decode(topic, record_key(topic, value).encode(), orjson.dumps(value))
    assert event.customer_id == "anon:a-1"
    assert link_of(msg, RECEIVED) is None  # only an identify links


def test_an_identify_with_both_ids_updates_the_profile_and_links_the_ids() -> None:
    msg = message("identify", anonymousId="a-1", traits={"country": "DE"})
    mapped = to_contract(msg, RECEIVED)
    assert not isinstance(mapped, Ignored) and mapped[0] == names.PROFILE_UPDATES
    assert mapped[1]["customer_id"] == "u1"
    link = link_of(msg, RECEIVED)
    assert link is not None
    topic, value = link
    assert decode(topic, record_key(topic, value).encode(), orjson.dumps(value)) == IdentityLink(
        "m1", "a-1", "u1", WHEN_MS
    )


def test_an_alias_is_a_link_from_the_previous_id() -> None:
    mapped = to_contract(message("alias", previousId="a-1"), RECEIVED)
    assert mapped == (
        names.IDENTITY_LINKS,
        {"event_id": "m1", "customer_id": "u1", "ts": WHEN_MS, "anonymous_id": "a-1"},
    )
    with pytest.raises(InvalidEvent, match="previousId and userId"):
        to_contract(message("alias"), RECEIVED)
