"""The customer step: each call returns what it publishes and when to call on_time next, and
every caller of the engine goes through it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import parse_catalog
from engine.changes import ENTER, EXIT, SegmentChange
from engine.state import CustomerState
from engine.step import Step, StepResult
from streams import codec
from streams.events import Erasure
from tests.unit.engine_helpers import CUSTOMER, at, email_open, purchase, topic_of

ROOT = Path(__file__).resolve().parents[2]


def _segment(when: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": "A segment", "consent_required": False, "when": when, **extra}


V1 = Step(
    parse_catalog(
        {
            "segments": {
                "buyers": _segment({"count": {"of": "orders", "min": 1}}),
                "recent_openers": _segment({"last": {"of": "open", "within": "1d"}}),
            }
        },
        "v1.yaml",
    )
)
# Buyers need two orders now.
V2 = Step(
    parse_catalog(
        {
            "segments": {
                "buyers": _segment({"count": {"of": "orders", "min": 2}}),
                "recent_openers": _segment({"last": {"of": "open", "within": "1d"}}),
            }
        },
        "v2.yaml",
    )
)
APPLIED = at(days=30)
OPEN = email_open(at(hours=1), event_id="m1")
# recent_openers ends a day after the open.
OPEN_ENDS = at(days=1, hours=1)


def bought() -> CustomerState:
    """Bought at T0 (version 1), evaluated against V1."""
    state = CustomerState(CUSTOMER)
    V1.on_event(state, purchase(at(), event_id="p1"), "purchases")
    return state


def opened() -> CustomerState:
    """Then opened a mail an hour later (version 2)."""
    state = bought()
    V1.on_event(state, OPEN, topic_of(OPEN))
    return state


Row = tuple[str, str, int, str, str | None, int]


def table(changes: list[SegmentChange]) -> list[Row]:
    return [(c.segment, c.change, c.at, c.cause, c.cause_event_id, c.version) for c in changes]


ERASURE = Erasure(CUSTOMER, at(hours=5))
LATER = purchase(at(days=2), event_id="p2")
Call = Callable[[CustomerState], StepResult]
CASES: list[Any] = [
    pytest.param(
        bought,
        lambda state: V1.on_event(state, OPEN, topic_of(OPEN)),
        [("recent_openers", ENTER, at(hours=1), "event", "m1", 2)],
        OPEN_ENDS,
        id="event-enters-and-says-when-it-ends",
    ),
    pytest.param(
        opened,
        lambda state: V1.on_event(state, OPEN, topic_of(OPEN)),
        [],
        OPEN_ENDS,
        id="redelivered-event-changes-nothing-and-keeps-the-deadline",
    ),
    pytest.param(
        opened,
        lambda state: V1.on_time(state, OPEN_ENDS - 1),
        [],
        OPEN_ENDS,
        id="time-before-the-deadline-changes-nothing",
    ),
    pytest.param(
        opened,
        lambda state: V1.on_time(state, at(days=3)),
        [("recent_openers", EXIT, OPEN_ENDS, "time", None, 3)],
        None,
        id="time-fires-the-deadline-at-its-own-time",
    ),
    pytest.param(
        # No timer ran: the event fires the deadline first, stamped when it fell due.
        opened,
        lambda state: V1.on_event(state, LATER, topic_of(LATER)),
        [("recent_openers", EXIT, OPEN_ENDS, "time", None, 3)],
        None,
        id="event-after-a-missed-deadline-fires-it-first",
    ),
    pytest.param(
        opened,
        lambda state: V2.on_time(state, 0, catalog_at=APPLIED),
        [("buyers", EXIT, APPLIED, "catalog", None, 3)],
        OPEN_ENDS,
        id="changed-definitions-stamped-when-applied",
    ),
    pytest.param(
        opened,
        lambda state: V1.on_erasure(state, ERASURE),
        [
            ("buyers", EXIT, at(hours=5), "erasure", ERASURE.event_id, 3),
            ("recent_openers", EXIT, at(hours=5), "erasure", ERASURE.event_id, 4),
        ],
        None,
        id="erasure-exits-everything-and-nothing-is-due",
    ),
]


@pytest.mark.parametrize(("given", "call", "expected", "next_deadline"), CASES)
def test_each_call_returns_its_changes_and_the_next_deadline(
    given: Callable[[], CustomerState], call: Call, expected: list[Row], next_deadline: int | None
) -> None:
    state = given()
    result = call(state)
    assert table(result.outcome.changes) == expected
    assert result.next_deadline == next_deadline
    if next_deadline is not None:
        assert Step.notify_at(state) == next_deadline


def test_a_timer_at_the_deadline_or_none_publishes_the_same() -> None:
    ticked, waited = opened(), opened()
    changes = V1.on_time(ticked, OPEN_ENDS).outcome.changes
    changes += V1.on_event(ticked, LATER, topic_of(LATER)).outcome.changes
    assert table(changes) == table(V1.on_event(waited, LATER, topic_of(LATER)).outcome.changes)
    assert ticked == waited


def test_snapshot_is_the_stored_form_and_restores_the_state() -> None:
    state = opened()
    snapshot = V1.snapshot(state)
    assert state.deadlines is not None
    packed = V1.catalog.plan.pack(state.deadlines)
    assert snapshot == codec.dumps_kept(state.to_dict() | {"deadlines": packed})
    restored = Step.restore(snapshot)
    assert restored == state and restored.packed_deadlines == packed
    assert V1.snapshot(restored) == snapshot  # stored again before a step read them


# Every module that runs customers through the engine: none spells out the step itself.
CALLERS = (
    "agents/customers.py",
    "segstream/offline/replay.py",
    "segstream/bench/restore.py",
    "segstream/bench/contenders.py",
    "segstream/offline/footprint.py",
)
STEP_PARTS = {"apply_event", "advance", "erase", "reconcile", "next_deadline", "sync_catalog"}


@pytest.mark.parametrize("path", CALLERS)
def test_callers_run_customers_through_the_step(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "engine.evaluate"
        for alias in node.names
    }
    assert not imported & STEP_PARTS, sorted(imported & STEP_PARTS)
    assert any(
        isinstance(node, ast.ImportFrom)
        and node.module == "engine.step"
        and any(alias.name == "Step" for alias in node.names)
        for node in ast.walk(tree)
    )
