"""Segment definitions as live data, through real workers: a published change runs on every
worker without a restart and re-evaluates the customers they hold (cause "catalog"), segments
are added, changed, renamed and deleted, a worker restarted mid-way re-evaluates each customer
once, and a worker started with a different file keeps the live definitions and says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from config import Settings, names
from engine.catalog import load_catalog
from engine.definitions import Live
from segstream.offline.replay import replay
from streams.definitions import read_records
from streams.timestamps import parse_ts
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, read_until_quiet
from tests.integration.oracle import (
    DAY,
    MINUTE,
    Shop,
    by_customer,
    deduplicated,
    folded,
    now_ms,
)
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

V1 = """
segments:
  buyers:
    description: Bought at least once
    consent_required: false
    when: {count: {of: orders, min: 1}}
  openers:
    description: Opened at least once
    consent_required: false
    when: {count: {of: opens, min: 1}}
"""
# buyers changes; openers is renamed (and widened) to clickers_or_openers.
V2 = """
segments:
  buyers:
    description: Bought at least twice
    consent_required: false
    when: {count: {of: orders, min: 2}}
  clickers_or_openers:
    description: Opened or clicked
    consent_required: false
    when: {count: {of: engagement, min: 1}}
"""
# clickers_or_openers is deleted; big_buyers is added and refers to buyers.
V3 = """
segments:
  buyers:
    description: Bought at least twice
    consent_required: false
    when: {count: {of: orders, min: 2}}
  big_buyers:
    description: Buyers who spent 100 or more
    consent_required: false
    when:
      all:
        - {segment: buyers}
        - {count: {of: spend, min: 100}}
"""


def catalog_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def apply(deployment: Deployment, path: Path, *options: str) -> str:
    done = run_segstream(deployment.env, "segments", "apply", str(path), "--by", "ann", *options)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shop_of_six() -> Shop:
    """Six customers, spread over the partitions: one order, two orders, or one order and
    an open (three of each kind of spender)."""
    shop, t = Shop(), now_ms() - DAY
    for n in range(6):
        customer = f"c{n}"
        shop.purchase(customer, t + n, total=60.0)
        if n % 3 == 1:
            shop.purchase(customer, t + MINUTE + n, total=60.0)
        if n % 3 == 2:
            shop.open(customer, t + 2 * MINUTE + n)
    return shop


async def published(settings: Settings, at_least: int) -> list[dict[str, Any]]:
    """The segment changes once quiet, each once (at-least-once may repeat one)."""
    changes = await read_until_quiet(settings, names.SEGMENT_CHANGES, at_least=at_least)
    return deduplicated(changes)


def newer(changes: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes not read before (partitions are read in no fixed order)."""
    seen = {(c["customer_id"], c["version"]) for c in before}
    return [c for c in changes if (c["customer_id"], c["version"]) not in seen]


