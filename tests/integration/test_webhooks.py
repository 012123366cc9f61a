"""Webhook subscriptions through the real worker, Kafka and Redis, delivering to a real HTTP
receiver (aiohttp) that checks each signature: injected 500s, timeouts and slow answers are
retried, repeated failures pause the subscription (state, last error and backlog in the API)
until it is resumed, and a worker killed mid-delivery loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from config import names
from engine import webhooks
from segstream.stack.process import free_port
from tests.integration.api_client import TOKEN, Api
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import produce, read_until_quiet
from tests.integration.oracle import HOUR, Shop, now_ms
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

FAST_RETRIES = {
    "webhook_retry_base_seconds": "0.2",
    "webhook_retry_max_seconds": "1",
    "webhook_timeout_seconds": "1.5",
}


class Receiver:
    """An email tool's webhook endpoint: checks the signature, then answers as the test says
    (``plan``: one behaviour per request, then 200s): a status, or "slow" (longer than the
    worker waits)."""

    def __init__(self) -> None:
        self.secret = "whsec-test-0123456789abcdef"
        self.plan: list[int | str] = []
        self.failing: int | None = None  # answer every request with this status
        self.bodies: list[dict[str, Any]] = []  # the deliveries answered 200 in time
        self.requests = 0
        self.unsigned = 0
        self.hold_s = 0.0  # how long each request is held before its answer
        self.redirected = 0  # requests that followed a redirect
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        header = request.headers.get(webhooks.SIGNATURE_HEADER, "")
        if not webhooks.verified(self.secret, header, body, int(time.time())):
            self.unsigned += 1
            return web.Response(status=400)
        behaviour = self.plan.pop(0) if self.plan else (self.failing or 200)
        if behaviour == "slow":  # the worker stops waiting first: nobody reads this answer
            await asyncio.sleep(5)
            return web.Response(status=200)
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        if behaviour == 307:  # a receiver that sends the worker elsewhere (inward, say)
            location = f"http://127.0.0.1:{self.port}/internal"
            return web.Response(status=307, headers={"Location": location})
        if behaviour != 200:
            return web.Response(status=int(behaviour), headers={"Retry-After": "0"})
        delivery = orjson.loads(body)
        assert delivery["delivery_id"] == request.headers[webhooks.DELIVERY_HEADER]
        self.bodies.append(delivery)
        return web.Response(status=200)

    def keys(self) -> list[str]:
        return [r["idempotency_key"] for body in self.bodies for r in body["records"]]

    def records(self) -> list[dict[str, Any]]:
        return [r["record"] for body in self.bodies for r in body["records"]]

    async def internal(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        app.router.add_post("/internal", self.internal)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


async def subscribe(api: Api, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"url": receiver.url, "segments": "*", "secret": receiver.secret, **fields}
    status, created = await api.call("POST", "/v1/subscriptions", body)
    assert status == 201, created
    return created


def shoppers(shop: Shop, count: int, start: int) -> None:
    """Consenting customers who each buy twice: changes to deliver."""
    for n in range(count):
        customer = f"w{n}"
        shop.profile(customer, start, email_consent=True)
        shop.purchase(customer, start + 1_000, total=40)
        shop.purchase(customer, start + 2_000, total=60)


def keys_on_topic(changes: list[dict[str, Any]]) -> set[str]:
    return {webhooks.idempotency_key(names.SEGMENT_CHANGES, change) for change in changes}


def in_order_per_customer(records: list[dict[str, Any]]) -> bool:
    """Each customer's records, first arrivals only (a redelivery repeats a batch), come in
    the order of their versions."""
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        first.setdefault(webhooks.idempotency_key(names.SEGMENT_CHANGES, record), record)
    last: dict[str, int] = {}
    for record in first.values():
        if record["version"] < last.get(record["customer_id"], 0):
            return False
        last[record["customer_id"]] = record["version"]
    return True


async def session_api(deployment: Deployment) -> tuple[aiohttp.ClientSession, Api]:
    session = aiohttp.ClientSession()
    base = f"http://127.0.0.1:{deployment.settings.web_port}"
    return session, Api(session, base, deployment)


async def test_changes_reach_the_receiver_signed_through_500s_timeouts_and_slow_answers(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    deployment = deployment_factory(api_token=TOKEN, **FAST_RETRIES)
    worker = worker_factory(deployment)
    await worker.until_ready()
    session, api = await session_api(deployment)
    try:
        created = await subscribe(api, receiver)
        assert created["secret"] == receiver.secret  # shown once, on creation
        status, listed = await api.call("GET", "/v1/subscriptions")
        assert status == 200 and "secret" not in orjson.dumps(listed).decode()
        receiver.plan = [500, 503, "slow", 429, 500]
        shop = Shop()
        shoppers(shop, 12, now_ms() - HOUR)
        await produce(deployment.settings, shop.kafka_records())
        changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=12)
        expected = keys_on_topic(changes)
        await poll_until(
            lambda: _true(expected <= set(receiver.keys())), "every change delivered", 60, 0.5
        )
        assert set(receiver.keys()) == expected and receiver.unsigned == 0
        assert in_order_per_customer(receiver.records())
        assert receiver.requests >= len(receiver.bodies) + 5  # the injected failures, retried

        async def counted() -> bool:
            _, found = await api.call("GET", f"/v1/subscriptions/{created['id']}")
            return found["backlog"] == 0 and found["deliveries"]["failed"] >= 5

        await poll_until(counted, "counts and an empty backlog", 30, 0.5)
        _, found = await api.call("GET", f"/v1/subscriptions/{created['id']}")
        assert found["state"] == "active" and "secret" not in found
        assert found["deliveries"]["delivered"] >= len(expected)
        _, text = await api.call("GET", "/metrics")
        assert (
            f'segstream_webhook_deliveries_total{{outcome="failed",subscription="{created["id"]}"}}'
            in text
        )
        worker.assert_running()
    finally:
        await session.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_failing_receiver_pauses_its_subscription_and_a_resume_delivers_the_backlog(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    deployment = deployment_factory(api_token=TOKEN, webhook_max_attempts="3", **FAST_RETRIES)
    worker = worker_factory(deployment)
    await worker.until_ready()
    session, api = await session_api(deployment)
    try:
        created = await subscribe(api, receiver)
        path = f"/v1/subscriptions/{created['id']}"
        receiver.failing = 500
        shop = Shop()
        shoppers(shop, 6, now_ms() - HOUR)
        await produce(deployment.settings, shop.kafka_records())
        changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=6)

        async def paused() -> bool:
            _, found = await api.call("GET", path)
            return found["state"] == "paused" and bool(found["backlog"])

        await poll_until(paused, "the subscription paused", 60, 0.5)
        _, found = await api.call("GET", path)
        assert "3 tries" in found["reason"] and "answered 500" in found["reason"]
        assert found["deliveries"]["last_error"] == "answered 500"
        assert receiver.bodies == []
        tries = receiver.requests
        await asyncio.sleep(2)
        assert receiver.requests == tries  # paused: nothing more is tried

        receiver.failing = None
        status, resumed = await api.call("POST", f"{path}/resume")
        assert status == 200 and resumed["state"] == "active"
        expected = keys_on_topic(changes)
        await poll_until(
            lambda: _true(set(receiver.keys()) == expected), "the backlog delivered", 60, 0.5
        )

        async def drained() -> bool:
            _, found = await api.call("GET", path)
            return found["backlog"] == 0

        await poll_until(drained, "no backlog", 30, 0.5)
        status, _ = await api.call("DELETE", path)
        assert status == 200
        assert (await api.call("GET", path))[0] == 404
        worker.assert_running()
    finally:
        await session.close()


async def test_a_worker_killed_mid_delivery_loses_no_change(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    """kill -9 while the receiver holds a delivery: what it never answered is delivered by the
    next worker (at least once; the idempotency keys let the receiver drop repeats)."""
    deployment = deployment_factory(
        api_token=TOKEN, session_timeout_seconds="10", webhook_batch="5", **FAST_RETRIES
    )
    first = worker_factory(deployment)
    await first.until_ready()
    session, api = await session_api(deployment)
    try:
        await subscribe(api, receiver)
        receiver.hold_s = 1.0  # each delivery in flight for a second
        shop = Shop()
        shoppers(shop, 20, now_ms() - HOUR)
        await produce(deployment.settings, shop.kafka_records())
        await poll_until(lambda: _true(len(receiver.bodies) >= 1), "a first delivery", 60, 0.2)
        first.kill()
        second = worker_factory(deployment)
        changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=20)
        expected = keys_on_topic(changes)
        receiver.hold_s = 0.0
        await poll_until(
            lambda: _true(expected <= set(receiver.keys())), "every change delivered", 90, 0.5
        )
        assert set(receiver.keys()) == expected
        second.assert_running()
    finally:
        await session.close()


async def test_subscriptions_are_checked(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    """Unknown segments and non-http URLs are refused with the reason; a worker that listens
    beyond loopback refuses a loopback receiver unless the setting allows it."""
    deployment = deployment_factory(api_token=TOKEN, web_host="0.0.0.0")
    worker = worker_factory(deployment)
    await worker.until_ready()
    session, api = await session_api(deployment)
    try:

        async def post(body: dict[str, Any]) -> tuple[int, Any]:
            return await api.call("POST", "/v1/subscriptions", body)

        status, answer = await post({"url": receiver.url, "segments": ["no_such_segment"]})
        assert status == 422 and "unknown 'no_such_segment'" in answer["error"]
        status, answer = await post({"url": "ftp://example.test/x", "segments": "*"})
        assert status == 422 and "http and https" in answer["error"]
        status, answer = await post({"url": receiver.url, "segments": "*"})
        assert status == 422 and "SEGSTREAM_WEBHOOK_ALLOW_PRIVATE" in answer["error"]
        status, answer = await api.call(
            "POST", "/v1/subscriptions", {"url": receiver.url}, token=None
        )
        assert status == 401
    finally:
        await session.close()
    worker.stop()
    allowed = deployment_factory(api_token=TOKEN, web_host="0.0.0.0", webhook_allow_private="true")
    worker = worker_factory(allowed)
    await worker.until_ready()
    session, api = await session_api(allowed)
    try:
        created = await subscribe(api, receiver, triggers="*")
        assert created["triggers"] == "*" and created["state"] == "active"
    finally:
        await session.close()


async def test_a_redirect_is_not_followed_and_pauses_the_subscription(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    """A receiver that answers 307 cannot send the worker's signed POST elsewhere (an internal
    address, say): the worker does not follow it, and the refusal pauses the subscription."""
    deployment = deployment_factory(api_token=TOKEN, **FAST_RETRIES)
    worker = worker_factory(deployment)
    await worker.until_ready()
    session, api = await session_api(deployment)
    try:
        created = await subscribe(api, receiver)
        receiver.plan = [307]
        shop = Shop()
        shoppers(shop, 2, now_ms() - HOUR)
        await produce(deployment.settings, shop.kafka_records())

        async def paused() -> bool:
            _, found = await api.call("GET", f"/v1/subscriptions/{created['id']}")
            return found["state"] == "paused"

        await poll_until(paused, "the subscription paused", 60, 0.5)
        _, found = await api.call("GET", f"/v1/subscriptions/{created['id']}")
        assert "refused" in found["reason"] and "answered 307" in found["reason"]
        assert receiver.redirected == 0 and receiver.requests == 1
        worker.assert_running()
    finally:
        await session.close()
