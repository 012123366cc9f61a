"""streams.events.decode: the event contract of the input topics; decode_tick."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest

from config import names
from config.errors import InvalidEvent
from streams.events import (
    MAX_EVENT_BYTES,
    CartEvent,
    EmailClick,
    EmailOpen,
    EmailSend,
    Erasure,
    Event,
    IdentityLink,
    LineItem,
    PageView,
    ProfileUpdate,
    Purchase,
    SupportContact,
    decode,
    decode_change,
    decode_tick,
    record_key,
)

CUSTOMER = "c000042"
KEY = CUSTOMER.encode()
VISITOR = "visitor-7"
VISITOR_KEY = b"anon:visitor-7"
TS_TEXT = "2026-01-01T00:00:00Z"
TS_MS = 1_767_225_600_000  # TS_TEXT in epoch milliseconds
DROP = object()  # a field value meaning "leave the field out"

HEAD: dict[str, Any] = {"event_id": "ev-1", "customer_id": CUSTOMER, "ts": TS_TEXT}

BODIES: dict[str, dict[str, Any]] = {
    names.PURCHASES: {
        "order_id": "o-1",
        "total": 59.5,
        "currency": "EUR",
        "items": [
            {"sku": "sku-runner", "category": "shoes", "quantity": 1, "unit_price": 35.5},
            {"sku": "sku-sock-3pk", "category": "socks", "quantity": 2, "unit_price": 12},
        ],
    },
    names.EMAIL_OPENS: {"campaign_id": "camp-1"},
    names.EMAIL_CLICKS: {"campaign_id": "camp-2", "url": "https://shop.example/sale"},
    names.CART_EVENTS: {
        "action": "add",
        "sku": "sku-boot",
        "category": "shoes",
        "quantity": 1,
        "unit_price": 140,
    },
    names.PROFILE_UPDATES: {
        "traits": {
            "gender": "Female",
            "country": "DE",
            "city": "Berlin",
            "source": "Social_Ads",
            "industry": "retail",
            "birth_year": 1990,
            "interests": ["running", "yoga"],
            "email_consent": True,
        }
    },
    names.SUPPORT_CONTACTS: {"channel": "chat", "reason": "late delivery"},
    names.PAGE_VIEWS: {
        "url": "https://shop.example/p/sku-boot",
        "sku": "sku-boot",
        "category": "shoes",
    },
    names.EMAIL_SENDS: {"campaign_id": "camp-3", "segment": "lapsed"},
    # An erasure request carries only customer_id and ts; the head's event_id is ignored.
    names.CUSTOMER_ERASURES: {},
    names.IDENTITY_LINKS: {"anonymous_id": VISITOR},
}

EXPECTED: dict[str, Event | Erasure | IdentityLink] = {
    names.PURCHASES: Purchase(
        event_id="ev-1",
        customer_id=CUSTOMER,
        ts=TS_MS,
        order_id="o-1",
        total=59.5,
        currency="EUR",
        items=(
            LineItem(sku="sku-runner", category="shoes", quantity=1, unit_price=35.5),
            LineItem(sku="sku-sock-3pk", category="socks", quantity=2, unit_price=12.0),
        ),
    ),
    names.EMAIL_OPENS: EmailOpen(
        event_id="ev-1", customer_id=CUSTOMER, ts=TS_MS, campaign_id="camp-1"
    ),
    names.EMAIL_CLICKS: EmailClick(
        event_id="ev-1",
        customer_id=CUSTOMER,
        ts=TS_MS,
        campaign_id="camp-2",
        url="https://shop.example/sale",
    ),
    names.CART_EVENTS: CartEvent(
        event_id="ev-1",
        customer_id=CUSTOMER,
        ts=TS_MS,
        action="add",
        sku="sku-boot",
        category="shoes",
        quantity=1,
        unit_price=140.0,
    ),
    names.PROFILE_UPDATES: ProfileUpdate(
        event_id="ev-1",
        customer_id=CUSTOMER,
        ts=TS_MS,
        traits={
            "gender": "female",
            "country": "DE",
            "city": "Berlin",
            "source": "social_ads",
            "industry": "retail",
            "birth_year": 1990,
            "interests": ["running", "yoga"],
            "email_consent": True,
        },
    ),
    names.SUPPORT_CONTACTS: SupportContact(
        event_id="ev-1", customer_id=CUSTOMER, ts=TS_MS, channel="chat", reason="late delivery"
    ),
    names.PAGE_VIEWS: PageView(
        event_id="ev-1",
        customer_id=CUSTOMER,
        ts=TS_MS,
        url="https://shop.example/p/sku-boot",
        sku="sku-boot",
        category="shoes",
    ),
    names.EMAIL_SENDS: EmailSend(
        event_id="ev-1", customer_id=CUSTOMER, ts=TS_MS, campaign_id="camp-3", segment="lapsed"
    ),
    names.CUSTOMER_ERASURES: Erasure(customer_id=CUSTOMER, ts=TS_MS),
    names.IDENTITY_LINKS: IdentityLink(
        event_id="ev-1", anonymous_id=VISITOR, customer_id=CUSTOMER, ts=TS_MS
    ),
}


def key_of(topic: str) -> bytes:
    """A valid payload's record key: the customer's, or for a link the anonymous id's."""
    return VISITOR_KEY if topic == names.IDENTITY_LINKS else KEY


