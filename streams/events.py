"""The event contract: typed records and the decoder that turns raw Kafka records into them.

Rules the decoder applies to every topic:
- the value is one JSON object in UTF-8, at most ``max_bytes`` long;
- the record key is the customer id in UTF-8 and must equal the value's ``customer_id``; a value
  with ``anonymous_id`` and no ``customer_id`` is an anonymous visitor's, keyed
  ``anon:<anonymous_id>`` (customer ids may not start with ``anon:``); an anonymous visitor
  cannot consent (``email_consent`` is dropped, a suppression or an opt-in is refused);
- unknown fields are ignored (producers may send more than segstream needs);
- personal traits that no segment uses (email, first name) are checked for type and dropped.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from config import names
from config.errors import InvalidEvent
from streams.timestamps import parse_ts
from streams.traits import NO_TRAITS, PERSONAL, declared_value

MAX_TEXT = 256
MAX_URL = 2048
MAX_EVENT_BYTES = 32 * 1024
# A tick names up to TICK_BATCH customers of one partition.
TICK_BATCH = 500
MAX_TICK_BYTES = TICK_BATCH * (MAX_TEXT + 32)
MAX_MONEY = 1_000_000_000.0
MAX_QUANTITY = 1_000_000
MAX_ITEMS = 1_000


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    category: str
    quantity: int
    unit_price: float


@dataclass(frozen=True, slots=True)
class Purchase:
    event_id: str
    customer_id: str
    ts: int
    order_id: str
    total: float
    currency: str
    items: tuple[LineItem, ...]

    @property
    def quantity(self) -> int:
        return sum(item.quantity for item in self.items)


@dataclass(frozen=True, slots=True)
class EmailOpen:
    event_id: str
    customer_id: str
    ts: int
    campaign_id: str


@dataclass(frozen=True, slots=True)
class EmailSend:
    """An email the shop sent the customer (``segment``: the audience it was sent to)."""

    event_id: str
    customer_id: str
    ts: int
    campaign_id: str
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class EmailClick:
    event_id: str
    customer_id: str
    ts: int
    campaign_id: str
    url: str


CART_ACTIONS = ("add", "remove", "checkout_started")


@dataclass(frozen=True, slots=True)
class CartEvent:
    event_id: str
    customer_id: str
    ts: int
    action: str
    sku: str | None
    category: str | None
    quantity: int
    unit_price: float


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    event_id: str
    customer_id: str
    ts: int
    traits: dict[str, Any]
    # An explicit consent event: the address is suppressed (why: SUPPRESSIONS), or the customer
    # opted in. Only an opt-in re-consents a suppressed customer (see engine.state).
    suppression: str | None = None
    opt_in: bool = False


#: Why a customer's address may no longer be mailed.
SUPPRESSIONS = ("unsubscribed", "bounced", "spam")


@dataclass(frozen=True, slots=True)
class SupportContact:
    event_id: str
    customer_id: str
    ts: int
    channel: str
    reason: str


@dataclass(frozen=True, slots=True)
class PageView:
    """A page the customer viewed: a product page (``sku``), a category page, or another."""

    event_id: str
    customer_id: str
    ts: int
    url: str
    sku: str | None
    category: str | None


# The cause_event_id of the exits an erasure publishes starts with this.
ERASURE_CAUSE = "erasure:"


@dataclass(frozen=True, slots=True)
class Erasure:
    """A right-to-be-forgotten request: exit every segment, then delete the customer's state."""

    customer_id: str
    ts: int

    @property
    def event_id(self) -> str:
        return f"{ERASURE_CAUSE}{self.customer_id}:{self.ts}"


Event = (
    Purchase
    | EmailOpen
    | EmailClick
    | CartEvent
    | ProfileUpdate
    | SupportContact
    | PageView
    | EmailSend
)


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """An anonymous id is this customer's (an identify with both ids, or an alias)."""

    event_id: str
    anonymous_id: str
    customer_id: str
    ts: int

    @property
    def key(self) -> str:
        return anonymous_key(self.anonymous_id)


def anonymous_key(anonymous_id: str) -> str:
    return f"{names.ANONYMOUS_KEY}{anonymous_id}"


def is_anonymous(key: str) -> bool:
    return key.startswith(names.ANONYMOUS_KEY)


def record_key(topic: str, value: Mapping[str, Any]) -> Any:
    """The record key a contract value of ``topic`` goes with: its customer_id, or the key of
    its anonymous id (an identity link's, and an anonymous visitor's); None when neither is a
    string (the decoder says why)."""
    customer_id, anonymous_id = value.get("customer_id"), value.get("anonymous_id")
    if isinstance(anonymous_id, str) and (topic == names.IDENTITY_LINKS or customer_id is None):
        return anonymous_key(anonymous_id)
    return customer_id


