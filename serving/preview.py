"""Preview drafts on stored state: a draft catalog on the states in the customers table's
changelog (``segstream segments preview``, no worker needed), and one draft segment on the
live state a worker holds (the API, which adds up every worker's answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from engine.catalog import Catalog, Segment
from engine.evaluate import reconcile
from engine.step import Step
from serving.changelog import TableProgress, latest_states


@dataclass
class Preview:
    customers: int = 0
    members: dict[str, list[str]] = field(default_factory=dict)


async def preview(
    settings: Settings, draft: Catalog, progress: TableProgress | None = None
) -> Preview:
    now = int(time.time() * 1000)
    result = Preview()
    for customer_id, raw in (await latest_states(settings, progress)).items():
        state = Step.restore(raw)
        state.segments = set()
        state.prune(now)
        reconcile(state, draft.segments, max(now, state.clock), None)
        result.customers += 1
        for segment in state.segments:
            result.members.setdefault(segment, []).append(customer_id)
    return result


# -- the live preview of one draft segment (POST /v1/segments/preview) ------------------------

SAMPLE = 10
YIELD_EVERY = 500  # customers evaluated between two turns of the event loop


@dataclass
class Counts:
    """A draft segment on live state: how many customers were evaluated, how many would be
    members, how many would enter or leave compared with the live segment of that name."""

    customers: int = 0
    members: int = 0
    entering: int = 0
    leaving: int = 0
    sample: list[str] = field(default_factory=list)

    def count(self, customer_id: str, holds: bool, member: bool) -> None:
        self.customers += 1
        self.members += holds
        self.entering += holds and not member
        self.leaving += member and not holds
        if holds and len(self.sample) < SAMPLE:
            self.sample.append(customer_id)

    def add(self, other: dict[str, Any]) -> None:
        for name in ("customers", "members", "entering", "leaving"):
            setattr(self, name, getattr(self, name) + int(other[name]))
        self.sample = sorted([*self.sample, *other["sample"]])[:SAMPLE]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "members": self.members,
            "entering": self.entering,
            "leaving": self.leaving,
            "sample": sorted(self.sample),
        }


def would_hold(draft: Segment, stored: bytes, now: int) -> tuple[bool, bool]:
    """Whether a customer (a stored state) would be in the draft now, and is in the live
    segment of its name."""
    state = Step.restore(stored)
    member = draft.name in state.segments
    state.prune(now)
    return draft.holds(state, max(now, state.clock)), member


async def preview_held(
    draft: Segment, held: Iterable[str], load: Callable[[str], bytes | None], now: int
) -> Counts:
    """The draft on the customers a worker holds, yielding to the event loop as it goes (the
    worker keeps processing events meanwhile)."""
    counts = Counts()
    for n, customer_id in enumerate(held, 1):
        stored = load(customer_id)
        if stored:
            counts.count(customer_id, *would_hold(draft, stored, now))
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return counts