def payload(topic: str, **changes: object) -> dict[str, Any]:
    """The valid payload of ``topic`` with fields replaced, added, or left out (DROP)."""
    value = HEAD | BODIES[topic] | changes
    return {name: field for name, field in value.items() if field is not DROP}


def item(**changes: object) -> dict[str, Any]:
    """A valid purchase line item with fields replaced or left out (DROP)."""
    value = {"sku": "sku-tent", "category": "outdoor", "quantity": 1, "unit_price": 320} | changes
    return {name: field for name, field in value.items() if field is not DROP}


def traits(**changes: object) -> dict[str, Any]:
    """A profile-updates payload whose traits are exactly ``changes``."""
    return payload(names.PROFILE_UPDATES, traits=dict(changes))


def encode(value: object) -> bytes:
    return orjson.dumps(value)


def reason_of(topic: str, key: bytes | None, raw: bytes, max_bytes: int = MAX_EVENT_BYTES) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode(topic, key, raw, max_bytes)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def test_the_tables_cover_every_input_topic() -> None:
    assert set(BODIES) == set(EXPECTED) == set(names.INPUT_TOPICS)


@pytest.mark.parametrize("topic", names.INPUT_TOPICS)
def test_decode_valid(topic: str) -> None:
    assert decode(topic, key_of(topic), encode(payload(topic))) == EXPECTED[topic]
    assert record_key(topic, payload(topic)) == key_of(topic).decode()


@pytest.mark.parametrize("topic", names.INPUT_TOPICS)
def test_decode_accepts_epoch_milliseconds(topic: str) -> None:
    assert decode(topic, key_of(topic), encode(payload(topic, ts=TS_MS + 5))).ts == TS_MS + 5


@pytest.mark.parametrize("topic", names.INPUT_TOPICS)
def test_unknown_fields_are_ignored(topic: str) -> None:
    extra = payload(topic, schema_version=3, meta={"source": "web", "ids": [1, 2]}, note=None)
    assert decode(topic, key_of(topic), encode(extra)) == EXPECTED[topic]


def test_unknown_fields_in_items_and_traits_are_ignored() -> None:
    purchase = payload(names.PURCHASES, items=[item(colour="red")], total=320)
    decoded = decode(names.PURCHASES, KEY, encode(purchase))
    assert isinstance(decoded, Purchase)
    assert decoded.items == (LineItem("sku-tent", "outdoor", 1, 320.0),)
    profile = decode(names.PROFILE_UPDATES, KEY, encode(traits(country="NL", shoe_size=42)))
    assert isinstance(profile, ProfileUpdate)
    assert profile.traits == {"country": "NL"}