class _Fields:
    """Typed reads from one decoded JSON object, each failure a dead-letter reason."""

    __slots__ = ("_obj", "_where")

    def __init__(self, obj: dict[str, Any], where: str = "") -> None:
        self._obj = obj
        self._where = where

    def _name(self, name: str) -> str:
        return f"{self._where}{name}"

    def has(self, name: str) -> bool:
        return self._obj.get(name) is not None

    def text(self, name: str) -> str:
        value = self._obj.get(name)
        if value is None:
            raise InvalidEvent(f"{self._name(name)}: missing")
        if not isinstance(value, str):
            raise InvalidEvent(f"{self._name(name)}: expected a string")
        if not value or len(value) > MAX_TEXT:
            raise InvalidEvent(f"{self._name(name)}: expected 1 to {MAX_TEXT} characters")
        return value

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def money(self, name: str) -> float:
        value = self._obj.get(name)
        if value is None:
            raise InvalidEvent(f"{self._name(name)}: missing")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEvent(f"{self._name(name)}: expected a number")
        if not 0 <= value <= MAX_MONEY:
            raise InvalidEvent(f"{self._name(name)}: {value} is outside 0..{MAX_MONEY:.0f}")
        return float(value)

    def quantity(self, name: str) -> int:
        value = self._obj.get(name)
        if value is None:
            raise InvalidEvent(f"{self._name(name)}: missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEvent(f"{self._name(name)}: expected a whole number")
        if not 1 <= value <= MAX_QUANTITY:
            raise InvalidEvent(f"{self._name(name)}: {value} is outside 1..{MAX_QUANTITY}")
        return value

    def ts(self) -> int:
        if "ts" not in self._obj:
            raise InvalidEvent("ts: missing")
        return parse_ts(self._obj["ts"])


def _line_item(obj: object, index: int) -> LineItem:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"items[{index}]: expected an object")
    fields = _Fields(obj, f"items[{index}].")
    return LineItem(
        sku=fields.text("sku"),
        category=fields.text("category"),
        quantity=fields.quantity("quantity"),
        unit_price=fields.money("unit_price"),
    )


