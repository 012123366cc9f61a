"""Offline replay: an event history through the live worker's customer step (``engine.step``),
with a simulated clock that follows the events' own times. Marketers try a definition on last
month's events; the tests use it as the expected answer for what the live worker publishes.

Input: JSON lines, one record each: {"topic": "purchases", "key": "c1", "value": {...}}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from config import names
from config.errors import InvalidEvent
from engine import identity
from engine.attribution import DEFAULT_RULE, AttributionRule, CampaignReport
from engine.catalog import Catalog
from engine.changes import SegmentChange, Trigger
from engine.deadlines import DeadlineIndex
from engine.erasures import ERASED, RecentErasures
from engine.identity import AnonymousProfile
from engine.state import CustomerState
from engine.step import Step, StepResult
from streams import codec
from streams.events import Erasure, Event, IdentityLink, Merge, decode, decode_merge, is_anonymous

REPLAYABLE = (*names.INPUT_TOPICS,)
# How many records between two progress calls: often enough for a bar, cheap enough to ignore.
PROGRESS_EVERY = 2_000


@dataclass
class Rejected:
    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class Late:
    """An event applied, part of which came too late to count (the live worker's late-events)."""

    line: int
    customer_id: str
    event_id: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "customer_id": self.customer_id,
            "event_id": self.event_id,
            "reason": self.reason,
        }