def test_purchase_quantity_sums_the_items() -> None:
    decoded = EXPECTED[names.PURCHASES]
    assert isinstance(decoded, Purchase)
    assert decoded.quantity == 3


@pytest.mark.parametrize(
    ("raw_traits", "expected"),
    [
        pytest.param(
            {"email": "ada@example.com", "first_name": "Ada", "country": "FR"},
            {"country": "FR"},
            id="email-and-first-name-dropped",
        ),
        pytest.param({"email": None, "first_name": None}, {}, id="null-personal-traits"),
        pytest.param(
            {"interests": ["Running", "running", "YOGA", "yoga", "Hiking"]},
            {"interests": ["hiking", "running", "yoga"]},
            id="interests-lowercased-deduplicated",
        ),
        pytest.param({"interests": []}, {"interests": []}, id="no-interests"),
        pytest.param(
            {"gender": "MALE", "source": "Shop"}, {"gender": "male", "source": "shop"}, id="lower"
        ),
        pytest.param({"email_consent": False}, {"email_consent": False}, id="consent-false"),
        pytest.param({"birth_year": 1900}, {"birth_year": 1900}, id="year-lowest"),
        pytest.param({"birth_year": 2100}, {"birth_year": 2100}, id="year-highest"),
        pytest.param({}, {}, id="empty"),
    ],
)
def test_profile_traits(raw_traits: dict[str, Any], expected: dict[str, Any]) -> None:
    decoded = decode(names.PROFILE_UPDATES, KEY, encode(traits(**raw_traits)))
    assert isinstance(decoded, ProfileUpdate)
    assert decoded.traits == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"action": "checkout_started"},
            CartEvent("ev-1", CUSTOMER, TS_MS, "checkout_started", None, None, 0, 0.0),
            id="checkout-needs-no-sku",
        ),
        pytest.param(
            {"action": "checkout_started", "sku": "sku-lamp", "category": "outdoor"},
            CartEvent("ev-1", CUSTOMER, TS_MS, "checkout_started", "sku-lamp", "outdoor", 0, 0.0),
            id="checkout-with-sku",
        ),
        pytest.param(
            {"action": "remove", "sku": "sku-lamp", "category": "outdoor", "quantity": 2},
            CartEvent("ev-1", CUSTOMER, TS_MS, "remove", "sku-lamp", "outdoor", 2, 0.0),
            id="remove-needs-no-price",
        ),
    ],
)
def test_cart_actions(body: dict[str, Any], expected: CartEvent) -> None:
    assert decode(names.CART_EVENTS, KEY, encode(HEAD | body)) == expected


BUY, OPEN, CLICK, CART, PROFILE = (
    names.PURCHASES,
    names.EMAIL_OPENS,
    names.EMAIL_CLICKS,
    names.CART_EVENTS,
    names.PROFILE_UPDATES,
)
NOT_JSON = "value: not valid UTF-8 JSON"

