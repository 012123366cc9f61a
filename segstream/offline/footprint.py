"""Measure what one customer costs in memory: the table value the worker keeps per customer,
built by the real engine from a synthetic shop's events."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import dataclass

from engine.catalog import Catalog
from engine.state import CustomerState
from engine.step import Step
from segstream.offline.simulator import SyntheticShop
from streams import codec
from streams.events import Erasure, IdentityLink, decode


@dataclass(frozen=True)
class Footprint:
    customers: int
    events: int
    bytes_per_customer: float
    changelog_bytes_per_customer: float


def measure(catalog: Catalog, customers: int, events_per_customer: int, seed: int = 7) -> Footprint:
    """Bytes per customer of the table (the memory store holds each value as the JSON bytes
    that also go to the changelog), and the average changelog value size."""
    shop = SyntheticShop(
        customers=customers,
        seed=seed,
        step_ms=90 * 86_400_000 // max(customers * events_per_customer, 1) + 1,
    )
    step = Step(catalog)
    states: dict[str, CustomerState] = {}
    events = 0
    for record in shop.events(customers * events_per_customer):
        event = decode(
            record.topic, record.key.encode(), codec.dumps(record.value), traits=catalog.traits
        )
        assert not isinstance(event, Erasure | IdentityLink)
        state = states.get(record.key) or CustomerState(record.key)
        states[record.key] = state
        step.on_event(state, event, record.topic)
        events += 1
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = {customer_id: step.snapshot(state) for customer_id, state in states.items()}
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    changelog = sum(len(value) for value in table.values())
    return Footprint(
        customers=len(table),
        events=events,
        bytes_per_customer=(after - before) / len(table),
        changelog_bytes_per_customer=changelog / len(table),
    )