def _purchase(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> Purchase:
    items = obj.get("items")
    if not isinstance(items, list) or not items:
        raise InvalidEvent("items: expected a non-empty list")
    if len(items) > MAX_ITEMS:
        raise InvalidEvent(f"items: more than {MAX_ITEMS} lines")
    return Purchase(
        *head,
        order_id=f.text("order_id"),
        total=f.money("total"),
        currency=f.text("currency"),
        items=tuple(_line_item(item, i) for i, item in enumerate(items)),
    )


def _email_open(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> EmailOpen:
    return EmailOpen(*head, campaign_id=f.text("campaign_id"))


def _email_click(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> EmailClick:
    return EmailClick(*head, campaign_id=f.text("campaign_id"), url=f.text("url"))


def _cart_event(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> CartEvent:
    action = f.text("action")
    if action not in CART_ACTIONS:
        raise InvalidEvent(f"action: expected one of {', '.join(CART_ACTIONS)}")
    item_action = action != "checkout_started"
    return CartEvent(
        *head,
        action=action,
        sku=f.text("sku") if item_action else f.optional_text("sku"),
        category=f.text("category") if item_action else f.optional_text("category"),
        quantity=f.quantity("quantity") if item_action else 0,
        unit_price=f.money("unit_price") if action == "add" else 0.0,
    )


_TRAIT_TEXT = ("gender", "country", "city", "source", "industry")


def _traits(obj: object, declared: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidEvent("traits: expected an object")
    f = _Fields(obj, "traits.")
    traits: dict[str, Any] = {}
    for name in PERSONAL:
        if f.has(name):
            f.text(name)
    for name in _TRAIT_TEXT:
        if f.has(name):
            traits[name] = f.text(name).lower() if name in ("gender", "source") else f.text(name)
    if f.has("birth_year"):
        year = obj["birth_year"]
        if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
            raise InvalidEvent("traits.birth_year: expected a year between 1900 and 2100")
        traits["birth_year"] = year
    if f.has("interests"):
        interests = obj["interests"]
        if not isinstance(interests, list) or not all(
            isinstance(i, str) and 0 < len(i) <= MAX_TEXT for i in interests
        ):
            raise InvalidEvent("traits.interests: expected a list of strings")
        traits["interests"] = sorted({i.lower() for i in interests})
    if f.has("timezone"):
        traits["timezone"] = _timezone(f.text("timezone"))
    if "email_consent" in obj:
        if not isinstance(obj["email_consent"], bool):
            raise InvalidEvent("traits.email_consent: expected true or false")
        traits["email_consent"] = obj["email_consent"]
    for name, kind in declared.items():
        if f.has(name):
            traits[name] = declared_value(name, kind, obj[name])
    return traits


def known_zone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (Europe/Berlin)."""
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _timezone(name: str) -> str:
    """An IANA time zone name (quiet hours for sending follow it)."""
    if not known_zone(name):
        raise InvalidEvent("traits.timezone: expected an IANA time zone name such as Europe/Berlin")
    return name


def _profile_update(
    f: _Fields, obj: dict[str, Any], head: tuple[str, str, int], declared: Mapping[str, str]
) -> ProfileUpdate:
    suppression = obj.get("suppression")
    if suppression is not None and suppression not in SUPPRESSIONS:
        raise InvalidEvent(f"suppression: expected one of {', '.join(SUPPRESSIONS)}")
    opt_in = obj.get("opt_in", False)
    if not isinstance(opt_in, bool):
        raise InvalidEvent("opt_in: expected true or false")
    if opt_in and suppression is not None:
        raise InvalidEvent("opt_in and suppression: give one of them, not both")
    given = obj.get("traits")
    traits = _traits({} if given is None and (opt_in or suppression) else given, declared)
    return ProfileUpdate(*head, traits=traits, suppression=suppression, opt_in=opt_in)


def _page_view(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> PageView:
    url = obj.get("url")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL:
        raise InvalidEvent(f"url: expected a string of 1 to {MAX_URL} characters")
    return PageView(
        *head, url=url, sku=f.optional_text("sku"), category=f.optional_text("category")
    )


def _email_send(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> EmailSend:
    if is_anonymous(head[1]):
        raise InvalidEvent("customer_id: an email is sent to a customer, not an anonymous_id")
    return EmailSend(*head, campaign_id=f.text("campaign_id"), segment=f.optional_text("segment"))


def _support_contact(f: _Fields, obj: dict[str, Any], head: tuple[str, str, int]) -> SupportContact:
    return SupportContact(*head, channel=f.text("channel"), reason=f.text("reason"))


_DECODERS: dict[str, Callable[[_Fields, dict[str, Any], tuple[str, str, int]], Event]] = {
    names.PURCHASES: _purchase,
    names.EMAIL_OPENS: _email_open,
    names.EMAIL_CLICKS: _email_click,
    names.CART_EVENTS: _cart_event,
    names.SUPPORT_CONTACTS: _support_contact,
    names.PAGE_VIEWS: _page_view,
    names.EMAIL_SENDS: _email_send,
}


def decode(
    topic: str,
    key: bytes | None,
    raw: bytes,
    max_bytes: int = MAX_EVENT_BYTES,
    now: int | None = None,
    traits: Mapping[str, str] = NO_TRAITS,
) -> Event | Erasure | IdentityLink:
    """Decode and validate one record of an input topic (named without prefix). With ``now``
    (live input), an event more than an hour in the future is refused. ``traits``: the traits
    the catalog declares (name -> type), kept beside the built-in ones."""
    obj = _object(raw, max_bytes)
    f = _Fields(obj)
    if topic == names.CUSTOMER_ERASURES:
        customer_id = _customer_key(f)
        _check_key(key, customer_id)
        return Erasure(customer_id, _not_future(f.ts(), now))
    event_id = f.text("event_id")
    if event_id.startswith(ERASURE_CAUSE):
        raise InvalidEvent(f"event_id: {ERASURE_CAUSE!r} is reserved for erasures")
    if topic == names.IDENTITY_LINKS:
        link = IdentityLink(
            event_id, f.text("anonymous_id"), _customer_id(f), _not_future(f.ts(), now)
        )
        _check_key(key, link.key, "anon:<anonymous_id>")
        return link
    customer_id = _customer_key(f)
    _check_key(key, customer_id)
    head = (event_id, customer_id, _not_future(f.ts(), now))
    if topic != names.PROFILE_UPDATES:
        return _DECODERS[topic](f, obj, head)
    update = _profile_update(f, obj, head, traits)
    if not is_anonymous(customer_id):
        return update
    if update.suppression or update.opt_in:
        raise InvalidEvent("suppression, opt_in: consent needs a customer_id, not an anonymous_id")
    update.traits.pop("email_consent", None)  # only an identified customer consents
    return update


def _customer_id(f: _Fields) -> str:
    customer_id = f.text("customer_id")
    if is_anonymous(customer_id):
        raise InvalidEvent(f"customer_id: {names.ANONYMOUS_KEY!r} is reserved for anonymous ids")
    return customer_id


def _customer_key(f: _Fields) -> str:
    """The customer id, or for an anonymous visitor (anonymous_id only) its anonymous key."""
    if f.has("customer_id") or not f.has("anonymous_id"):
        return _customer_id(f)
    return anonymous_key(f.text("anonymous_id"))


MAX_FUTURE_MS = 3_600_000


def _not_future(ts: int, now: int | None) -> int:
    if now is not None and ts > now + MAX_FUTURE_MS:
        raise InvalidEvent("ts: more than an hour in the future")
    return ts


def _check_key(key: bytes | None, expected: str, what: str = "the customer_id") -> None:
    if key is None:
        raise InvalidEvent(f"key: missing; the record key must be {what}")
    if key == expected.encode():
        return
    if what == "the customer_id" and not is_anonymous(expected):
        raise InvalidEvent("key: does not match customer_id")
    what = "anon:<anonymous_id>" if is_anonymous(expected) else what
    raise InvalidEvent(f"key: does not match; an anonymous id's key is {what}")


def _object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    if raw is None:
        raise InvalidEvent("value: empty record")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"value: {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"value: not valid UTF-8 JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("value: expected a JSON object")
    return obj


def decode_change(raw: bytes | None) -> dict[str, Any]:
    """A segment-changes record, as the projection applies it (the rest of it is kept as is)."""
    change = _object(raw, MAX_EVENT_BYTES)
    f = _Fields(change)
    f.text("customer_id")
    f.text("segment")
    if change.get("change") not in ("enter", "exit"):
        raise InvalidEvent("change: expected enter or exit")
    version = change.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidEvent("version: expected a whole number from 1")
    if change.get("cause_event_id") is not None:
        f.text("cause_event_id")
    return change


@dataclass(frozen=True, slots=True)
class Merge:
    """An anonymous visitor's events, taken to the customer an identity link named."""

    customer_id: str
    anonymous_id: str
    merge_id: str
    link_event_id: str
    ts: int
    events: tuple[tuple[str, Event], ...]


# A merge record carries up to engine.identity.MAX_ANONYMOUS_EVENTS events.
MAX_MERGE_BYTES = 200 * MAX_EVENT_BYTES


def decode_merge(
    key: bytes | None, raw: bytes | None, traits: Mapping[str, str] = NO_TRAITS
) -> tuple[str, Event] | Merge:
    """An identity-merges record (internal): a merge, or one later event forwarded from a
    linked anonymous id, as (topic, event) of the customer's."""
    obj = _object(raw, MAX_MERGE_BYTES)
    f = _Fields(obj)
    customer_id = _customer_id(f)
    _check_key(key, customer_id)
    anonymous_id = f.text("anonymous_id")
    if obj.get("kind") == "event":
        topic = obj.get("topic")
        if topic not in names.EVENT_TOPICS:
            raise InvalidEvent(f"topic: expected one of {', '.join(names.EVENT_TOPICS)}")
        event = decode(topic, key, orjson.dumps(obj.get("value")), MAX_EVENT_BYTES, None, traits)
        assert not isinstance(event, Erasure | IdentityLink)
        return topic, event
    if obj.get("kind") != "merge":
        raise InvalidEvent("kind: expected merge or event")
    anonymous = anonymous_key(anonymous_id).encode()
    events = []
    for index, kept in enumerate(obj.get("events") or ()):
        if not isinstance(kept, list) or len(kept) != 2 or kept[0] not in names.EVENT_TOPICS:
            raise InvalidEvent(f"events[{index}]: expected [event topic, event]")
        event = decode(kept[0], anonymous, orjson.dumps(kept[1]), MAX_EVENT_BYTES, None, traits)
        assert not isinstance(event, Erasure | IdentityLink)
        events.append((kept[0], event))
    return Merge(
        customer_id,
        anonymous_id,
        f.text("merge_id"),
        f.text("link_event_id"),
        f.ts(),
        tuple(events),
    )


def decode_tick(raw: bytes | None) -> list[tuple[str, int]]:
    """A timer tick (internal): the customers of one partition whose deadlines fell due."""
    due = _object(raw, MAX_TICK_BYTES).get("due")
    if not isinstance(due, list) or not all(
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], int)
        and not isinstance(item[1], bool)
        for item in due
    ):
        raise InvalidEvent("due: expected a list of [customer_id, epoch milliseconds]")
    return [(customer_id, at) for customer_id, at in due]
