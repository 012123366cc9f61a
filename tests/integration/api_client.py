"""A client for a real worker's HTTP API, and the event bodies tests post to it."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from config import names
from tests.integration.deployment import Deployment

TOKEN = "test-token-3f9a-5d1e-77c0"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, deployment: Deployment) -> None:
        self.session, self.base, self.deployment = session, base, deployment

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        async with self.session.request(method, self.base + path, data=data, headers=headers) as r:
            text = await r.read()
            if r.content_type != "application/json":
                return r.status, text.decode()
            return r.status, orjson.loads(text) if text else None


def purchase(customer: str, n: int, ts: int) -> dict[str, Any]:
    return {
        "topic": names.PURCHASES,
        "value": {
            "event_id": f"{customer}-{n}",
            "customer_id": customer,
            "ts": ts,
            "order_id": f"o{n}",
            "total": 30.0,
            "currency": "EUR",
            "items": [{"sku": "s1", "category": "shoes", "quantity": 1, "unit_price": 30.0}],
        },
    }


def consent(customer: str, ts: int) -> dict[str, Any]:
    return {
        "topic": names.PROFILE_UPDATES,
        "value": {
            "event_id": f"{customer}-p",
            "customer_id": customer,
            "ts": ts,
            "traits": {"email_consent": True, "gender": "female", "email": "x@example.test"},
        },
    }
