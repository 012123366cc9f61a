"""Serving a segment of many members: the dashboard's data (``GET /v1/dashboard``) and a page of
members (``GET /v1/segments/{name}/members``) from a worker whose Redis holds them, per request,
as a ratio to the same reads of the same keys straight from Redis (``RedisStore``, in the
harness) in the same run. Also timed once: counting the segment's revenue from its members,
which is what every dashboard refresh cost before revenue was kept (and what the first read
after a flush or a rebuild costs now)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from config import names
from serving.redis_store import RedisStore

SEGMENT = "repeat_buyers"
REQUESTS = 20  # of each kind, one after the other
CHUNK = 10_000  # members written per pipeline


@dataclass(frozen=True)
class Serving:
    members: int
    counted_ms: float  # the segment's revenue counted from its members, once
    dashboard_ms: float  # per request, through the worker's API
    dashboard_redis_ms: float  # the same store reads, straight from Redis
    page_ms: float
    page_redis_ms: float

    @property
    def dashboard_ratio(self) -> float:
        """How many times a plain Redis read of the same keys the dashboard request takes."""
        return self.dashboard_ms / self.dashboard_redis_ms if self.dashboard_redis_ms else 0.0

    @property
    def page_ratio(self) -> float:
        return self.page_ms / self.page_redis_ms if self.page_redis_ms else 0.0


async def populate(store: RedisStore, members: int) -> None:
    """``members`` customers in SEGMENT, each with a spend, written straight into Redis."""
    spend_key = store.key(names.REDIS_SPEND)
    members_key = store.key(names.REDIS_MEMBERS, SEGMENT)
    for start in range(0, members, CHUNK):
        ids = [f"m{n:07d}" for n in range(start, min(start + CHUNK, members))]
        async with store.client.pipeline(transaction=False) as pipe:
            pipe.sadd(members_key, *ids)
            pipe.hset(spend_key, mapping={i: 10 + n % 500 for n, i in enumerate(ids)})
            await pipe.execute()


async def dashboard_reads(store: RedisStore, segments: Sequence[str]) -> None:
    """What ``GET /v1/dashboard`` reads from the store."""
    await store.sizes(segments)
    await store.activity(int(time.time() * 1000) - 60_000)
    await store.revenue(segments)
    await store.recent_changes(30)
    await store.currencies()


async def measure(store: RedisStore, port: int, segments: Sequence[str]) -> Serving:
    """Time each kind of request against the worker on ``port`` and against Redis."""
    members = int(await store.client.scard(store.key(names.REDIS_MEMBERS, SEGMENT)))
    await store.client.delete(store.key(names.REDIS_REVENUE_COUNTED))
    started = time.perf_counter()
    await store.revenue([SEGMENT])
    counted_ms = (time.perf_counter() - started) * 1000
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> Any:
            async with session.get(base + path) as answer:
                answer.raise_for_status()
                return await answer.json()

        dashboard = await _per_request(lambda: get("/v1/dashboard"))
        page = await _per_request(lambda: get(f"/v1/segments/{SEGMENT}/members?count=100"))
    return Serving(
        members,
        counted_ms,
        dashboard,
        await _per_request(lambda: dashboard_reads(store, segments)),
        page,
        await _per_request(lambda: store.members(SEGMENT, 0, 100)),
    )


async def _per_request(request: Callable[[], Awaitable[Any]]) -> float:
    """Milliseconds per request, after one to warm up."""
    await request()
    started = time.perf_counter()
    for _ in range(REQUESTS):
        await request()
    return (time.perf_counter() - started) * 1000 / REQUESTS
