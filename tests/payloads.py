"""Hypothesis strategies for payloads: any JSON, and valid contract events per topic."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from config import names
from streams.events import CART_ACTIONS, MAX_ITEMS, MAX_MONEY, MAX_QUANTITY, MAX_TEXT

NOW = 1_790_000_000_000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
texts = st.text(min_size=1, max_size=MAX_TEXT).filter(lambda t: not t.startswith("erasure:"))
money = st.floats(min_value=0, max_value=MAX_MONEY, allow_nan=False) | st.integers(0, 10**6)
quantities = st.integers(min_value=1, max_value=MAX_QUANTITY)
timestamps = st.integers(min_value=946_684_800_000, max_value=NOW)


def head(customer: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"event_id": texts, "customer_id": st.just(customer), "ts": timestamps}
    )


line_items = st.fixed_dictionaries(
    {"sku": texts, "category": texts, "quantity": quantities, "unit_price": money}
)
BODIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    names.PURCHASES: st.fixed_dictionaries(
        {
            "order_id": texts,
            "total": money,
            "currency": texts,
            "items": st.lists(line_items, min_size=1, max_size=min(MAX_ITEMS, 5)),
        }
    ),
    names.EMAIL_OPENS: st.fixed_dictionaries({"campaign_id": texts}),
    names.EMAIL_CLICKS: st.fixed_dictionaries({"campaign_id": texts, "url": texts}),
    names.CART_EVENTS: st.fixed_dictionaries(
        {
            "action": st.sampled_from(CART_ACTIONS),
            "sku": texts,
            "category": texts,
            "quantity": quantities,
            "unit_price": money,
        }
    ),
    names.PROFILE_UPDATES: st.fixed_dictionaries(
        {
            "traits": st.fixed_dictionaries(
                {},
                optional={
                    "email": texts,
                    "gender": texts,
                    "country": texts,
                    "city": texts,
                    "source": texts,
                    "industry": texts,
                    "birth_year": st.integers(1900, 2100),
                    "interests": st.lists(texts, max_size=5),
                    "email_consent": st.booleans(),
                },
            )
        }
    ),
    names.SUPPORT_CONTACTS: st.fixed_dictionaries({"channel": texts, "reason": texts}),
    names.PAGE_VIEWS: st.fixed_dictionaries(
        {"url": texts}, optional={"sku": texts, "category": texts}
    ),
}


def valid_events(topic: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda h, b: h | b, head("c-1"), BODIES[topic])