@dataclass
class ReplayResult:
    changes: list[SegmentChange] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    states: dict[str, CustomerState] = field(default_factory=dict)
    report: CampaignReport = field(default_factory=CampaignReport)
    # Anonymous visitors' profiles (and stubs, once linked), by anon:<id>.
    visitors: dict[str, AnonymousProfile] = field(default_factory=dict)
    events: int = 0

    def membership(self) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {}
        for customer_id, state in sorted(self.states.items()):
            for segment in sorted(state.segments):
                members.setdefault(segment, []).append(customer_id)
        return dict(sorted(members.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "changes": [change.to_dict() for change in self.changes],
            "triggers": [trigger.to_dict() for trigger in self.triggers],
            "membership": self.membership(),
            "rejected": [item.to_dict() for item in self.rejected],
            "late": [item.to_dict() for item in self.late],
        }


def read_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, str, bytes | None, bytes]]:
    """(line number, topic, key, raw value) per non-blank line; a broken line yields a topic
    of "" and the reason as the value."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            topic, key, value = record["topic"], record.get("key"), record["value"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            yield number, "", None, b"line: expected {topic, key, value} JSON"
            continue
        if topic not in REPLAYABLE:
            yield number, "", None, f"topic: unknown topic {topic!r}".encode()
            continue
        yield number, topic, None if key is None else str(key).encode(), orjson.dumps(value)


class Replay:
    """Runs records through the engine in order, firing every customer's deadlines as the
    simulated clock passes them."""

    def __init__(self, catalog: Catalog, attribution: AttributionRule = DEFAULT_RULE) -> None:
        self.catalog = catalog
        self.step = Step(catalog, attribution)
        self.result = ReplayResult()
        self.deadlines = DeadlineIndex()
        self.clock = 0
        self.erasures = RecentErasures()

    def _publish(self, customer_id: str, stepped: StepResult) -> None:
        """Record what a step published and schedule the customer's next deadline."""
        self.result.changes += stepped.outcome.changes
        self.result.triggers += stepped.outcome.triggers
        for fact in stepped.outcome.facts:
            self.result.report.add(fact)
        self.deadlines.set(0, customer_id, stepped.next_deadline)

    def run_until(self, now: int) -> None:
        """Fire every deadline at or before ``now``, in time order."""
        while True:
            due = self.deadlines.pop_due(now, [0])
            if not due:
                break
            for _, customer_id, at in due:
                if is_anonymous(customer_id):
                    self._expire(customer_id, at)
                    continue
                state = self.result.states[customer_id]
                self._publish(customer_id, self.step.on_time(state, at))
        self.clock = max(self.clock, now)

    def feed(self, number: int, topic: str, key: bytes | None, raw: bytes) -> None:
        if not topic:
            self.result.rejected.append(Rejected(number, raw.decode()))
            return
        try:
            event = decode(topic, key, raw, traits=self.catalog.traits)
        except InvalidEvent as exc:
            self.result.rejected.append(Rejected(number, exc.reason))
            return
        self.result.events += 1
        self.run_until(event.ts)
        if isinstance(event, IdentityLink) or is_anonymous(event.customer_id):
            self._anonymous(number, topic, event, raw)
            return
        self._customer(number, topic, event)

    def _customer(self, number: int, topic: str, event: Event | Erasure) -> None:
        """A record of the customer's own, or one an anonymous id sent it (a merge is not)."""
        states = self.result.states
        if self.erasures.predates_erasure(event.customer_id, event.ts):
            self.result.rejected.append(Rejected(number, ERASED))
            return
        if isinstance(event, Erasure):
            self.erasures.add(event.customer_id, event.ts)
            state = states.pop(event.customer_id, None)
            if state is not None:
                self._publish(event.customer_id, self.step.on_erasure(state, event))
                for key, _ in identity.alias_erasures(state.aliases, event.ts):
                    self._erase_visitor(key, event.ts)
            self.deadlines.set(0, event.customer_id, None)
            return
        state = states.get(event.customer_id) or CustomerState(event.customer_id)
        states[event.customer_id] = state
        stepped = self.step.on_event(state, event, topic)
        late = stepped.outcome.late
        if late is not None:
            self.result.late.append(Late(number, event.customer_id, event.event_id, late))
        self._publish(event.customer_id, stepped)

    def _anonymous(
        self, number: int, topic: str, event: Event | Erasure | IdentityLink, raw: bytes
    ) -> None:
        """A record under an anonymous id, as the live worker handles it; what it sends to the
        customer arrives at once (live, it takes one more Kafka hop)."""
        key = event.key if isinstance(event, IdentityLink) else event.customer_id
        visitors = self.result.visitors
        if isinstance(event, Erasure):
            self._erase_visitor(key, event.ts)
            return
        if self.erasures.predates_erasure(key, event.ts):
            self.result.rejected.append(Rejected(number, ERASED))
            return
        profile = visitors.setdefault(key, AnonymousProfile(key))
        try:
            _, sent = identity.on_record(profile, topic, event, orjson.loads(raw))
        except InvalidEvent as exc:
            self.result.rejected.append(Rejected(number, exc.reason))
            return
        self.deadlines.set(0, key, profile.next_deadline)
        if sent is None:
            return
        customer_id = sent["customer_id"]
        merged = decode_merge(customer_id.encode(), codec.dumps(sent), self.catalog.traits)
        ts = merged.ts if isinstance(merged, Merge) else merged[1].ts
        erased_at = self.erasures.erased_at(customer_id)
        if erased_at is not None and ts <= erased_at:
            # As live: the customer's erasure did not know this anonymous id; it is erased now.
            self._erase_visitor(key, erased_at)
            self.result.rejected.append(Rejected(number, ERASED))
            return
        if not isinstance(merged, Merge):
            self._customer(number, *merged)
            return
        state = self.result.states.setdefault(customer_id, CustomerState(customer_id))
        self._publish(customer_id, self.step.on_merge(state, merged))

    def _erase_visitor(self, key: str, at: int) -> None:
        self.erasures.add(key, at)
        self.result.visitors.pop(key, None)
        self.deadlines.set(0, key, None)

    def _expire(self, key: str, at: int) -> None:
        profile = self.result.visitors.get(key)
        if profile is not None and identity.expired(profile, at):
            del self.result.visitors[key]
        elif profile is not None:
            self.deadlines.set(0, key, profile.next_deadline)


def replay(
    lines: Iterable[bytes | str],
    catalog: Catalog,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay every line; then let time run on to ``until`` (default: the last event's time).
    ``progress`` is called with the number of records read, every PROGRESS_EVERY records."""
    return replay_records(read_lines(lines), catalog, until, progress)


def replay_records(
    records: Iterable[tuple[int, str, bytes | None, bytes]],
    catalog: Catalog,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """``replay`` of records already read: (number, topic, key, raw value) each."""
    runner = Replay(catalog)
    for count, record in enumerate(records, start=1):
        runner.feed(*record)
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    runner.run_until(until if until is not None else runner.clock)
    return runner.result