INVALID = [
    # The record as a whole.
    pytest.param(
        BUY, KEY, b"not json", f"{NOT_JSON} (invalid literal, expected 'null')", id="not-json"
    ),
    pytest.param(
        BUY, KEY, b'{"event_id": "ev-1"', f"{NOT_JSON} (unexpected end of data)", id="cut"
    ),
    pytest.param(BUY, KEY, b"", f"{NOT_JSON} (Input is a zero-length, empty document)", id="empty"),
    pytest.param(
        OPEN,
        KEY,
        b'{"event_id": "ev-\xff", "customer_id": "c000042"}',
        f"{NOT_JSON} (str is not valid UTF-8: surrogates not allowed)",
        id="invalid-utf8",
    ),
    pytest.param(BUY, KEY, encode([payload(BUY)]), "value: expected a JSON object", id="array"),
    pytest.param(BUY, KEY, b'"text"', "value: expected a JSON object", id="string"),
    pytest.param(BUY, KEY, b"null", "value: expected a JSON object", id="null"),
    # The head every topic shares.
    pytest.param(
        OPEN, KEY, encode(payload(OPEN, event_id=DROP)), "event_id: missing", id="no-event-id"
    ),
    pytest.param(
        OPEN, KEY, encode(payload(OPEN, event_id=None)), "event_id: missing", id="null-event-id"
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, event_id=7)),
        "event_id: expected a string",
        id="int-event-id",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, event_id="")),
        "event_id: expected 1 to 256 characters",
        id="empty-event-id",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, event_id="e" * 257)),
        "event_id: expected 1 to 256 characters",
        id="long-event-id",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, customer_id=DROP)),
        "customer_id: missing",
        id="no-customer-id",
    ),
    pytest.param(
        OPEN,
        None,
        encode(payload(OPEN)),
        "key: missing; the record key must be the customer_id",
        id="absent-key",
    ),
    pytest.param(
        OPEN, b"", encode(payload(OPEN)), "key: does not match customer_id", id="empty-key"
    ),
    pytest.param(
        OPEN, b"c000043", encode(payload(OPEN)), "key: does not match customer_id", id="other-key"
    ),
    pytest.param(
        OPEN, KEY + b" ", encode(payload(OPEN)), "key: does not match customer_id", id="padded-key"
    ),
    pytest.param(OPEN, KEY, encode(payload(OPEN, ts=DROP)), "ts: missing", id="no-ts"),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, ts=None)),
        "ts: expected an RFC 3339 string or epoch milliseconds",
        id="null-ts",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, ts="tomorrow")),
        "ts: 'tomorrow' is not an RFC 3339 timestamp",
        id="bad-ts",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, ts="2026-01-01T00:00:00")),
        "ts: RFC 3339 timestamps need an offset such as Z",
        id="naive-ts",
    ),
    pytest.param(
        OPEN,
        KEY,
        encode(payload(OPEN, ts=1_767_225_600)),
        "ts: 1767225600 is before the year 2000",
        id="seconds-ts",
    ),
    # purchases
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, total=-1)),
        "total: -1 is outside 0..1000000000",
        id="neg-total",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, total=1_000_000_001)),
        "total: 1000000001 is outside 0..1000000000",
        id="huge-total",
    ),
    pytest.param(
        BUY, KEY, encode(payload(BUY, total="10")), "total: expected a number", id="str-total"
    ),
    pytest.param(
        BUY, KEY, encode(payload(BUY, total=True)), "total: expected a number", id="bool-total"
    ),
    pytest.param(BUY, KEY, encode(payload(BUY, total=DROP)), "total: missing", id="no-total"),
    pytest.param(
        BUY, KEY, encode(payload(BUY, order_id=DROP)), "order_id: missing", id="no-order-id"
    ),
    pytest.param(
        BUY, KEY, encode(payload(BUY, currency=DROP)), "currency: missing", id="no-currency"
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[])),
        "items: expected a non-empty list",
        id="empty-items",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=DROP)),
        "items: expected a non-empty list",
        id="no-items",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=item())),
        "items: expected a non-empty list",
        id="obj-items",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[{}] * 1001)),  # counted before any line is read
        "items: more than 1000 lines",
        id="too-many-items",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=["sku-tent"])),
        "items[0]: expected an object",
        id="str-item",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(), item(quantity=True)])),
        "items[1].quantity: expected a whole number",
        id="bool-quantity",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(quantity=0)])),
        "items[0].quantity: 0 is outside 1..1000000",
        id="zero-quantity",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(quantity=1.5)])),
        "items[0].quantity: expected a whole number",
        id="float-quantity",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(quantity=1_000_001)])),
        "items[0].quantity: 1000001 is outside 1..1000000",
        id="huge-quantity",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(sku=DROP)])),
        "items[0].sku: missing",
        id="item-no-sku",
    ),
    pytest.param(
        BUY,
        KEY,
        encode(payload(BUY, items=[item(unit_price=-0.01)])),
        "items[0].unit_price: -0.01 is outside 0..1000000000",
        id="negative-price",
    ),
    # email-opens, email-clicks
    pytest.param(
        OPEN, KEY, encode(payload(OPEN, campaign_id=DROP)), "campaign_id: missing", id="open-no-c"
    ),
    pytest.param(CLICK, KEY, encode(payload(CLICK, url=DROP)), "url: missing", id="click-no-url"),
    pytest.param(
        CLICK, KEY, encode(payload(CLICK, url=["x"])), "url: expected a string", id="click-list-url"
    ),
    # cart-events
    pytest.param(
        CART,
        KEY,
        encode(payload(CART, action="buy")),
        "action: expected one of add, remove, checkout_started",
        id="unknown-action",
    ),
    pytest.param(
        CART,
        KEY,
        encode(payload(CART, action="ADD")),
        "action: expected one of add, remove, checkout_started",
        id="upper-action",
    ),
    pytest.param(CART, KEY, encode(payload(CART, action=DROP)), "action: missing", id="no-action"),
    pytest.param(CART, KEY, encode(payload(CART, sku=DROP)), "sku: missing", id="add-no-sku"),
    pytest.param(
        CART, KEY, encode(payload(CART, quantity=DROP)), "quantity: missing", id="add-no-qty"
    ),
    pytest.param(
        CART, KEY, encode(payload(CART, unit_price=DROP)), "unit_price: missing", id="add-no-price"
    ),
    pytest.param(
        CART,
        KEY,
        encode(payload(CART, action="remove", quantity=0)),
        "quantity: 0 is outside 1..1000000",
        id="remove-zero-qty",
    ),
    # profile-updates
    pytest.param(
        PROFILE,
        KEY,
        encode(payload(PROFILE, traits=DROP)),
        "traits: expected an object",
        id="no-traits",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(payload(PROFILE, traits=[])),
        "traits: expected an object",
        id="list-traits",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(birth_year=1899)),
        "traits.birth_year: expected a year between 1900 and 2100",
        id="year-1899",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(birth_year="1990")),
        "traits.birth_year: expected a year between 1900 and 2100",
        id="year-string",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(birth_year=True)),
        "traits.birth_year: expected a year between 1900 and 2100",
        id="year-bool",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(birth_year=1990.5)),
        "traits.birth_year: expected a year between 1900 and 2100",
        id="year-float",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(interests="running")),
        "traits.interests: expected a list of strings",
        id="interests-string",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(interests=["running", 3])),
        "traits.interests: expected a list of strings",
        id="interests-int",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(interests=[""])),
        "traits.interests: expected a list of strings",
        id="interests-empty-string",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(email_consent="yes")),
        "traits.email_consent: expected true or false",
        id="consent-string",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(email_consent=1)),
        "traits.email_consent: expected true or false",
        id="consent-int",
    ),
    pytest.param(
        PROFILE, KEY, encode(traits(email=42)), "traits.email: expected a string", id="email-int"
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(first_name="")),
        "traits.first_name: expected 1 to 256 characters",
        id="first-name-empty",
    ),
    pytest.param(
        PROFILE,
        KEY,
        encode(traits(country=["DE"])),
        "traits.country: expected a string",
        id="country-list",
    ),
]


