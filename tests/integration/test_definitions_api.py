"""Segments edited through the HTTP API of a real worker: create, replace with If-Match, refuse
what is invalid or stale, history, rollback and delete, each applied live (cause "catalog");
and every route walked with every kind of credential, each checking its role."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from config import names
from tests.integration.api_client import TOKEN, Api
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import produce, read_until_quiet
from tests.integration.oracle import DAY, Shop, deduplicated, now_ms
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

READ_TOKEN = "read-token-0a1b2c3d4e5f"
EDIT_TOKEN = "edit-token-9f8e7d6c5b4a"
WRITE_KEY = "write-key-5566778899aa"
BIG = {
    "description": "Spent 100 or more",
    "consent_required": False,
    "when": {"count": {"of": "spend", "min": 100}},
}
HUGE = {**BIG, "description": "Spent 150 or more", "when": {"count": {"of": "spend", "min": 150}}}


@pytest.fixture
async def editors(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> AsyncIterator[Api]:
    deployment = deployment_factory(
        api_token=TOKEN,
        api_tokens=f"{READ_TOKEN}=sender:read,{EDIT_TOKEN}=maria:edit",
        write_keys=f"{WRITE_KEY}=web",
    )
    worker = worker_factory(deployment)
    await worker.until_ready()
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{deployment.settings.web_port}", deployment)


async def put(api: Api, name: str, body: Any, version: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {EDIT_TOKEN}"}
    if version is not None:
        headers["If-Match"] = version
    async with api.session.put(f"{api.base}/v1/segments/{name}", json=body, headers=headers) as r:
        return r.status, await r.json()


async def running(api: Api, name: str, version: int | None) -> None:
    """Wait until the worker runs ``version`` of segment ``name`` (None: deleted)."""

    async def runs() -> bool:
        status, body = await api.call("GET", f"/v1/segments/{name}", token=READ_TOKEN)
        return (status, body.get("version")) == ((404, None) if version is None else (200, version))

    await poll_until(runs, f"the worker runs {name} v{version}", 30, 0.2)


async def changed(api: Api, at_least: int) -> None:
    """Wait until the worker has published ``at_least`` changes: a segment's re-evaluation is
    done before the next edit (else a customer goes straight to the newest version)."""
    await read_until_quiet(api.deployment.settings, names.SEGMENT_CHANGES, at_least=at_least)


async def test_marketers_edit_segments_through_the_api_and_the_worker_applies_each_change(
    editors: Api,
) -> None:
    api, settings = editors, editors.deployment.settings
    shop, t = Shop(), now_ms() - DAY
    shop.purchase("ann", t, total=120.0)
    shop.purchase("bob", t, total=160.0)
    shop.purchase("cat", t, total=20.0)
    await produce(settings, shop.kafka_records())

    async def stored() -> bool:
        found = [await api.call("GET", f"/v1/customers/{c}") for c in ("ann", "bob", "cat")]
        return all(status == 200 for status, _ in found)

    await poll_until(stored, "the worker stores the three customers", 60, 0.2)
    before = len(await read_until_quiet(settings, names.SEGMENT_CHANGES))

    # Create: the customers the worker holds are evaluated at once.
    status, created = await put(api, "big_spenders", BIG)
    assert status == 201, created
    assert (created["version"], created["changed_by"], created["definition"]) == (1, "maria", BIG)
    await running(api, "big_spenders", 1)
    await changed(api, before + 2)  # each version is applied before the next edit
    # Stale edits are refused, current ones go through.
    assert (await put(api, "big_spenders", HUGE, '"7"'))[0] == 409
    status, replaced = await put(api, "big_spenders", HUGE, '"1"')
    assert (status, replaced["version"]) == (200, 2)
    await running(api, "big_spenders", 2)
    await changed(api, before + 3)
    # Invalid definitions: one sentence naming the request, the segment and the field.
    status, refused = await put(
        api,
        "loyal",
        {"description": "x", "when": {"segment": "missing"}, "consent_required": False},
    )
    assert (status, refused["error"]) == (
        422,
        "request: segment 'loyal', field 'when': refers to unknown segment 'missing'.",
    )
    status, refused = await put(api, "loyal", {"description": "x", "when": {"colour": 1}})
    assert status == 422 and refused["error"].startswith("request: segment 'loyal', field 'when")

    status, history = await api.call("GET", "/v1/segments/big_spenders/history", token=READ_TOKEN)
    assert status == 200
    assert [(v["version"], v["body"]) for v in history["versions"]] == [(2, HUGE), (1, BIG)]
    status, rolled = await api.call(
        "POST", "/v1/segments/big_spenders/rollback", {"version": 1}, token=EDIT_TOKEN
    )
    assert (status, rolled["version"], rolled["definition"]) == (200, 3, BIG)
    await running(api, "big_spenders", 3)
    await changed(api, before + 4)
    status, _ = await api.call("DELETE", "/v1/segments/big_spenders", token=EDIT_TOKEN)
    assert status == 200
    await running(api, "big_spenders", None)

    changes = deduplicated(
        await read_until_quiet(settings, names.SEGMENT_CHANGES, at_least=before + 6)
    )
    edits = [
        (c["customer_id"], c["change"])
        for c in changes
        if c["segment"] == "big_spenders" and c["cause"] == "catalog"
    ]
    # v1 (100): ann and bob enter; v2 (150): ann exits; v3 (100 again): ann is back;
    # deleted: both exit. Partitions interleave customers, so per customer.
    per_customer = {
        who: [change for name, change in edits if name == who] for who in ("ann", "bob", "cat")
    }
    assert per_customer == {
        "ann": ["enter", "exit", "enter", "exit"],
        "bob": ["enter", "exit"],
        "cat": [],
    }
    status, rollout = await api.call("GET", "/v1/definitions", token=READ_TOKEN)
    assert status == 200 and rollout["agree"] is True
    assert [w["offset"] for w in rollout["workers"]] == [rollout["offset"]]


# The role each route needs: "read", "edit", "ingest" (bearer tokens), "write_key" (HTTP Basic
# with a write key: the Tracking API), or None (open).
ROUTE_ROLES = {
    ("/health", "get"): None,
    ("/v1/events", "post"): "ingest",
    ("/v1/segment", "post"): "ingest",
    ("/v1/batch", "post"): "write_key",
    **{
        (f"/v1/{call}", "post"): "write_key"
        for call in ("track", "identify", "page", "screen", "group", "alias")
    },
    ("/v1/segments", "get"): "read",
    ("/v1/segments/{name}", "get"): "read",
    ("/v1/segments/{name}", "put"): "edit",
    ("/v1/segments/{name}", "delete"): "edit",
    ("/v1/segments/preview", "post"): "read",
    ("/v1/segments/backtest", "post"): "edit",
    ("/v1/segments/backtest/{backtest_id}", "get"): "read",
    ("/v1/segments/backtest/{backtest_id}", "delete"): "edit",
    ("/v1/segments/{name}/history", "get"): "read",
    ("/v1/segments/{name}/rollback", "post"): "edit",
    ("/v1/segments/{name}/members", "get"): "read",
    ("/v1/definitions", "get"): "read",
    ("/v1/segments/{name}/audience", "get"): "read",
    ("/v1/reports/campaigns", "get"): "read",
    ("/v1/segments/{name}/members.csv", "get"): "read",
    ("/v1/subscriptions", "get"): "read",
    ("/v1/subscriptions", "post"): "edit",
    ("/v1/subscriptions/{subscription_id}", "get"): "read",
    ("/v1/subscriptions/{subscription_id}", "delete"): "edit",
    ("/v1/subscriptions/{subscription_id}/pause", "post"): "edit",
    ("/v1/subscriptions/{subscription_id}/resume", "post"): "edit",
    ("/v1/customers/{customer_id}", "get"): "read",
    ("/v1/customers/{customer_id}/explain", "get"): "read",
    ("/v1/dashboard", "get"): "read",
    ("/dashboard", "get"): "read",
    ("/metrics", "get"): "read",
    ("/openapi.json", "get"): "read",
}
GRANTS = {  # credential -> the roles it has
    "none": set(),
    "wrong": set(),
    "read": {"read"},
    "edit": {"read", "edit"},
    "admin": {"read", "edit", "ingest"},
    "write_key": {"write_key"},
}


def credentials(kind: str) -> dict[str, str]:
    bearer = {"wrong": "not-a-token-at-all-000", "read": READ_TOKEN, "edit": EDIT_TOKEN}
    if kind == "none":
        return {}
    if kind == "write_key":
        return {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    return {"Authorization": f"Bearer {bearer.get(kind, TOKEN)}"}


async def test_every_route_checks_its_role_for_every_credential(editors: Api) -> None:
    api = editors
    _, document = await api.call("GET", "/openapi.json")
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == set(ROUTE_ROLES)
    for (path, method), role in sorted(ROUTE_ROLES.items()):
        url = api.base + path.replace("{name}", "probe").replace("{customer_id}", "nobody")
        url = url.replace("{backtest_id}", "nothing").replace("{subscription_id}", "none")
        for kind, grants in GRANTS.items():
            async with api.session.request(
                method.upper(), url, data=b"{}", headers=credentials(kind)
            ) as answer:
                status = answer.status
            where = f"{method.upper()} {path} with {kind}"
            if role is None or role in grants:
                assert status not in (401, 403) and status < 500, (where, status)
            elif kind in ("none", "wrong") or role == "write_key" or kind == "write_key":
                assert status == 401, (where, status)
            else:
                assert status == 403, (where, status)
