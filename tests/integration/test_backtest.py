"""A backtest over the real history: `segstream replay --from-kafka` reads the input topics back
from Kafka and ends where replay of the same events from a file ends; through the API, a draft
segment is backtested beside the live one, with progress, and can be cancelled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from streams.timestamps import format_ts
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, produce_many
from tests.integration.oracle import DAY, MINUTE, Shop, now_ms, synthetic_shop
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration


async def test_replay_from_kafka_equals_replay_of_the_same_events(
    deployment_factory: Callable[..., Deployment], tmp_path: Path
) -> None:
    deployment = deployment_factory()
    shop = synthetic_shop(customers=40, count=600, seed=11)
    await produce_many(deployment.settings, shop.kafka_records())
    # The same events in a file, in the order of their times (as the history is read back).
    lines = sorted(shop.jsonl(), key=lambda line: orjson.loads(line)["value"]["ts"])
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")

    from_file = run_segstream(deployment.env, "replay", str(events), "--json")
    from_kafka = run_segstream(deployment.env, "replay", "--from-kafka", "--since", "1d", "--json")
    daily = run_segstream(deployment.env, "replay", "--from-kafka", "--by-day", "--json")
    neither = run_segstream(deployment.env, "replay")

    assert from_file.returncode == 0, from_file.stderr
    assert from_kafka.returncode == 0, from_kafka.stderr
    expected, found = orjson.loads(from_file.stdout), orjson.loads(from_kafka.stdout)
    assert found["events"] == expected["events"] == len(shop.records)
    assert found["membership"] == expected["membership"] and expected["membership"]

    def by_version(changes: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return sorted((c["customer_id"], c["version"], c["segment"], c["change"]) for c in changes)

    assert by_version(found["changes"]) == by_version(expected["changes"])
    assert f"Read {len(shop.records):,} records from the input topics." in from_kafka.stderr

    assert daily.returncode == 0, daily.stderr
    report = orjson.loads(daily.stdout)["segments"]
    final_sizes = {segment: rows[-1]["size"] for segment, rows in report.items()}
    assert {s: n for s, n in final_sizes.items() if n} == {
        segment: len(members) for segment, members in expected["membership"].items()
    }
    assert (neither.returncode, neither.stderr.strip()) == (
        2,
        "segstream: give an EVENTS_FILE or --from-kafka (one of them).",
    )


async def test_a_backtest_through_the_api_reports_the_draft_beside_the_live_segment(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    await worker.until_ready()
    last = now_ms() - MINUTE
    shop = Shop()
    for n in range(3):  # c1: an order a day for three days, the last a minute ago; c2: two
        shop.purchase("c1", last - (2 - n) * DAY)
    shop.purchase("c2", last - 2 * DAY)
    shop.purchase("c2", last - DAY)
    await produce(deployment.settings, shop.kafka_records())
    draft = {
        "name": "repeat_buyers",
        "since": "7d",
        "definition": {
            "description": "Three or more orders",
            "consent_required": False,
            "when": {"count": {"of": "orders", "min": 3}},
        },
    }
    base = f"http://127.0.0.1:{deployment.settings.web_port}/v1/segments/backtest"
    async with aiohttp.ClientSession() as session:
        async with session.post(base, json={**draft, "since": "7 days"}) as answer:
            refused = (answer.status, (await answer.json())["error"])
        async with session.post(base, json=draft) as answer:
            assert answer.status == 202, await answer.text()
            started = await answer.json()
            assert answer.headers["Location"] == f"/v1/segments/backtest/{started['id']}"

        async def finished() -> dict[str, Any] | None:
            async with session.get(f"{base}/{started['id']}") as answer:
                found: dict[str, Any] = await answer.json()
            return found if found["state"] != "running" else None

        done = await poll_until(finished, "the backtest finishes", 120, 0.5)
        async with session.post(base, json=draft) as answer:
            second = await answer.json()
        async with session.delete(f"{base}/{second['id']}") as answer:
            cancelled = await answer.json()
        async with session.get(f"{base}/{second['id']}") as answer:
            after = await answer.json()

    assert refused[0] == 422 and refused[1].startswith("request: field 'since'")
    assert done["state"] == "done", done
    assert done["records_read"] == len(shop.records) and done["result"]["events"] == 5
    today = format_ts(last)[:10]
    # The draft: c1 enters with the third order, today. The live segment needs consent: empty.
    assert done["result"]["draft"] == [{"day": today, "enters": 1, "exits": 0, "size": 1}]
    assert done["result"]["live"] == []
    assert cancelled["state"] == after["state"] == "cancelled"
    worker.assert_running()