@pytest.mark.parametrize(("topic", "key", "raw", "expected"), INVALID)
def test_decode_rejects(topic: str, key: bytes | None, raw: bytes, expected: str) -> None:
    assert reason_of(topic, key, raw) == expected


def test_tombstone_is_rejected() -> None:
    assert reason_of(OPEN, KEY, cast("bytes", None)) == "value: empty record"


def test_size_limit_is_inclusive() -> None:
    raw = encode(payload(BUY))
    assert decode(BUY, KEY, raw, max_bytes=len(raw)) == EXPECTED[BUY]
    limit = len(raw) - 1
    assert (
        reason_of(BUY, KEY, raw, limit) == f"value: {len(raw)} bytes, over the {limit}-byte limit"
    )


def test_size_is_checked_before_parsing() -> None:
    raw = b"x" * (MAX_EVENT_BYTES + 1)
    assert reason_of(BUY, KEY, raw) == (
        f"value: {MAX_EVENT_BYTES + 1} bytes, over the {MAX_EVENT_BYTES}-byte limit"
    )


def test_default_limit_counts_unknown_fields() -> None:
    raw = encode(payload(OPEN, padding="p" * MAX_EVENT_BYTES))
    assert reason_of(OPEN, KEY, raw) == (
        f"value: {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit"
    )


