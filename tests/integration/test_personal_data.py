"""Erasure reaches everything segstream keeps: a customer's email and name, sent through the
Tracking API (Segment's SDK), in a refused tracking message, in a bad record on Kafka and in an
import with a rejected row, are afterwards in no record of any topic segstream writes, no Redis
key, no import report and no worker log (searched as raw bytes). Kafka cannot delete one
record, so segstream never writes them: dead letters and reports keep the rest of the record,
and the events it produces carry only the traits the state keeps."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from segment.analytics.client import Client as SegmentClient

from config import Settings, names
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, read, records_until_quiet
from tests.integration.test_tracking_sdks import WEB_KEY, WRITE_KEYS, message, post, url

pytestmark = pytest.mark.integration

EMAIL, FIRST, LAST, PHONE = "ana.erasable@example.com", "Anastasia", "Erasedottir", "+49301234567"
PERSONAL = [value.encode() for value in (EMAIL, FIRST, LAST, PHONE)]
CUSTOMER = "pd1"
# Not JSON: a producer's truncated record, on a topic the worker reads.
BAD_RECORD = f'{{"event_id": "x1", "customer_id": "{CUSTOMER}", "note": "{EMAIL}'.encode()


async def test_no_topic_key_report_or_log_keeps_an_erased_customers_email_or_name(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(write_keys=WRITE_KEYS)
    settings = deployment.settings
    worker = worker_factory(deployment)
    await worker.until_ready()
    segment = SegmentClient(WEB_KEY, host=url(deployment), sync_mode=True)
    traits = {
        "email": EMAIL,
        "firstName": FIRST,
        "lastName": LAST,
        "name": f"{FIRST} {LAST}",
        "phone": PHONE,
        "emailConsent": True,
        "address": {"city": "Berlin", "street": f"{LAST}str. 1"},
    }
    await asyncio.to_thread(segment.identify, CUSTOMER, traits)
    order = {"order_id": "o1", "total": 30.0, "products": [{"sku": "s1", "category": "shoes"}]}
    await asyncio.to_thread(segment.track, CUSTOMER, "Order Completed", order)
    # Refused by the Tracking API (a total that is not a number): a dead letter.
    refused = message(
        "track",
        CUSTOMER,
        event="Order Completed",
        properties={"order_id": "o2", "total": "thirty", "email": EMAIL},
        context={"traits": {"firstName": FIRST, "lastName": LAST}},
    )
    status, answer, _ = await post(deployment, "/v1/batch", orjson.dumps({"batch": [refused]}))
    assert status == 400, answer
    # Refused by the worker: a dead letter of its own.
    await produce(settings, [(names.PURCHASES, CUSTOMER.encode(), BAD_RECORD)])
    # An import: one profile update kept (without the personal traits), one row rejected.
    rows = tmp_path / "profiles.jsonl"
    profile = {"customer_id": CUSTOMER, "ts": "2026-12-01T10:00:00Z"}
    rows.write_bytes(
        b"\n".join(
            orjson.dumps({"topic": names.PROFILE_UPDATES, "value": profile | {"traits": t}})
            for t in (
                {"email": EMAIL, "first_name": FIRST, "last_name": LAST, "country": "DE"},
                {"email": EMAIL, "first_name": FIRST, "birth_year": "nineteen"},
            )
        )
    )
    imported = run_segstream(deployment.env, "import", str(rows), "--kind", "events", "--wait")
    assert imported.returncode == 1, imported.stderr  # a row was rejected
    report = rows.with_name(f"{rows.name}.rejected.jsonl")

    letters = await read(settings, names.DEAD_LETTERS, 2)
    assert len(letters) == 2, letters
    changes = await read(settings, names.SEGMENT_CHANGES, 1)
    assert any(c["customer_id"] == CUSTOMER and c["change"] == "enter" for c in changes)

    erasure = {"customer_id": CUSTOMER, "ts": int(time.time() * 1000)}
    await produce(settings, [(names.CUSTOMER_ERASURES, CUSTOMER.encode(), orjson.dumps(erasure))])
    await until_erased(settings)

    written = await every_record(settings)
    assert len(written) > 10
    found = [record for record in written if any(p in record for p in PERSONAL)]
    assert found == [], found[:3]
    assert not any(p in value for value in await every_redis_value(settings) for p in PERSONAL)
    assert report.exists() and not any(p in report.read_bytes() for p in PERSONAL)
    assert not any(p in worker.log.read_bytes() for p in PERSONAL)
    assert not any(p in (imported.stdout + imported.stderr).encode() for p in PERSONAL)


async def until_erased(settings: Settings, timeout: float = 60.0) -> None:
    """Until the erasure's exits are on segment-changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        changes = await read(settings, names.SEGMENT_CHANGES, 1, linger=1.0)
        if any(str(c.get("cause_event_id", "")).startswith("erasure:") for c in changes):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no exit caused by the erasure within {timeout:g} s")


async def every_record(settings: Settings) -> list[bytes]:
    """Key and value of every record on the deployment's topics, except the one record the
    test itself wrote with personal data (on an input topic, as a shop's producer would)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(settings.topic_prefix))
    finally:
        await consumer.stop()
    found = await records_until_quiet(settings.kafka_bootstrap, topics, quiet_s=2.0)
    return [
        (record.key or b"") + b"\0" + with_decoded(record.value or b"")
        for record in found
        if record.value != BAD_RECORD
    ]


def with_decoded(value: bytes) -> bytes:
    """A record's value, followed by what its base64 fields (a dead letter's) hold."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if not isinstance(parsed, dict):
        return value
    encoded = [v for k, v in parsed.items() if k.endswith("_base64") and isinstance(v, str)]
    return b"\0".join([value, *(base64.b64decode(v) for v in encoded)])


async def every_redis_value(settings: Settings) -> list[bytes]:
    """Every key of the deployment's Redis and everything it holds, as bytes."""
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    held: list[bytes] = []
    try:
        async for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            kind = (await client.type(key)).decode()
            content: Any = {
                "string": lambda k: client.get(k),
                "hash": lambda k: client.hgetall(k),
                "set": lambda k: client.smembers(k),
                "list": lambda k: client.lrange(k, 0, -1),
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                "stream": lambda k: client.xrange(k),
            }[kind](key)
            held.append(key + repr(await content).encode())
    finally:
        await client.aclose()
    return held
