"""A customer's cart holds at most MAX_CART_LINES lines, however many items are added."""

from __future__ import annotations

from engine.state import MAX_CART_LINES, CustomerState
from streams.events import CartEvent

NOW = 1_772_359_200_000  # 2026-03-01T10:00:00Z


def test_a_cart_stops_growing_at_its_line_limit() -> None:
    state = CustomerState("c1")
    for n in range(MAX_CART_LINES + 20):
        state.fold(CartEvent(f"e{n}", "c1", NOW + n, "add", f"sku-{n}", "cat", 1, 1.0))
    assert len(state.cart) == MAX_CART_LINES