def test_an_erasure_needs_no_event_id() -> None:
    raw = encode({"customer_id": CUSTOMER, "ts": TS_TEXT})
    erasure = decode(names.CUSTOMER_ERASURES, KEY, raw)
    assert erasure == Erasure(CUSTOMER, TS_MS)
    assert erasure.event_id == f"erasure:{CUSTOMER}:{TS_MS}"


@pytest.mark.parametrize(
    ("topic", "key", "value", "expected"),
    [
        pytest.param(
            names.SUPPORT_CONTACTS,
            KEY,
            payload(names.SUPPORT_CONTACTS, channel=DROP),
            "channel: missing",
            id="support-no-channel",
        ),
        pytest.param(
            names.SUPPORT_CONTACTS,
            KEY,
            payload(names.SUPPORT_CONTACTS, reason=""),
            "reason: expected 1 to 256 characters",
            id="support-empty-reason",
        ),
        pytest.param(
            names.CUSTOMER_ERASURES,
            b"c000043",
            {"customer_id": CUSTOMER, "ts": TS_TEXT},
            "key: does not match customer_id",
            id="erasure-wrong-key",
        ),
        pytest.param(
            names.CUSTOMER_ERASURES,
            KEY,
            {"customer_id": CUSTOMER},
            "ts: missing",
            id="erasure-no-ts",
        ),
    ],
)
def test_new_topics_reject(topic: str, key: bytes, value: dict[str, Any], expected: str) -> None:
    assert reason_of(topic, key, encode(value)) == expected


def test_decode_tick() -> None:
    raw = encode({"due": [[CUSTOMER, TS_MS], ["c2", TS_MS + 1]]})
    assert decode_tick(raw) == [(CUSTOMER, TS_MS), ("c2", TS_MS + 1)]


TICK_REASON = "due: expected a list of [customer_id, epoch milliseconds]"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"customer_id": CUSTOMER}, id="no-due"),
        pytest.param({"due": [[CUSTOMER, "2026-01-01T00:00:00Z"]]}, id="due-text"),
        pytest.param({"due": [[CUSTOMER, True]]}, id="bool"),
        pytest.param({"due": [[TS_MS]]}, id="no-customer"),
        pytest.param({"due": [[1, TS_MS]]}, id="customer-not-text"),
        pytest.param({"due": TS_MS}, id="not-a-list"),
    ],
)
def test_decode_tick_rejects(value: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_tick(encode(value))
    assert caught.value.reason == TICK_REASON


def test_decode_tick_rejects_a_tombstone() -> None:
    with pytest.raises(InvalidEvent, match="value: empty record"):
        decode_tick(None)


# -- segment-changes, as the projection reads them ----------------------------------------------

CHANGE: dict[str, Any] = {
    "customer_id": CUSTOMER,
    "segment": "buyers",
    "change": "enter",
    "at": TS_TEXT,
    "cause": "event",
    "cause_event_id": "ev-1",
    "version": 3,
}


def test_a_well_formed_change_is_read_as_it_is() -> None:
    assert decode_change(encode(CHANGE)) == CHANGE
    assert decode_change(encode(CHANGE | {"cause_event_id": None}))["cause_event_id"] is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1,", "value: not valid UTF-8 JSON (unexpected end of data)"),
        (encode([CHANGE]), "value: expected a JSON object"),
        (encode(CHANGE | {"customer_id": None}), "customer_id: missing"),
        (encode(CHANGE | {"segment": 7}), "segment: expected a string"),
        (encode(CHANGE | {"change": "left"}), "change: expected enter or exit"),
        (encode(CHANGE | {"version": 0}), "version: expected a whole number from 1"),
        (encode(CHANGE | {"version": True}), "version: expected a whole number from 1"),
        (encode(CHANGE | {"cause_event_id": ""}), "cause_event_id: expected 1 to 256 characters"),
    ],
)
def test_a_malformed_change_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_change(raw)
    assert caught.value.reason == reason


