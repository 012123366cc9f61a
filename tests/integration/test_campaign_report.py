"""The campaign report through the real worker, Kafka and Redis: sends, opens, clicks and
purchases (attributed to the last click within five days) add up per campaign and segment,
a segment's holdout splits its members' purchases, and the report equals what offline replay
computes from the same history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from config import names
from engine.attribution import HELD, MAILED, campaign_rows
from engine.catalog import load_catalog
from engine.definitions import catalog_of
from engine.state import DAY_MS
from segstream.offline.replay import replay
from tests.integration.api_client import TOKEN, Api
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import produce
from tests.integration.oracle import HOUR, Shop, now_ms
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

LAPSED_TEST = {
    "description": "Bought before, a third held out",
    "consent_required": True,
    "when": {"count": {"of": "orders", "min": 1}},
    "holdout": "30%",
}


def history(start: int) -> Shop:
    """Twenty customers sent two campaigns; some open, some click and buy within the window,
    some after it, some without a touch."""
    shop = Shop()
    for n in range(20):
        c = f"r{n}"
        shop.profile(c, start, email_consent=True)
        shop.purchase(c, start + 1_000, total=20)  # into buyers_test
        segment = "buyers_test" if n % 2 else None
        shop._add(names.EMAIL_SENDS, c, start + HOUR, campaign_id="spring", segment=segment)
        if n % 3 == 0:
            shop._add(names.EMAIL_SENDS, c, start + 2 * HOUR, campaign_id="summer")
        if n % 4 != 3:
            shop.open(c, start + 3 * HOUR)  # campaign "spring"
        if n % 4 == 0:
            shop.click(c, start + 4 * HOUR)
            shop.purchase(c, start + 5 * HOUR, total=60 + n)  # attributed to spring
        if n % 5 == 1:
            shop.purchase(c, start + 4 * HOUR + 6 * DAY_MS, total=33)  # after the window
    return shop


async def test_the_report_adds_up_per_campaign_and_segment_and_equals_replay(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    deployment = deployment_factory(api_token=TOKEN)
    worker = worker_factory(deployment)
    await worker.until_ready()
    base = f"http://127.0.0.1:{deployment.settings.web_port}"
    start = now_ms() - 10 * DAY_MS
    shop = history(start)
    async with aiohttp.ClientSession() as session:
        api = Api(session, base, deployment)
        status, answer = await api.call("PUT", "/v1/segments/buyers_test", LAPSED_TEST)
        assert status == 201, answer
        # The sends last, seconds after the opens, clicks and purchases they led to: the worker
        # folds them out of time order, and the report must still equal replay's.
        records = shop.kafka_records()
        sends = [r for r in records if r[0] == names.EMAIL_SENDS]
        await produce(deployment.settings, [r for r in records if r not in sends])
        await asyncio.sleep(3)
        await produce(deployment.settings, sends)

        default = load_catalog()
        bodies = {s.name: dict(s.body) for s in default.segments} | {"buyers_test": LAPSED_TEST}
        catalog = catalog_of(bodies, default.traits)
        expected = replay(shop.jsonl(), catalog, now_ms()).report
        expected_rows = campaign_rows(expected.nested())
        assert expected_rows and any(row["conversions"] for row in expected_rows)
        report: dict[str, Any] = {}

        async def settled() -> bool:
            nonlocal report
            _, report = await api.call("GET", "/v1/reports/campaigns")
            return report["campaigns"] == expected_rows

        await poll_until(
            settled,
            "the report equal to replay's",
            60,
            0.5,
            detail=lambda: f"served {report.get('campaigns')}, replay's {expected_rows}",
        )
        (holdout,) = report["holdouts"]
        groups = expected.groups("buyers_test")
        assert holdout["purchases"] == {
            MAILED: groups.get(f"{MAILED}|purchases", 0),
            HELD: groups.get(f"{HELD}|purchases", 0),
        }
        members = holdout["members"]
        assert members[MAILED] + members[HELD] == 20 and members[HELD] > 0
        assert holdout["low"] <= holdout["lift"] <= holdout["high"]
    worker.assert_running()
