"""Anonymous visitors and the link to a customer: what an anonymous id did before the shop knew
who it was, and what a link decides (docs/identity-merge.md).

An anonymous profile keeps the visitor's events themselves (their contract values), not a
folded state. At the link they travel to the customer in one merge record and the customer
folds them as it folds its own events: a merge equals folding by construction. After the link,
the profile is a stub that sends each later event under the anonymous id to the customer.
Anonymous profiles evaluate no segment and publish no change: a visitor has no address and no
consent, and senders cannot mail it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from config import names
from config.errors import InvalidEvent
from engine.state import DAY_MS
from streams.events import Event, IdentityLink, anonymous_key
from streams.traits import PERSONAL

# A visitor's events kept for the merge; the oldest are dropped beyond this (a visitor with more
# activity than this before logging in is merged with its most recent events only).
MAX_ANONYMOUS_EVENTS = 200
# An anonymous profile never linked is forgotten after this many days without an event; a stub
# (linked) after this many days without a later event under the anonymous id.
ANONYMOUS_DAYS = 30
LINK_DAYS = 365


@dataclass(slots=True)
class AnonymousProfile:
    """One anonymous id's profile, stored in the customers table under ``anon:<id>``."""

    # The record key, anon:<anonymous id> (named like a customer's, so both are stored alike).
    customer_id: str
    # [topic, contract value] of each event kept, in arrival order.
    events: list[list[Any]] = field(default_factory=list)
    last_seen_at: int | None = None
    # Once linked: the customer, the link's time and event id.
    linked_to: str | None = None
    linked_at: int | None = None
    link_event_id: str | None = None
    # As the customer state's: redelivery positions, and outputs not yet known delivered.
    positions: dict[str, int] = field(default_factory=dict)
    outbox: list[list[Any]] = field(default_factory=list)
    # When the profile expires.
    next_deadline: int | None = None

    @property
    def anonymous_id(self) -> str:
        return self.customer_id.removeprefix(names.ANONYMOUS_KEY)

    def has_applied(self, source: str, position: int) -> bool:
        return position <= self.positions.get(source, -1)

    def mark_applied(self, source: str, position: int) -> None:
        self.positions[source] = max(position, self.positions.get(source, -1))

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS if getattr(self, name)}
        data["customer_id"] = self.customer_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnonymousProfile:
        return cls(**{name: data[name] for name in _FIELDS if name in data})


_FIELDS = tuple(AnonymousProfile.__dataclass_fields__)

LinkDecision = Literal["merge", "repeat", "conflict"]

# Why a second customer's link to an anonymous id is refused (the first customer is not named).
LINKED_ELSEWHERE = "anonymous id already linked to another customer: the first link wins"


def on_record(
    profile: AnonymousProfile, topic: str, record: Event | IdentityLink, value: dict[str, Any]
) -> tuple[LinkDecision | None, dict[str, Any] | None]:
    """One record under the anonymous id (``value``: its contract value): a link's decision,
    and the record it sends to the customer (a merge, or a later event forwarded), if any. A
    second customer's link raises InvalidEvent."""
    if isinstance(record, IdentityLink):
        decision = decide(profile, record)
        if decision == "conflict":
            raise InvalidEvent(LINKED_ELSEWHERE)
        return decision, link(profile, record) if decision == "merge" else None
    if profile.linked_to is not None:
        return None, forward(profile, topic, record.ts, value)
    keep_event(profile, topic, record.event_id, record.ts, value)
    return None, None


def keep_event(profile: AnonymousProfile, topic: str, event_id: str, ts: int, value: Any) -> bool:
    """Keep an unlinked visitor's event for the merge; False if it was kept already (a retry)."""
    if any(kept[1].get("event_id") == event_id for kept in profile.events):
        return False
    profile.events.append([topic, without_personal(value)])
    del profile.events[:-MAX_ANONYMOUS_EVENTS]
    seen(profile, ts)
    return True


def seen(profile: AnonymousProfile, ts: int) -> None:
    """An event under the anonymous id at ``ts``: the profile lives on from it."""
    last = profile.last_seen_at = max(profile.last_seen_at or ts, ts)
    days = LINK_DAYS if profile.linked_to is not None else ANONYMOUS_DAYS
    profile.next_deadline = last + days * DAY_MS


def decide(profile: AnonymousProfile, link: IdentityLink) -> LinkDecision:
    """First link wins: a profile linked to one customer is never claimed by another (a shared
    device without the SDK's ``reset()`` at logout would otherwise mix two people)."""
    if profile.linked_to is None:
        return "merge"
    return "repeat" if profile.linked_to == link.customer_id else "conflict"


def link(profile: AnonymousProfile, request: IdentityLink) -> dict[str, Any]:
    """Turn the profile into a stub linked to the customer; return the merge record that takes
    the visitor's events there (keyed by the customer)."""
    record = {
        "kind": "merge",
        "customer_id": request.customer_id,
        "anonymous_id": profile.anonymous_id,
        "merge_id": f"merge:{profile.anonymous_id}:{request.event_id}",
        "link_event_id": request.event_id,
        "ts": request.ts,
        "events": profile.events,
    }
    profile.events = []
    profile.linked_to = request.customer_id
    profile.linked_at = request.ts
    profile.link_event_id = request.event_id
    seen(profile, request.ts)
    return record


def forward(
    profile: AnonymousProfile, topic: str, ts: int, value: dict[str, Any]
) -> dict[str, Any]:
    """The record that takes a later event under a linked anonymous id to its customer."""
    assert profile.linked_to is not None
    seen(profile, ts)
    return {
        "kind": "event",
        "customer_id": profile.linked_to,
        "anonymous_id": profile.anonymous_id,
        "topic": topic,
        "value": without_personal(value) | {"customer_id": profile.linked_to},
    }


def without_personal(value: dict[str, Any]) -> dict[str, Any]:
    """A contract value without the personal traits segstream never keeps (email, first name):
    what a visitor's profile and its merge and forward records hold."""
    traits = value.get("traits")
    if not isinstance(traits, dict) or not PERSONAL & traits.keys():
        return value
    return value | {"traits": {k: v for k, v in traits.items() if k not in PERSONAL}}


def alias_erasures(aliases: Iterable[str], ts: int) -> list[tuple[str, dict[str, Any]]]:
    """An erased customer's anonymous ids are erased with it: for each, the erasure request
    (record key, contract value) that deletes its stub at the anonymous id's own partition."""
    return [(anonymous_key(alias), {"anonymous_id": alias, "ts": ts}) for alias in aliases]


def expired(profile: AnonymousProfile, now: int) -> bool:
    return profile.next_deadline is not None and profile.next_deadline <= now
