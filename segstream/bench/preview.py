"""The exact preview's speed: a draft segment evaluated on the live state of the bench's
customers (POST /v1/segments/preview on the worker that has just processed the workload),
in customers per second, as a ratio to the engine alone folding the same customers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

# A stricter repeat_buyers: every stored customer is evaluated, some would leave.
DRAFT = {
    "name": "repeat_buyers",
    "definition": {
        "description": "Three or more orders",
        "when": {"count": {"of": "orders", "min": 3}},
    },
}


@dataclass(frozen=True)
class Preview:
    customers: int
    members: int
    leaving: int
    seconds: float  # the request, as the caller waits for it
    customers_per_second: float
    engine_customers_per_second: float  # the engine alone folding the workload, per customer

    @property
    def ratio(self) -> float:
        if not self.engine_customers_per_second:
            return 0.0
        return self.customers_per_second / self.engine_customers_per_second


async def measure(port: int, engine_customers_per_second: float) -> Preview:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        url = f"http://127.0.0.1:{port}/v1/segments/preview"
        async with session.post(url, json=DRAFT) as answer:
            answer.raise_for_status()
            found: dict[str, Any] = await answer.json()
        seconds = time.perf_counter() - started
    return Preview(
        found["customers"],
        found["members"],
        found["leaving"],
        seconds,
        found["customers"] / seconds if seconds else 0.0,
        engine_customers_per_second,
    )
