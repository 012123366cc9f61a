"""Email suppression: an unsubscribe, a hard bounce or a spam complaint exits every segment that
needs consent at once, and only an explicit opt-in consents the customer again; of explicit
consent events the latest by time wins, in whatever order they arrive."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from config import names
from config.errors import InvalidEvent
from engine.catalog import load_catalog
from engine.changes import EXIT
from engine.evaluate import apply_event
from engine.state import CustomerState
from streams.events import Event, ProfileUpdate, decode
from tests.unit.engine_helpers import CUSTOMER, at, consent, feed, item, profile, purchase

CATALOG = load_catalog()


def suppress(ts: int, reason: str = "unsubscribed") -> ProfileUpdate:
    return ProfileUpdate(f"s-{ts}-{reason}", CUSTOMER, ts, {}, suppression=reason)


def opt_in(ts: int) -> ProfileUpdate:
    return ProfileUpdate(f"o-{ts}", CUSTOMER, ts, {}, opt_in=True)


def buyer() -> CustomerState:
    state = CustomerState(CUSTOMER)
    feed(state, [consent(at()), purchase(at(hours=1), item("sku-runner", "shoes"))], CATALOG)
    assert "first_time_buyers" in state.segments
    return state


@pytest.mark.parametrize("reason", ["unsubscribed", "bounced", "spam"])
def test_a_suppression_exits_every_consent_segment_at_once(reason: str) -> None:
    state = buyer()
    before = set(state.segments)
    event = suppress(at(hours=2), reason)
    outcome = apply_event(state, event, names.PROFILE_UPDATES, CATALOG)
    assert {c.segment for c in outcome.changes} == before
    assert {(c.change, c.cause_event_id) for c in outcome.changes} == {(EXIT, event.event_id)}
    assert state.segments == set()
    assert (state.suppressed, state.email_consent) == (reason, False)


ORDERS: list[tuple[str, list[Event], bool, str | None]] = [
    # (case, events after buying, consented at the end, suppression at the end)
    (
        "profile-cannot-re-consent",
        [suppress(at(hours=2)), consent(at(hours=3))],
        False,
        "unsubscribed",
    ),
    ("opt-in-re-consents", [suppress(at(hours=2)), opt_in(at(hours=3))], True, None),
    (
        "late-suppression-loses-to-later-opt-in",
        [opt_in(at(hours=3)), suppress(at(hours=2))],
        True,
        None,
    ),
    (
        "late-opt-in-loses-to-later-suppression",
        [suppress(at(hours=3)), opt_in(at(hours=2))],
        False,
        "unsubscribed",
    ),
    (
        "withdrawal-by-profile-is-no-suppression",
        [profile(at(hours=2), email_consent=False)],
        False,
        None,
    ),
    (
        "bounce-then-unsubscribe-keeps-the-latest",
        [suppress(at(hours=2), "bounced"), suppress(at(hours=3))],
        False,
        "unsubscribed",
    ),
    (
        "other-traits-still-apply",
        [suppress(at(hours=2)), consent(at(hours=3), country="FR")],
        False,
        "unsubscribed",
    ),
]


@pytest.mark.parametrize(
    ("events", "consented", "suppressed"),
    [
        pytest.param(events, consented, suppressed, id=case)
        for case, events, consented, suppressed in ORDERS
    ],
)
def test_only_an_explicit_opt_in_consents_a_suppressed_customer_again(
    events: list[Event], consented: bool, suppressed: str | None
) -> None:
    state = buyer()
    feed(state, events, CATALOG)
    assert (state.email_consent, state.suppressed) == (consented, suppressed)
    assert ("first_time_buyers" in state.segments) is consented


def test_other_traits_of_an_update_apply_while_suppressed() -> None:
    state = buyer()
    feed(state, [suppress(at(hours=2)), consent(at(hours=3), country="FR")], CATALOG)
    assert state.traits["country"] == "FR"


def test_suppression_survives_the_stored_form() -> None:
    state = buyer()
    feed(state, [suppress(at(hours=2), "spam")], CATALOG)
    restored = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert (restored.suppressed, restored.consent_at) == ("spam", at(hours=2))


def raw(**fields: Any) -> bytes:
    return orjson.dumps({"event_id": "e", "customer_id": "c", "ts": at(), **fields})


def test_the_decoder_reads_consent_events() -> None:
    update = decode(names.PROFILE_UPDATES, b"c", raw(suppression="bounced"))
    assert isinstance(update, ProfileUpdate)
    assert (update.suppression, update.opt_in, update.traits) == ("bounced", False, {})
    update = decode(names.PROFILE_UPDATES, b"c", raw(opt_in=True, traits={"country": "DE"}))
    assert isinstance(update, ProfileUpdate) and update.opt_in


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"suppression": "soft_bounce"},
            "suppression: expected one of unsubscribed, bounced, spam",
        ),
        ({"opt_in": "yes"}, "opt_in: expected true or false"),
        (
            {"opt_in": True, "suppression": "spam"},
            "opt_in and suppression: give one of them, not both",
        ),
        ({}, "traits: expected an object"),
    ],
)
def test_the_decoder_refuses_bad_consent_events(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(names.PROFILE_UPDATES, b"c", raw(**fields))
    assert caught.value.reason == reason