# -- anonymous visitors -------------------------------------------------------------------------


def anonymous(topic: str, **changes: object) -> dict[str, Any]:
    """The valid payload of ``topic`` sent by an anonymous visitor (anonymous_id only)."""
    return payload(topic, customer_id=DROP, anonymous_id=VISITOR, **changes)


@pytest.mark.parametrize("topic", [*names.EVENT_TOPICS, names.CUSTOMER_ERASURES])
def test_an_anonymous_visitor_is_keyed_by_its_anonymous_id(topic: str) -> None:
    decoded = decode(topic, VISITOR_KEY, encode(anonymous(topic)))
    assert decoded.customer_id == "anon:visitor-7"
    assert record_key(topic, anonymous(topic)) == "anon:visitor-7"


@pytest.mark.parametrize(
    ("topic", "value", "key", "reason"),
    [
        (
            names.PURCHASES,
            anonymous(names.PURCHASES),
            KEY,
            "key: does not match; an anonymous id's key is anon:<anonymous_id>",
        ),
        (
            names.PURCHASES,
            payload(names.PURCHASES, customer_id="anon:x"),
            b"anon:x",
            "customer_id: 'anon:' is reserved for anonymous ids",
        ),
        (names.PURCHASES, payload(names.PURCHASES, customer_id=DROP), KEY, "customer_id: missing"),
        (
            names.IDENTITY_LINKS,
            payload(names.IDENTITY_LINKS),
            KEY,
            "key: does not match; an anonymous id's key is anon:<anonymous_id>",
        ),
        (
            names.IDENTITY_LINKS,
            payload(names.IDENTITY_LINKS, customer_id=DROP),
            VISITOR_KEY,
            "customer_id: missing",
        ),
        (
            names.PROFILE_UPDATES,
            anonymous(names.PROFILE_UPDATES, suppression="spam"),
            VISITOR_KEY,
            "suppression, opt_in: consent needs a customer_id, not an anonymous_id",
        ),
        (
            names.PROFILE_UPDATES,
            anonymous(names.PROFILE_UPDATES, opt_in=True),
            VISITOR_KEY,
            "suppression, opt_in: consent needs a customer_id, not an anonymous_id",
        ),
    ],
)
def test_anonymous_records_that_break_the_contract(
    topic: str, value: dict[str, Any], key: bytes, reason: str
) -> None:
    assert reason_of(topic, key, encode(value)) == reason


def test_an_anonymous_visitor_cannot_consent() -> None:
    decoded = decode(names.PROFILE_UPDATES, VISITOR_KEY, encode(anonymous(names.PROFILE_UPDATES)))
    assert isinstance(decoded, ProfileUpdate)
    assert "email_consent" not in decoded.traits and decoded.traits["country"] == "DE"


def test_a_value_with_both_ids_is_the_customers() -> None:
    both = payload(names.PAGE_VIEWS, anonymous_id=VISITOR)
    assert decode(names.PAGE_VIEWS, KEY, encode(both)).customer_id == CUSTOMER
    assert record_key(names.PAGE_VIEWS, both) == CUSTOMER
