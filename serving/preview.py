"""Preview a draft catalog: how many stored customers each of its segments would hold right
now, evaluated on the states in the customers table's changelog (no worker needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from config import Settings
from engine.catalog import Catalog
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
