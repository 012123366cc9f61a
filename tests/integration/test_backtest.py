"""A backtest over the real history: `segstream replay --from-kafka` reads the input topics back
from Kafka and ends where replay of the same events from a file ends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.integration.deployment import Deployment, run_segstream
from tests.integration.kafka_io import produce_many
from tests.integration.oracle import synthetic_shop

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
