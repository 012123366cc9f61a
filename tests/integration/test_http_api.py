"""The HTTP API of a real worker: token, ingest, segments, members, customers, OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest

from config import names
from tests.integration.api_client import Api, consent, purchase
from tests.integration.kafka_io import produce
from tests.integration.oracle import DAY, now_ms
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration


async def test_token_guards_every_route_but_health(api: Api) -> None:
    assert (await api.call("GET", "/health", token=None))[0] == 200
    guarded = (
        "/v1/segments",
        "/v1/segments/repeat_buyers",
        "/openapi.json",
        "/v1/customers/x",
        "/v1/customers/x/explain",
        "/metrics",
        "/v1/dashboard",
        "/dashboard",
    )
    for path in guarded:
        assert (await api.call("GET", path, token=None))[0] == 401, path
        assert (await api.call("GET", path, token="wrong"))[0] == 401, path
    status, body = await api.call("POST", "/v1/events", [consent("z", now_ms())], token="wrong")
    assert (status, body) == (401, {"error": "missing or wrong bearer token"})


async def test_ingest_validates_each_event_and_feeds_the_engine(api: Api) -> None:
    t = now_ms() - DAY
    batch = [
        consent("amy", t),
        purchase("amy", 1, t + 1000),
        {"topic": "purchases", "value": {"customer_id": "amy"}},
        {"topic": "nope", "value": {}},
        "not an object",
        purchase("amy", 2, t + 2000),
    ]
    status, body = await api.call("POST", "/v1/events", batch)

    assert status == 202
    assert body["accepted"] == 3
    assert [(r["index"], r["accepted"], r.get("reason")) for r in body["results"]] == [
        (0, True, None),
        (1, True, None),
        (2, False, "event_id: missing"),
        (
            3,
            False,
            "topic: expected one of " + ", ".join(names.INPUT_TOPICS),
        ),
        (4, False, "expected an object {topic, value} (key optional)"),
        (5, True, None),
    ]

    async def customer() -> Any:
        status, found = await api.call("GET", "/v1/customers/amy")
        return found if status == 200 and "repeat_buyers" in found["served_segments"] else None

    found = await poll_until(customer, "amy served in repeat_buyers")
    assert found["purchases"]["count"] == 2
    assert "repeat_buyers" in found["segments"]
    assert "email" not in found["traits"]
    assert found["traits"]["gender"] == "female"

    status, why = await api.call("GET", "/v1/customers/amy/explain?segment=repeat_buyers")
    (explained,) = why["segments"]
    assert (status, explained["member"], explained["holds"]) == (200, True, True)
    rule = explained["why"]["parts"][1]
    assert (rule["rule"], rule["value"], rule["holds"]) == ("orders ever at least 2", 2, True)
    status, every = await api.call("GET", "/v1/customers/amy/explain")
    assert {e["segment"] for e in every["segments"]} == set(found["segments"])
    assert (await api.call("GET", "/v1/customers/amy/explain?segment=nope"))[0] == 404

    status, segments = await api.call("GET", "/v1/segments")
    sizes = {s["name"]: s["size"] for s in segments["segments"]}
    assert status == 200
    assert sizes["repeat_buyers"] == 1
    assert sizes["gender_female"] == 1
    status, members = await api.call("GET", "/v1/segments/repeat_buyers/members?count=10")
    assert (status, members["members"], members["next_cursor"]) == (200, ["amy"], 0)
    status, one = await api.call("GET", "/v1/segments/repeat_buyers")
    assert (status, one["size"], one["consent_required"]) == (200, 1, True)


async def test_errors_are_clear(api: Api) -> None:
    assert await api.call("GET", "/v1/segments/nope") == (404, {"error": "no segment named 'nope'"})
    assert (await api.call("GET", "/v1/segments/nope/members"))[0] == 404
    assert await api.call("GET", "/v1/segments/repeat_buyers/members?count=0") == (
        400,
        {"error": "cursor must be >= 0 and count within 1..1000"},
    )
    assert (await api.call("GET", "/v1/segments/repeat_buyers/members?cursor=x"))[0] == 400
    assert await api.call("GET", "/v1/customers/nobody") == (404, {"error": "no such customer"})
    status, body = await api.call("POST", "/v1/events", raw=b"{nope")
    assert status == 400
    assert body["error"].startswith("not valid UTF-8 JSON")
    status, body = await api.call("POST", "/v1/events", raw=b"[" + b" " * 600_000 + b"]")
    assert (status, body) == (413, {"error": "body over the 512000-byte limit"})
    status, body = await api.call("POST", "/v1/events", [{"topic": "purchases", "value": {}}])
    assert status == 400
    assert body["accepted"] == 0


async def test_openapi_documents_every_route(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {
        ("/health", "get"),
        ("/v1/events", "post"),
        ("/v1/segment", "post"),
        ("/v1/batch", "post"),
        *(
            (f"/v1/{call}", "post")
            for call in ("track", "identify", "page", "screen", "group", "alias")
        ),
        ("/v1/segments", "get"),
        ("/v1/segments/{name}", "get"),
        ("/v1/segments/{name}", "put"),
        ("/v1/segments/{name}", "delete"),
        ("/v1/segments/preview", "post"),
        ("/v1/segments/backtest", "post"),
        ("/v1/segments/backtest/{backtest_id}", "get"),
        ("/v1/segments/backtest/{backtest_id}", "delete"),
        ("/v1/segments/{name}/history", "get"),
        ("/v1/segments/{name}/rollback", "post"),
        ("/v1/segments/{name}/members", "get"),
        ("/v1/definitions", "get"),
        ("/v1/segments/{name}/audience", "get"),
        ("/v1/reports/campaigns", "get"),
        ("/v1/segments/{name}/members.csv", "get"),
        ("/v1/subscriptions", "get"),
        ("/v1/subscriptions", "post"),
        ("/v1/subscriptions/{subscription_id}", "get"),
        ("/v1/subscriptions/{subscription_id}", "delete"),
        ("/v1/subscriptions/{subscription_id}/pause", "post"),
        ("/v1/subscriptions/{subscription_id}/resume", "post"),
        ("/v1/customers/{customer_id}", "get"),
        ("/v1/customers/{customer_id}/explain", "get"),
        ("/metrics", "get"),
        ("/v1/dashboard", "get"),
        ("/dashboard", "get"),
        ("/openapi.json", "get"),
    }
    for path, method in documented:
        probe = path.replace("{name}", "repeat_buyers").replace("{customer_id}", "nobody")
        probe = probe.replace("{backtest_id}", "nothing").replace("{subscription_id}", "none")
        status, _ = await api.call(method.upper(), probe, body=[] if method == "post" else None)
        assert status != 405 and status < 500, (path, status)


def metric(text: str, name: str, **labels: str) -> float:
    wanted = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
    )
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_account_for_every_event(api: Api) -> None:
    t = now_ms() - DAY
    await api.call(
        "POST",
        "/v1/events",
        [consent("kim", t), purchase("kim", 1, t + 1000), {"topic": "purchases", "value": {}}],
    )
    await produce(api.deployment.settings, [(names.PURCHASES, b"kim", b"{broken")])

    async def counted() -> Any:
        status, text = await api.call("GET", "/metrics")
        done = metric(text, "segstream_events_dead_lettered_total", topic="purchases") == 1
        return text if status == 200 and done else None

    text = await poll_until(counted, "the dead letter counted")
    for topic, applied, dead in (("purchases", 1, 1), ("profile-updates", 1, 0)):
        events_in = metric(text, "segstream_events_in_total", topic=topic)
        assert metric(text, "segstream_events_applied_total", topic=topic) == applied
        assert metric(text, "segstream_events_dead_lettered_total", topic=topic) == dead
        assert events_in == applied + dead
    assert (
        metric(text, "segstream_transitions_total", segment="first_time_buyers", change="enter")
        == 1
    )
    assert metric(text, "segstream_change_latency_seconds_count", cause="event") >= 1
    assert metric(text, "segstream_events_rejected_total", topic="purchases") == 1
    assert "segstream_consumer_lag" in text
    assert "segstream_deadlines_scheduled" in text


async def test_segment_spec_calls_feed_the_engine(api: Api) -> None:
    when = "2026-11-01T10:00:00Z"
    batch = {
        "batch": [
            {
                "type": "identify",
                "userId": "seg1",
                "messageId": "m1",
                "timestamp": when,
                "traits": {"emailConsent": True, "gender": "male"},
            },
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "seg1",
                "messageId": "m2",
                "timestamp": when,
                "properties": {
                    "order_id": "o1",
                    "total": 20,
                    "products": [{"sku": "s", "category": "shoes", "quantity": 1, "price": 20}],
                },
            },
            {
                "type": "page",
                "userId": "seg1",
                "messageId": "m3",
                "timestamp": when,
                "properties": {"url": "https://shop.example/"},
            },
            {"type": "screen", "userId": "seg1", "messageId": "m4", "timestamp": when},
        ]
    }
    status, body = await api.call("POST", "/v1/segment", batch)
    assert status == 200
    assert [(r["outcome"], r.get("topic")) for r in body["results"]] == [
        ("accepted", names.PROFILE_UPDATES),
        ("accepted", names.PURCHASES),
        ("accepted", names.PAGE_VIEWS),
        ("ignored", None),
    ]

    async def served() -> Any:
        status, found = await api.call("GET", "/v1/customers/seg1")
        return found if status == 200 and "first_time_buyers" in found["served_segments"] else None

    found = await poll_until(served, "seg1 served in first_time_buyers")
    assert found["traits"]["gender"] == "male"
