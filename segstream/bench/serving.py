"""Serving a segment of many members: the dashboard's data (``GET /v1/dashboard``) and a page of
members (``GET /v1/segments/{name}/members``) from a worker whose Redis holds them, per request,
as a ratio to reading the same keys straight from Redis in the same run. Also timed: the
worker's first dashboard request (after the members were written, it counts each segment's
revenue from its members once) and reading every member's spend, which is what each dashboard
refresh did before revenue per segment was kept."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from config import Settings, names

SEGMENT = "repeat_buyers"
REQUESTS = 20  # of each kind, one after the other
CHUNK = 10_000  # members written per command


@dataclass(frozen=True)
class Serving:
    members: int
    first_dashboard_ms: float  # the worker's first request: revenue counted from the members
    summed_ms: float  # every member's spend read and summed: each refresh, before
    dashboard_ms: float  # per request, through the worker's API
    dashboard_redis_ms: float  # the same keys, straight from Redis
    page_ms: float
    page_redis_ms: float

    @property
    def dashboard_ratio(self) -> float:
        """How many times a plain Redis read of the same keys the dashboard request takes."""
        return self.dashboard_ms / self.dashboard_redis_ms if self.dashboard_redis_ms else 0.0

    @property
    def page_ratio(self) -> float:
        return self.page_ms / self.page_redis_ms if self.page_redis_ms else 0.0


class Keys:
    """The deployment's Redis keys the dashboard and a member page read."""

    def __init__(self, settings: Settings) -> None:
        self.client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
        self.prefix = settings.redis_prefix

    def key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    async def populate(self, members: int) -> None:
        """``members`` customers in SEGMENT, each with a spend."""
        for start in range(0, members, CHUNK):
            ids = [f"m{n:07d}" for n in range(start, min(start + CHUNK, members))]
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.sadd(self.key(names.REDIS_MEMBERS, SEGMENT), *ids)
                pipe.hset(self.key(names.REDIS_SPEND), mapping={i: 10 + len(i) for i in ids})
                await pipe.execute()

    async def dashboard(self, segments: Sequence[str]) -> None:
        """What ``GET /v1/dashboard`` reads: sizes, the last minute's changes, revenue, the
        latest changes and the currencies."""
        async with self.client.pipeline(transaction=False) as pipe:
            for segment in segments:
                pipe.scard(self.key(names.REDIS_MEMBERS, segment))
            await pipe.execute()
        changes = self.key(names.REDIS_CHANGES)
        await self.client.xrange(changes, min=f"{int(time.time() * 1000) - 60_000}-0")
        await self.client.exists(self.key(names.REDIS_REVENUE_COUNTED))
        await self.client.hmget(self.key(names.REDIS_REVENUE), list(segments))
        await self.client.xrevrange(changes, count=30)
        await self.client.hgetall(self.key(names.REDIS_CURRENCIES))

    async def page(self) -> None:
        await self.client.sscan(self.key(names.REDIS_MEMBERS, SEGMENT), cursor=0, count=100)

    async def summed(self) -> float:
        """Every member's spend, summed: revenue as each refresh computed it before (the same
        two commands)."""
        members = await self.client.smembers(self.key(names.REDIS_MEMBERS, SEGMENT))
        spent = await self.client.hmget(self.key(names.REDIS_SPEND), list(members))
        return round(sum(float(value) for value in spent if value is not None), 2)

    async def close(self) -> None:
        """Delete the deployment's keys, then disconnect."""
        async for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            await self.client.delete(key)
        await self.client.aclose()


async def measure(keys: Keys, port: int, segments: Sequence[str]) -> Serving:
    """Time each kind of request against the worker on ``port`` and against Redis."""
    members = int(await keys.client.scard(keys.key(names.REDIS_MEMBERS, SEGMENT)))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> Any:
            async with session.get(base + path) as answer:
                answer.raise_for_status()
                return await answer.json()

        first = await _per_request(lambda: get("/v1/dashboard"), 1)
        dashboard = await _per_request(lambda: get("/v1/dashboard"))
        page = await _per_request(lambda: get(f"/v1/segments/{SEGMENT}/members?count=100"))
    return Serving(
        members,
        first,
        await _per_request(keys.summed, 1),
        dashboard,
        await _per_request(lambda: keys.dashboard(segments)),
        page,
        await _per_request(keys.page),
    )


async def _per_request(request: Callable[[], Awaitable[Any]], count: int = REQUESTS) -> float:
    """Milliseconds per request."""
    started = time.perf_counter()
    for _ in range(count):
        await request()
    return (time.perf_counter() - started) * 1000 / count
