"""Anonymous visitors and identity merge through the real worker, Kafka and Redis: what a visitor
did before logging in reaches the customer once, later events under the anonymous id follow,
the first link wins, and a merge racing with events on both ids, with a worker killed in the
middle, ends where offline replay of the same records ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from segment.analytics.client import Client as SegmentClient

from config import names
from engine.erasures import ERASED
from engine.identity import LINKED_ELSEWHERE
from serving.redis_store import RedisStore
from streams.layout import changelog_topic
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import produce, produce_many, read_until_quiet, records_until_quiet
from tests.integration.oracle import GUARANTEES, HOUR, Shop, deduplicated, now_ms, read_settled
from tests.integration.stored import assert_counted_once
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

WRITE_KEY = "wk-web-0123456789abcdef"


async def customer(deployment: Deployment, customer_id: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{deployment.settings.web_port}/v1/customers/{customer_id}"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return answer.status, await answer.json()


def order(total: float, sku: str = "sku-tent") -> dict[str, Any]:
    line = {"sku": sku, "category": "outdoor", "quantity": 1, "price": total}
    return {"order_id": str(uuid.uuid4()), "total": total, "products": [line]}


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_an_identify_merges_the_visitors_history_once_and_later_events_follow(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    """With Segment's own SDK, as a shop's site and backend send: a visitor browses and buys,
    logs in (identify with both ids), buys again under the anonymous id; then another customer
    tries to claim the same anonymous id."""
    deployment = deployment_factory(processing_guarantee=guarantee, write_keys=f"{WRITE_KEY}=web")
    committed = guarantee == "exactly_once"
    worker = worker_factory(deployment)
    await worker.until_ready()
    host = f"http://127.0.0.1:{deployment.settings.web_port}"
    visitor = f"v-{uuid.uuid4().hex[:8]}"

    def send() -> None:
        sdk = SegmentClient(WRITE_KEY, host=host, sync_mode=True)
        sdk.track(anonymous_id=visitor, event="Product Viewed", properties={"sku": "sku-tent"})
        sdk.track(anonymous_id=visitor, event="Order Completed", properties=order(120))
        sdk.identify("ana", {"emailConsent": True, "country": "DE"}, anonymous_id=visitor)
        sdk.identify("ana", {"emailConsent": True}, anonymous_id=visitor)  # at every login
        sdk.track(anonymous_id=visitor, event="Order Completed", properties=order(80))

    await asyncio.to_thread(send)
    await poll_until(
        lambda: purchases(deployment, "ana", 2), "both orders counted for ana", 60, 0.5
    )
    changes = await read_until_quiet(
        deployment.settings, names.SEGMENT_CHANGES, at_least=1, committed=committed
    )
    assert changes and {c["customer_id"] for c in changes} == {"ana"}
    assert "repeat_buyers" in {c["segment"] for c in changes if c["change"] == "enter"}
    status, _ = await customer(deployment, f"anon:{visitor}")
    assert status == 404  # a visitor is no customer

    def claim() -> None:
        sdk = SegmentClient(WRITE_KEY, host=host, sync_mode=True)
        sdk.identify("bo", {"emailConsent": True}, anonymous_id=visitor)
        sdk.track(anonymous_id=visitor, event="Order Completed", properties=order(50))

    await asyncio.to_thread(claim)
    await poll_until(lambda: purchases(deployment, "ana", 3), "the later order is ana's", 60, 0.5)
    (letter,) = await read_until_quiet(
        deployment.settings, names.DEAD_LETTERS, at_least=1, committed=committed
    )
    assert letter["reason"] == LINKED_ELSEWHERE and letter["source_topic"] == "identity-links"
    status, bo = await customer(deployment, "bo")
    assert status == 200 and bo["purchases"]["count"] == 0
    store = RedisStore.connect(deployment.settings)
    try:
        assert await store.segments_of(f"anon:{visitor}") == []
    finally:
        await store.close()
    worker.assert_running()


async def purchases(deployment: Deployment, customer_id: str, count: int) -> bool:
    status, found = await customer(deployment, customer_id)
    return status == 200 and found["purchases"]["count"] == count


async def test_a_cart_started_anonymously_and_abandoned_after_login_fires_for_the_customer(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    shop, start = Shop(), now_ms()
    shop.cart_add("anon:v-cart", start - HOUR + 6_000)  # the quiet hour ends in 6 s
    shop.profile("cy", start - 2_000, email_consent=True)
    shop.link("v-cart", "cy", start - 1_000)
    await produce(deployment.settings, shop.kafka_records())
    (trigger,) = await read_until_quiet(deployment.settings, names.TRIGGERS, at_least=1)
    assert trigger["customer_id"] == "cy" and trigger["trigger"] == "cart_abandoned"
    assert [line["sku"] for line in trigger["cart"]] == ["sku-9"]
    changes, _ = await read_settled(deployment, shop)
    assert ("cart_abandoners", "enter") in {(c["segment"], c["change"]) for c in changes}
    worker.assert_running()


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_merges_racing_with_events_on_both_ids_and_a_kill_9_end_as_replay_ends(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    """Twenty visitors and their customers: events on both ids sent at once with the link in
    the middle, a worker killed with kill -9 once merges are in flight, and a new one started.
    The stored counts and memberships equal offline replay's: nothing merged twice, nothing
    lost; under exactly-once, no change published twice either."""
    # A killed worker never leaves the group: its partitions move after the session timeout.
    deployment = deployment_factory(processing_guarantee=guarantee, session_timeout_seconds="10")
    exactly_once = guarantee == "exactly_once"
    worker = worker_factory(deployment)
    shop, start = Shop(), now_ms() - 10 * HOUR
    for n in range(20):
        visitor, buyer = f"anon:v{n}", f"c{n}"
        shop.profile(buyer, start, email_consent=True)
        shop.purchase(visitor, start + 1_000, total=30)
        shop.cart_add(visitor, start + 2_000)
        shop.purchase(buyer, start + 3_000, total=500)
        shop.link(f"v{n}", buyer, start + 4_000)
        shop.purchase(visitor, start + 5_000, total=20)
        shop.open(buyer, start + 6_000)
    half = len(shop.records) // 2
    await produce_many(deployment.settings, shop.kafka_records()[:half])
    await read_until_quiet(deployment.settings, names.IDENTITY_MERGES, at_least=1)
    worker.kill()
    await produce_many(deployment.settings, shop.kafka_records()[half:])
    second = worker_factory(deployment)
    changes, expected = await read_settled(
        deployment, shop, minimum=40, committed=exactly_once, redelivered=True
    )
    second.assert_running()
    assert not [c for c in changes if c["customer_id"].startswith("anon:")]
    if exactly_once:
        assert changes == deduplicated(changes), "exactly-once published a change twice"
    assert {f"c{n}" for n in range(20)} <= set(expected)
    await assert_counted_once(deployment, shop)


@pytest.mark.parametrize("guarantee", GUARANTEES)
async def test_erasing_the_customer_erases_its_anonymous_ids(
    guarantee: str,
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    """The erasure of a customer reaches the visitor linked to it, at the visitor's own
    partition: its stub is deleted (a tombstone), an older event under the anonymous id is
    refused as erased, and a newer one starts a fresh visitor that another customer may claim.
    A merge that was on its way when the customer was erased is refused, and its visitor
    erased too. Under exactly-once the visitors' erasures go in the customer's transaction."""
    deployment = deployment_factory(processing_guarantee=guarantee)
    committed = guarantee == "exactly_once"
    worker = worker_factory(deployment)
    shop, start = Shop(), now_ms() - HOUR
    shop.profile("eve", start, email_consent=True)
    shop.purchase("anon:v-er", start + 1_000, total=30)
    shop.link("v-er", "eve", start + 2_000)
    await produce(deployment.settings, shop.kafka_records())
    await worker.until_ready()
    await poll_until(lambda: purchases(deployment, "eve", 1), "the visitor's order", 60, 0.5)
    sent = len(shop.records)
    shop.erase("eve", start + 5_000)
    shop.link("v-late", "eve", start + 4_000)  # its merge reaches eve after her erasure
    await produce(deployment.settings, shop.kafka_records(sent)[:1])

    async def erased(*keys: str) -> bool:
        return await tombstones(deployment, committed, *keys)

    await poll_until(lambda: erased("eve", "anon:v-er"), "erased", 60, 0.5)
    await produce(deployment.settings, shop.kafka_records(sent)[1:])
    await poll_until(lambda: erased("anon:v-late"), "the late visitor", 60, 0.5)

    sent = len(shop.records)
    shop.purchase("anon:v-er", start + 3_000, total=11)  # older than the erasure
    shop.purchase("anon:v-er", start + 6_000, total=40)
    shop.link("v-er", "finn", start + 7_000)
    await produce(deployment.settings, shop.kafka_records(sent))
    await poll_until(lambda: purchases(deployment, "finn", 1), "finn has the newer order", 60, 0.5)
    _, finn = await customer(deployment, "finn")
    assert finn["purchases"]["total_spend"] == 40
    letters = await read_until_quiet(
        deployment.settings, names.DEAD_LETTERS, at_least=2, committed=committed
    )
    assert sorted((letter["reason"], letter["source_topic"]) for letter in letters) == [
        (ERASED, "identity-merges"),
        (ERASED, "purchases"),
    ]
    assert (await customer(deployment, "eve"))[0] == 404
    worker.assert_running()


async def tombstones(deployment: Deployment, committed: bool, *keys: str) -> bool:
    """Whether the customers table's last record (committed ones only, with ``committed``) of
    each key is a tombstone."""
    topic = changelog_topic(deployment.settings, names.CUSTOMERS_TABLE)
    bootstrap = deployment.settings.kafka_bootstrap
    records = await records_until_quiet(bootstrap, [topic], 1, committed=committed)
    last = {orjson.loads(m.key): m.value for m in records if m.key is not None}
    return all(key in last and last[key] is None for key in keys)
