"""The Tracking API with the SDKs shops already use: Segment's (segment-analytics-python) and
RudderStack's (rudder-sdk-python), pointed at a real worker, their segment changes read back
from Kafka. Plus what the SDKs do not show: write keys, gzip, Segment's limits, the answers and
dead letters for messages segstream refuses or ignores, and a broker that stops while an SDK
sends."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from segstream.bench.processes import WorkerMetrics
from segstream.stack.kafka import LocalKafka
from segstream.stack.process import free_port
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import read, read_until_quiet

pytestmark = pytest.mark.integration

WEB_KEY = "wk-web-0123456789abcdef"
BACKEND_KEY = "wk-backend-0123456789abcdef"
WRITE_KEYS = f"{WEB_KEY}=web,{BACKEND_KEY}=backend"


def url(deployment: Deployment) -> str:
    return f"http://127.0.0.1:{deployment.settings.web_port}"


def buy(client: Any, customer: str, order: str, message_id: str | None = None) -> None:
    """What a shop's backend sends for a new customer's first order, consent included."""
    client.identify(customer, {"email": f"{customer}@example.com", "emailConsent": True})
    client.track(
        customer,
        "Order Completed",
        {
            "order_id": order,
            "total": 42.0,
            "products": [{"sku": "sku-runner", "category": "shoes", "quantity": 1, "price": 42}],
        },
        message_id=message_id,
    )


def entered(changes: list[dict[str, Any]], segment: str) -> list[str]:
    return sorted(
        c["customer_id"] for c in changes if c["segment"] == segment and c["change"] == "enter"
    )


@pytest.fixture
async def tracked(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> Deployment:
    """A ready worker with two write keys (sources "web" and "backend")."""
    deployment = deployment_factory(write_keys=WRITE_KEYS)
    worker = worker_factory(deployment)
    await worker.until_ready()
    return deployment


async def test_segment_and_rudderstack_sdks_feed_segments_and_a_retry_counts_once(
    tracked: Deployment,
) -> None:
    deployment = tracked
    errors: list[Any] = []
    retried = str(uuid.uuid4())

    def send() -> None:
        for gzipped in (False, True):  # Segment's default is plain JSON; gzip is an option
            segment = SegmentClient(
                WEB_KEY,
                host=url(deployment),
                gzip=gzipped,
                upload_interval=0.05,
                max_retries=2,
                on_error=lambda exc, batch: errors.append(("segment", exc)),
            )
            for n in range(3):
                buy(segment, f"seg-{int(gzipped)}-{n}", f"o-seg-{int(gzipped)}-{n}")
            segment.page(f"seg-{int(gzipped)}-0", "Shoes", "Runner", {"url": "/p/runner"})
            segment.alias("anon-1", f"seg-{int(gzipped)}-0")
            segment.shutdown()
        rudder = RudderClient(  # gzips by default, and puts identify traits in the context
            BACKEND_KEY,
            host=url(deployment),
            upload_interval=0.05,
            max_retries=2,
            on_error=lambda exc, batch: errors.append(("rudder", exc)),
        )
        for n in range(3):
            buy(rudder, f"rud-{n}", f"o-rud-{n}")
        rudder.shutdown()
        # The same order twice under one messageId, as an SDK's retry sends it.
        once = SegmentClient(WEB_KEY, host=url(deployment), sync_mode=True)
        buy(once, "retried", "o-retried", retried)
        buy(once, "retried", "o-retried", retried)

    await asyncio.to_thread(send)
    assert errors == []
    customers = sorted(
        [f"seg-{g}-{n}" for g in (0, 1) for n in range(3)]
        + [f"rud-{n}" for n in range(3)]
        + ["retried"]
    )
    changes = await read_until_quiet(deployment.settings, "segment-changes", len(customers))
    assert entered(changes, "first_time_buyers") == customers
    assert entered(changes, "repeat_buyers") == []
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url(deployment)}/v1/customers/retried") as answer,
    ):
        assert answer.status == 200
        assert (await answer.json())["purchases"]["count"] == 1


async def post(
    deployment: Deployment,
    path: str,
    body: bytes,
    key: str | None = WEB_KEY,
    **headers: str,
) -> tuple[int, Any, Any]:
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url(deployment)}{path}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as answer,
    ):
        text = await answer.read()
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = text.decode()
        return answer.status, parsed, answer.headers


def message(kind: str, customer: str | None = "u1", **fields: Any) -> dict[str, Any]:
    head = {"type": kind, "messageId": str(uuid.uuid4()), "timestamp": "2026-12-01T10:00:00Z"}
    return head | ({"userId": customer} if customer else {}) | fields


async def test_an_unsubscribe_exits_and_only_an_opt_in_brings_the_customer_back(
    tracked: Deployment,
) -> None:
    deployment = tracked
    segment = SegmentClient(WEB_KEY, host=url(deployment), sync_mode=True)

    async def changes_of(count: int) -> list[tuple[str, str]]:
        changes = await read_until_quiet(deployment.settings, "segment-changes", count)
        return [(c["segment"], c["change"]) for c in changes if c["segment"] == "first_time_buyers"]

    await asyncio.to_thread(buy, segment, "leaver", "o-leaver")
    assert await changes_of(1) == [("first_time_buyers", "enter")]
    await asyncio.to_thread(segment.track, "leaver", "Unsubscribed", {})
    # A later identify with consent does not re-consent an unsubscribed customer...
    await asyncio.to_thread(segment.identify, "leaver", {"emailConsent": True})
    assert await changes_of(2) == [("first_time_buyers", "enter"), ("first_time_buyers", "exit")]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url(deployment)}/v1/customers/leaver") as answer,
    ):
        found = await answer.json()
    assert (found["email_consent"], found["suppressed"]) == (False, "unsubscribed")
    # ...an explicit opt-in does.
    await asyncio.to_thread(segment.track, "leaver", "Email Subscribed", {})
    assert await changes_of(3) == [
        ("first_time_buyers", "enter"),
        ("first_time_buyers", "exit"),
        ("first_time_buyers", "enter"),
    ]


async def test_the_answers_for_each_kind_of_message(tracked: Deployment) -> None:
    deployment = tracked
    batch = [
        message("identify", traits={"gender": "female"}),
        message("track", event="Signed Up"),
        message("page", name="Home", properties={"url": "https://shop.example/"}),
        message("screen", name="Home"),
        message("group", groupId="g1"),
        message("alias", previousId="anon-7"),
        message(
            "track",
            customer=None,
            anonymousId="anon-7",
            event="Product Added",
            properties={"sku": "sku-1", "category": "shoes", "quantity": 1, "price": 40},
        ),
        message("track", event="Order Completed", properties={"total": "lots"}),
        message("identify", traits={"note": "x" * 40_000}),
    ]
    status, body, _ = await post(deployment, "/v1/batch", orjson.dumps({"batch": batch}))
    assert status == 200
    assert [r["outcome"] for r in body["results"]] == [
        "accepted",
        "ignored",
        "accepted",
        "ignored",
        "ignored",
        "accepted",  # an alias links anon-7 to u1
        "accepted",  # the anonymous visitor's cart, merged into u1's
        "rejected",
        "rejected",
    ]
    assert body["results"][8]["reason"] == "message over the 32768-byte limit"
    letters = await read(deployment.settings, "dead-letters", 2)
    assert sorted(letter["reason"] for letter in letters) == sorted(
        r["reason"] for r in body["results"][7:]
    )
    assert {letter["source_topic"] for letter in letters} == {"http:web"}

    # One call per route, with the call's type implied; RudderStack's gzip.
    single = orjson.dumps({k: v for k, v in message("identify").items() if k != "type"})
    status, body, _ = await post(
        deployment, "/v1/identify", gzip.compress(single), **{"Content-Encoding": "gzip"}
    )
    assert (status, body["accepted"]) == (200, 1)


async def test_refused_requests_say_why_in_the_shape_the_sdks_parse(tracked: Deployment) -> None:
    deployment = tracked
    one = orjson.dumps({"batch": [message("identify")]})
    big = orjson.dumps({"batch": [message("identify", traits={"n": "x" * 30_000})] * 20})
    nobody = orjson.dumps({"batch": [message("track", customer=None, event="Signed Up")]})
    cases: list[tuple[bytes, str | None, dict[str, str], int, str]] = [
        (b'{"batch": []}', WEB_KEY, {}, 400, "invalid_batch"),
        (b"not json", WEB_KEY, {}, 400, "invalid_json"),
        (b"\x1f\x8b not really gzip", WEB_KEY, {"Content-Encoding": "gzip"}, 400, "bad_request"),
        (one, None, {}, 401, "unauthorized"),
        (one, "wk-wrong-0000000000", {}, 401, "unauthorized"),
        (big, WEB_KEY, {}, 400, "batch_too_large"),
        (nobody, WEB_KEY, {}, 400, "invalid_messages"),
    ]
    seen = []
    for body, key, headers, _, _ in cases:
        status, answer, _ = await post(deployment, "/v1/batch", body, key, **headers)
        seen.append((status, answer["code"] if isinstance(answer, dict) else answer))
        assert isinstance(answer, dict) and answer["message"], answer
    assert seen == [(status, code) for *_, status, code in cases]

    # The write key may come in the body instead.
    body = orjson.dumps({"batch": [message("identify")], "writeKey": BACKEND_KEY})
    status, answer, _ = await post(deployment, "/v1/batch", body, key=None)
    assert (status, answer["accepted"]) == (200, 1)

    # Both SDKs take a 401 as final and say so.
    for client_type in (SegmentClient, RudderClient):
        client = client_type("wk-not-configured-000000", host=url(deployment), sync_mode=True)
        with pytest.raises(Exception) as refused:
            await asyncio.to_thread(buy, client, "intruder", "o-x")
        assert getattr(refused.value, "status", None) == 401, refused.value


async def test_nothing_accepted_is_lost_when_the_broker_stops_while_an_sdk_sends(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    kafka = LocalKafka(tmp_path / "kafka", free_port(), free_port())
    await kafka.start()
    try:
        deployment = deployment_factory(
            kafka_bootstrap=kafka.bootstrap, write_keys=WRITE_KEYS, ingest_ack_timeout_seconds="3"
        )
        worker = worker_factory(deployment)
        await worker.until_ready()
        errors: list[Any] = []
        customers = [f"c{n:03d}" for n in range(60)]
        segment = SegmentClient(
            WEB_KEY,
            host=url(deployment),
            upload_interval=0.05,
            upload_size=10,
            max_retries=10,
            on_error=lambda exc, batch: errors.append(exc),
        )

        def send(part: list[str]) -> None:
            for customer in part:
                buy(segment, customer, f"o-{customer}")
                time.sleep(0.05)

        await asyncio.to_thread(send, customers[:20])
        kafka.stop()  # the SDK keeps sending: the worker answers 503 and the SDK retries
        await asyncio.to_thread(send, customers[20:40])
        await asyncio.sleep(5)
        await kafka.start()
        await asyncio.to_thread(send, customers[40:])
        await asyncio.to_thread(segment.shutdown)
        assert errors == []
        changes = await read_until_quiet(
            deployment.settings, "segment-changes", at_least=len(customers)
        )
        assert entered(changes, "first_time_buyers") == customers
        assert entered(changes, "repeat_buyers") == []  # no retry counted as a second order
        metrics = WorkerMetrics(deployment.settings.web_port)
        try:
            samples = await metrics.samples()
        finally:
            await metrics.close()
        worker.assert_running()
        refused = [v for name, v in samples.items() if name.startswith("segstream_ingest_refused")]
        assert sum(refused) > 0, "the broker was down, yet no request was refused"
    finally:
        kafka.stop()