def transitions(changes: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    return {k: [(c[0], c[1]) for c in v] for k, v in by_customer(changes).items()}


async def test_a_published_change_runs_on_every_worker_without_a_restart(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    first_deployment = deployment_factory(segments_file=str(catalog_file(tmp_path, "v1", V1)))
    second_deployment = deployment_factory(
        topic_prefix=first_deployment.settings.topic_prefix,
        data_dir=str(first_deployment.home / "second"),
        segments_file=str(catalog_file(tmp_path, "v1", V1)),
    )
    settings = first_deployment.settings
    workers = [worker_factory(first_deployment), worker_factory(second_deployment)]
    for worker in workers:
        await worker.until_ready()
    shop = shop_of_six()
    await produce(settings, shop.kafka_records())
    run1 = await published(settings, at_least=8)
    assert {c["cause"] for c in run1} == {"event"}

    # An exact preview of the stricter buyers on both workers' live state, then the change.
    draft = {
        "name": "buyers",
        "definition": {
            "description": "Bought at least twice",
            "consent_required": False,
            "when": {"count": {"of": "orders", "min": 2}},
        },
    }
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{settings.web_port}/v1/segments/preview"
        async with session.post(url, json=draft) as answer:
            assert answer.status == 200, await answer.text()
            previewed = await answer.json()
    assert {k: previewed[k] for k in ("customers", "members", "entering", "leaving")} == {
        "customers": 6,
        "members": 2,
        "entering": 0,
        "leaving": 4,
    }
    assert (previewed["sample"], previewed["workers"], previewed["live"]) == (["c1", "c4"], 2, True)

    # Change buyers and rename openers, with a dry run first.
    dry = apply(first_deployment, catalog_file(tmp_path, "v2", V2), "--dry-run")
    assert "~ buyers  (v1 -> v2: description, when)" in dry
    assert "+ clickers_or_openers  (new)" in dry and "- openers  (deleted)" in dry
    assert "nothing published" in dry
    applied_at = now_ms()
    apply(first_deployment, catalog_file(tmp_path, "v2", V2))
    run2 = await published(settings, at_least=len(run1) + 8)
    second_change = newer(run2, run1)
    assert {c["cause"] for c in second_change} == {"catalog"}, second_change
    assert all(applied_at <= parse_ts(c["at"]) <= now_ms() for c in second_change)
    assert transitions(second_change) == {
        "c0": [("buyers", "exit")],
        "c2": [("openers", "exit"), ("buyers", "exit"), ("clickers_or_openers", "enter")],
        "c3": [("buyers", "exit")],
        "c5": [("openers", "exit"), ("buyers", "exit"), ("clickers_or_openers", "enter")],
    }

    # Events keep flowing: a new order now counts under the new definitions.
    shop.purchase("c0", now_ms(), total=60.0)
    await produce(settings, shop.kafka_records(len(shop.records) - 1))
    ordered = await published(settings, at_least=len(run2) + 1)
    assert transitions(newer(ordered, run2)) == {"c0": [("buyers", "enter")]}
    run2 = ordered
    # Delete clickers_or_openers, add big_buyers (which refers to buyers).
    apply(first_deployment, catalog_file(tmp_path, "v3", V3))
    run3 = await published(settings, at_least=len(run2) + 5)
    third = newer(run3, run2)
    assert {c["cause"] for c in third} == {"catalog"}, third
    assert transitions(third) == {
        "c0": [("big_buyers", "enter")],
        "c1": [("big_buyers", "enter")],
        "c2": [("clickers_or_openers", "exit")],
        "c4": [("big_buyers", "enter")],
        "c5": [("clickers_or_openers", "exit")],
    }

    # The end state is offline replay's under the final definitions; versions are contiguous.
    replayed = replay(shop.jsonl(), load_catalog(catalog_file(tmp_path, "v3", V3)), now_ms())
    expected = {cid: set(s.segments) for cid, s in replayed.states.items() if s.segments}
    assert folded(run3) == expected  # folded checks that versions are contiguous

    # Both workers run the same definitions, and said so; the topic keeps versions and authors.
    live, _ = Live().after(await read_records(settings))
    buyers = live.definitions["buyers"]
    assert (buyers.version, buyers.changed_by, len(buyers.history)) == (2, "ann", 1)
    assert sorted(live.definitions) == ["big_buyers", "buyers"]
    listed = run_segstream(first_deployment.env, "segments", "list", "--live", "--json")
    assert [(s["name"], s["version"], s["changed_by"]) for s in orjson.loads(listed.stdout)] == [
        ("buyers", 2, "ann"),
        ("big_buyers", 1, "ann"),
    ]
    for worker in workers:
        worker.assert_running()

        def ran(worker: WorkerProcess = worker) -> bool:
            return f"Segment definitions at offset {live.offset} run" in worker.log.read_text()

        await poll_until(ran, "the worker logs the last definitions it runs", 30, 0.2)
        assert worker.stop() == 0


async def test_a_worker_restarted_during_a_re_evaluation_re_evaluates_each_customer_once(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=str(catalog_file(tmp_path, "v1", V1)))
    settings = deployment.settings
    first = worker_factory(deployment)
    shop, t = Shop(), now_ms() - DAY
    for n in range(600):
        shop.purchase(f"c{n}", t + n, total=60.0)
    await produce(settings, shop.kafka_records())
    await read_until_quiet(settings, names.SEGMENT_CHANGES, at_least=600)

    apply(deployment, catalog_file(tmp_path, "v2", V2))

    def started() -> bool:
        return "re-evaluating 600 customers" in first.log.read_text()

    await poll_until(started, "the worker starts re-evaluating", 30, 0.05)
    first.kill()  # its ticks are on their way; some customers are done, some not
    second = worker_factory(deployment)
    changes = await read_until_quiet(settings, names.SEGMENT_CHANGES, at_least=1200)

    second.assert_running()
    unique = deduplicated(changes)
    exits = [c for c in unique if c["cause"] == "catalog"]
    assert sorted(c["customer_id"] for c in exits) == sorted(f"c{n}" for n in range(600))
    assert {(c["segment"], c["change"], c["version"]) for c in exits} == {("buyers", "exit", 2)}
    assert folded(unique) == {}
    assert second.stop() == 0


async def test_a_worker_started_with_another_file_keeps_the_live_definitions(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=str(catalog_file(tmp_path, "v1", V1)))
    first = worker_factory(deployment)
    await first.until_ready()
    assert first.stop() == 0
    catalog_file(tmp_path, "v1", V2)  # the file changes under the deployment

    second = worker_factory(deployment)
    await second.until_ready()
    log = second.log.read_text()
    assert "The live segment definitions differ from" in log
    assert "segstream segments apply" in log
    shop = Shop()
    shop.open("c1", now_ms())
    await produce(deployment.settings, shop.kafka_records())
    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=1)
    assert [(c["segment"], c["change"]) for c in changes] == [("openers", "enter")]
    assert second.stop() == 0
