"""The evaluation plan: what each kind of step evaluates (engine.plan). That the changes stay
exact with it is the property of test_incremental_equals_scratch; these cases pin down that it
evaluates less."""

from __future__ import annotations

import pytest

from config import names
from engine.catalog import Segment, load_catalog, parse_catalog
from engine.evaluate import advance, apply_event
from engine.state import CustomerState
from tests.unit.engine_helpers import T0, at, consent, email_open, profile, topic_of

CATALOG = load_catalog()
CHAIN = parse_catalog(
    {
        "segments": {
            "recent_opener": {
                "description": "Opened within 30 days",
                "when": {"last": {"of": "open", "within": "30d"}},
            },
            "recent_buyer": {
                "description": "Bought within 30 days",
                "when": {"last": {"of": "purchase", "within": "30d"}},
            },
            "opener_not_buyer": {
                "description": "Refers to recent_opener",
                "when": {
                    "all": [{"segment": "recent_opener"}, {"not": {"segment": "recent_buyer"}}]
                },
            },
            "lifelong": {"description": "Everyone", "when": {"always": True}},
        }
    },
    "<chain>",
)


@pytest.mark.parametrize(
    ("deadlines", "at_", "expected"),
    [
        ({}, 100, ()),
        ({"recent_buyer": 200}, 100, ()),
        ({"recent_buyer": 100}, 100, ("recent_buyer", "opener_not_buyer")),
        ({"recent_opener": 50, "recent_buyer": 200}, 100, ("recent_opener", "opener_not_buyer")),
        (
            {"recent_opener": 50, "recent_buyer": 60},
            100,
            ("recent_buyer", "recent_opener", "opener_not_buyer"),
        ),
        (None, 100, ("recent_buyer", "recent_opener", "opener_not_buyer")),  # not known: all
    ],
)
def test_a_deadline_evaluates_what_fell_due_and_what_refers_to_it_in_dependency_order(
    deadlines: dict[str, int] | None, at_: int, expected: tuple[str, ...]
) -> None:
    fallen = CHAIN.plan.fallen_due(deadlines, at_)
    assert tuple(s.name for s in fallen) == expected
    order = [s.name for s in CHAIN.segments]
    assert [order.index(name) for name in expected] == sorted(order.index(n) for n in expected)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (names.EMAIL_OPENS, {"recent_opener", "opener_not_buyer"}),
        (names.PURCHASES, {"recent_buyer", "opener_not_buyer"}),
        (names.SUPPORT_CONTACTS, set()),
    ],
)
def test_an_event_recomputes_only_the_deadlines_its_topic_can_move(
    topic: str, expected: set[str]
) -> None:
    segments, timed = CHAIN.plan.for_event(topic, consented=True)
    assert {s.name for s in timed} == expected
    assert set(timed) <= set(segments) == set(CHAIN.for_topic(topic))


def test_an_open_recomputes_the_open_segments_deadlines_and_keeps_every_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = CustomerState("c1")
    for event in (consent(T0), email_open(at(minutes=1))):
        apply_event(state, event, topic_of(event), CATALOG)
    assert state.deadlines is not None
    before = dict(state.deadlines)
    calls: list[str] = []
    original = Segment.deadline

    def counted(segment: Segment, state: CustomerState, now: int) -> int | None:
        calls.append(segment.name)
        return original(segment, state, now)

    monkeypatch.setattr(Segment, "deadline", counted)
    apply_event(state, email_open(at(minutes=2)), names.EMAIL_OPENS, CATALOG)
    moved = {s.name for s in CATALOG.plan.for_event(names.EMAIL_OPENS, consented=True)[1]}
    assert set(calls) == moved and len(moved) < len(CATALOG.timed)
    kept = {k: v for k, v in state.deadlines.items() if k not in moved}
    assert kept == {k: v for k, v in before.items() if k not in moved}
    assert state.next_deadline == min(state.deadlines.values())


def test_no_deadline_while_consent_is_missing() -> None:
    """A consent-requiring segment cannot change before a profile update gives consent."""
    state = CustomerState("c1")
    event = email_open(T0)
    apply_event(state, event, topic_of(event), CATALOG)
    assert state.next_deadline is None and state.deadlines == {}
    given = consent(at(minutes=1))
    apply_event(state, given, topic_of(given), CATALOG)
    assert state.next_deadline is not None and "active_subscribers" in state.deadlines


def test_a_restored_state_keeps_its_deadlines_so_its_next_step_evaluates_only_what_fell_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = CustomerState("c1")
    for event in (consent(T0), email_open(at(minutes=1))):
        apply_event(state, event, topic_of(event), CATALOG)
    restored = CustomerState.from_dict(state.to_dict())
    assert restored.deadlines == state.deadlines and restored == state
    due = min(state.deadlines.values())
    fallen = CATALOG.plan.fallen_due(restored.deadlines, due)
    assert 0 < len(fallen) < len(CATALOG.timed)
    evaluated: list[str] = []
    original = Segment.deadline

    def counted(segment: Segment, state: CustomerState, now: int) -> int | None:
        evaluated.append(segment.name)
        return original(segment, state, now)

    monkeypatch.setattr(Segment, "deadline", counted)
    advance(restored, due, CATALOG)
    assert set(evaluated) == {s.name for s in fallen}


@pytest.mark.parametrize(
    ("stored", "known"),
    [
        ({"deadlines": {"active_subscribers": 5}, "next_deadline": 5}, {"active_subscribers": 5}),
        ({}, {}),  # no next deadline: none pending
        ({"next_deadline": 5}, None),  # stored before deadlines were kept: computed afresh
    ],
)
def test_the_deadlines_a_stored_state_knows(
    stored: dict[str, object], known: dict[str, int] | None
) -> None:
    restored = CustomerState.from_dict({"customer_id": "c1", **stored})
    assert restored.deadlines == known
    assert CATALOG.plan.fallen_due(restored.deadlines, 10**15) == (
        CATALOG.timed if known is None else CATALOG.plan.fallen_due(known, 10**15)
    )


def test_a_state_evaluated_against_other_definitions_computes_every_deadline_afresh() -> None:
    state = CustomerState("c1")
    for event in (consent(T0), email_open(at(minutes=1))):
        apply_event(state, event, topic_of(event), CATALOG)
    stored = state.to_dict() | {"deadlines": {"no_such_segment": at(minutes=2)}}
    restored = CustomerState.from_dict(stored | {"catalog_digest": "older definitions"})
    advance(restored, at(minutes=3), CATALOG)
    assert restored.deadlines is not None and "no_such_segment" not in restored.deadlines
    assert restored.next_deadline == min(restored.deadlines.values())


@pytest.mark.parametrize("topic", sorted(names.EVENT_TOPICS))
def test_without_consent_only_a_profile_update_evaluates_segments_that_require_it(
    topic: str,
) -> None:
    segments, timed = CATALOG.plan.for_event(topic, consented=False)
    if topic == names.PROFILE_UPDATES:  # consent may have been given or taken
        assert segments == CATALOG.for_topic(topic)
    else:
        assert not any(s.consent_required for s in segments)
    assert set(timed) == {s for s in segments if s.timed}


def test_a_customer_without_consent_is_in_no_segment_that_requires_it() -> None:
    """What lets the plan skip those segments: consent taken exits them all at once."""
    state = CustomerState("c1")
    events = [consent(T0), email_open(at(minutes=1)), profile(at(minutes=2), email_consent=False)]
    for event in events:
        apply_event(state, event, topic_of(event), CATALOG)
    required = {s.name for s in CATALOG.segments if s.consent_required}
    assert state.segments.isdisjoint(required) and not state.deadlines
