"""A two-segment catalog (first-time and repeat buyers) and the purchases that move customers
through it: the smallest real workload, for tests of the worker's first path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BUYERS = """
segments:
  first_time_buyers:
    description: Exactly one purchase
    consent_required: false
    when: {count: {of: orders, min: 1, max: 1}}
  repeat_buyers:
    description: Two or more purchases
    consent_required: false
    when: {count: {of: orders, min: 2}}
"""

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000


def buyers_catalog(directory: Path) -> str:
    path = directory / "buyers.yaml"
    path.write_text(BUYERS)
    return str(path)


def purchase(customer: str, n: int, total: float = 40.0) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-order-{n}",
        "customer_id": customer,
        "ts": T0 + n * DAY,
        "order_id": f"{customer}-{n}",
        "total": total,
        "currency": "EUR",
        "items": [{"sku": "sku-1", "category": "shoes", "quantity": 1, "unit_price": total}],
    }
