"""`segstream bench --smoke`: the harness runs every step on the real stack and reports figures
that hang together. No timing is asserted: speed is what the full run measures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from engine.catalog import catalog_for
from segstream.bench import quix, restore
from segstream.bench.harness import BenchConfig
from segstream.bench.workload import Workload
from streams import codec
from tests.integration.deployment import Deployment, run_segstream
from tests.integration.kafka_io import records_until_quiet

pytestmark = pytest.mark.integration


def test_smoke_run_reports_every_contender_and_measure(
    deployment_factory: Callable[..., Deployment], tmp_path: Path
) -> None:
    deployment = deployment_factory(partitions="4")
    report_file = tmp_path / "report.json"

    done = run_segstream(
        deployment.env, "bench", "--smoke", "--json", str(report_file), timeout=600
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = orjson.loads(report_file.read_bytes())
    smoke = BenchConfig.smoke(tmp_path)
    runs = report["throughput"]
    assert set(runs) == {"raw", "faust_bare", "faust_tuned", "naive", "quix", "segstream"}
    for name, run in runs.items():
        assert run["events"] >= smoke.events, name
        assert run["seconds"] > 0 and run["events_per_second"] > 0, name
    ratios = {item["ratio"]: item["value"] for item in report["ratios"]}
    rate = {name: run["events_per_second"] for name, run in runs.items()}
    assert ratios["segstream/raw"] == pytest.approx(rate["segstream"] / rate["raw"])
    assert ratios["segstream/naive"] == pytest.approx(rate["segstream"] / rate["naive"])
    assert ratios["segstream/quix"] == pytest.approx(rate["segstream"] / rate["quix"])
    assert ratios["quix/raw"] == pytest.approx(rate["quix"] / rate["raw"])
    assert "quix/raw" in done.stdout
    assert_quix_changes_match_the_engine(deployment, report["setup"]["run_id"], smoke)
    [paced] = report["latency"]
    assert paced["changes"] > 0
    assert paced["p50_ms"] <= paced["p99_ms"] <= paced["p999_ms"]
    restored = {(item["store"], item["customers"]) for item in report["recovery"]}
    assert restored == {(store, n) for store in smoke.stores for n in smoke.memory_customers}
    assert {item["store"] for item in report["memory"]} == set(smoke.stores)
    assert "Ratios" in done.stdout and "segstream/raw" in done.stdout
    # Faust's own recovery loop and segstream's restored the same changelog, counting every
    # key; the ceilings follow from this run's own figures.
    [memory_restore] = [item for item in report["recovery"] if item["store"] == "memory://"]
    assert memory_restore["faust_keys_per_second"] > 0
    assert memory_restore["loop_keys_per_second"] > 0
    assert memory_restore["faust_ratio"] == pytest.approx(
        memory_restore["keys_per_second"] / memory_restore["faust_keys_per_second"]
    )
    ceilings = report["ceilings"]
    engine = ceilings["engine_events_per_second"]
    bound = 1 / (1 / rate["faust_tuned"] + 1 / engine)
    assert ceilings["segstream_events_per_second"] == pytest.approx(bound)
    assert bound < min(engine, rate["faust_tuned"])
    assert ceilings["segstream/raw"]["value"] == pytest.approx(bound / rate["raw"])
    assert ceilings["restore_keys_per_second"]["value"] == memory_restore["loop_keys_per_second"]
    assert "Ceilings" in done.stdout
    # Ingest: every batch through /v1/batch was answered 200 with each message accepted (the
    # harness fails otherwise), and the same events went straight to Kafka.
    took = report["ingest"]
    # A share came from visitors not logged in; identifies also linked them.
    assert took["messages"] == smoke.ingest_messages
    assert took["events"] == took["direct_events"] > took["messages"] > took["anonymous"] > 0
    assert took["batches"] == smoke.ingest_messages // 100
    assert took["messages_per_second"] == pytest.approx(took["messages"] / took["seconds"])
    assert took["ratio"] == pytest.approx(
        took["events_per_second"] / took["direct_events_per_second"]
    )
    assert took["worker_cpu_us_per_message"] > 0 and took["direct_cpu_us_per_event"] > 0
    assert ratios["ingest/direct"] == pytest.approx(took["ratio"])
    assert "ingest/direct" in done.stdout and "/v1/batch on one worker" in done.stdout
    # The exact preview evaluated every customer the worker holds.
    previewed = report["preview"]
    assert 0 < previewed["customers"] <= smoke.customers
    assert 0 < previewed["members"] + previewed["leaving"] <= previewed["customers"]
    assert previewed["ratio"] == pytest.approx(
        previewed["customers_per_second"] / previewed["engine_customers_per_second"]
    )
    assert "Exact preview of a draft segment" in done.stdout
    # The backtest replayed the workload's first events through `segstream replay`, which
    # printed the segment changes they made.
    replayed = report["backtest"]
    assert replayed["events"] == smoke.backtest_events
    assert replayed["changes"] > 0 and replayed["ratio"] > 0
    assert replayed["ratio"] == pytest.approx(
        replayed["events_per_second"] / replayed["loads_per_second"]
    )
    assert "Backtest: segstream replay" in done.stdout
    # The RocksDB worker, restarted on its own store, replayed only the changelog's tail.
    [rocksdb] = [item for item in report["recovery"] if item["store"] == "rocksdb://"]
    assert rocksdb["restart_seconds_to_ready"] > 0
    assert rocksdb["restart_restored"] < rocksdb["customers"]
    assert "restarted on its own store" in done.stdout
    # The dashboard and a member page, through the worker and straight from Redis, over a
    # segment of the run's members.
    served = report["serving"]
    assert served["members"] == smoke.serving_members
    assert served["dashboard_ratio"] == pytest.approx(
        served["dashboard_ms"] / served["dashboard_redis_ms"]
    )
    assert served["page_ms"] > 0 and served["page_redis_ms"] > 0
    assert served["first_dashboard_ms"] > 0 and served["summed_ms"] > 0
    assert "GET /v1/dashboard" in done.stdout


def assert_quix_changes_match_the_engine(
    deployment: Deployment, run_id: str, smoke: BenchConfig
) -> None:
    """The quix peer's change records, followed per customer, end in the buyer segments the
    engine's fold of the same workload ends in; and each enters before it exits."""
    topic = f"{run_id}-{quix.CHANGES}"
    records = asyncio.run(records_until_quiet(deployment.settings.kafka_bootstrap, [topic], 1))
    members: set[tuple[str, str]] = set()
    for record in records:
        change = codec.loads(record.value)
        assert record.key == change["customer_id"].encode()
        member = (change["customer_id"], change["segment"])
        assert (change["change"] == "enter") == (member not in members), change
        members ^= {member}
    settings = deployment.settings
    catalog = catalog_for(settings.segments_file, settings.cart_quiet_minutes)
    workload = Workload(smoke.customers, smoke.events, smoke.seed)
    expected = {
        (state.customer_id, segment)
        for state in restore.fold(workload.encoded(), catalog)
        for segment in state.segments & set(quix.SEGMENTS)
    }
    assert {segment for _, segment in expected} == set(quix.SEGMENTS)
    assert members == expected
