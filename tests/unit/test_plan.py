"""The evaluation plan: what each kind of step evaluates (engine.plan). That the changes stay
exact with it is the property of test_incremental_equals_scratch; these cases pin down that it
evaluates less."""

from __future__ import annotations

import orjson
import pytest

from config import names
from engine.catalog import Segment, load_catalog, parse_catalog
from engine.evaluate import advance, apply_event
from engine.plan import DEADLINE_RULES
from engine.state import CustomerState
from engine.step import Step
from tests.unit.engine_helpers import T0, at, consent, email_open, profile, topic_of

CATALOG = load_catalog()
STEP = Step(CATALOG)
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


def stepped() -> CustomerState:
    """A customer with consent who opened an email: several deadlines pending."""
    state = CustomerState("c1")
    for event in (consent(T0), email_open(at(minutes=1))):
        apply_event(state, event, topic_of(event), CATALOG)
    return state


def deadlines_computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The segments whose deadline is computed from here on, in order."""
    computed: list[str] = []
    original = Segment.deadline

    def counted(segment: Segment, state: CustomerState, now: int) -> int | None:
        computed.append(segment.name)
        return original(segment, state, now)

    monkeypatch.setattr(Segment, "deadline", counted)
    return computed


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
    state = stepped()
    assert state.deadlines is not None
    before = dict(state.deadlines)
    calls = deadlines_computed(monkeypatch)
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
    state = stepped()
    assert state.deadlines
    restored = STEP.restore(STEP.snapshot(state))
    assert restored == state and restored.deadlines is None  # read by its next step
    due = min(state.deadlines.values())
    fallen = CATALOG.plan.fallen_due(state.deadlines, due)
    assert 0 < len(fallen) < len(CATALOG.timed)
    evaluated = deadlines_computed(monkeypatch)
    advance(restored, due, CATALOG)
    advance(state, due, CATALOG)
    assert set(evaluated) == {s.name for s in fallen}
    assert restored.deadlines == state.deadlines and restored.packed_deadlines is None


def test_packed_deadlines_name_each_moment_once() -> None:
    deadlines = {s.name: 5_000 if index % 2 else 9_000 for index, s in enumerate(CATALOG.timed)}
    packed = CATALOG.plan.pack(deadlines)
    assert [row[0] for row in packed[1:]] == [5_000, 9_000]
    assert CATALOG.plan.unpack(packed) == deadlines
    assert CATALOG.plan.unpack(CATALOG.plan.pack({})) == {}


@pytest.mark.parametrize(
    "packed",
    [
        None,
        [],
        [DEADLINE_RULES + 1, [5_000, 0]],  # other rules: computed afresh
        [DEADLINE_RULES, [5_000, 999]],  # no such timed segment
        [DEADLINE_RULES, [5_000, "recent_opener"]],
        {"recent_opener": 5_000},
    ],
)
def test_stored_deadlines_that_do_not_fit_are_computed_afresh(packed: object) -> None:
    assert CATALOG.plan.unpack(packed) is None


def test_a_state_evaluated_against_other_definitions_computes_every_deadline_afresh() -> None:
    state = stepped()
    data = orjson.loads(STEP.snapshot(state)) | {"deadlines": [DEADLINE_RULES]}  # none known
    restored = CustomerState.from_dict(data | {"catalog_digest": "older definitions"})
    advance(restored, at(minutes=3), CATALOG)
    assert restored.deadlines == state.deadlines and restored.packed_deadlines is None
    same = CustomerState.from_dict(data)  # the same definitions: the stored ones are taken
    advance(same, at(minutes=3), CATALOG)
    assert same.deadlines == {} and same.packed_deadlines is None


def test_a_kept_deadline_no_timed_segment_has_is_dropped_not_fired_forever() -> None:
    """Deadlines stored by code that timed other segments: nothing evaluates such a name."""
    state = stepped()
    untimed = next(s.name for s in CATALOG.segments if not s.timed)
    assert state.deadlines is not None
    state.deadlines[untimed] = state.next_deadline = at(minutes=2)
    advance(state, at(minutes=3), CATALOG)
    assert untimed not in state.deadlines
    assert state.next_deadline == min(state.deadlines.values()) > at(minutes=3)


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
