"""Purchases through the real worker: state in the Faust table, changes on segment-changes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import names
from engine.state import LATE_FOR_WINDOWS
from streams import codec
from streams.timestamps import format_ts
from tests.integration.buyers import buyers_catalog, purchase
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import event, produce, read_until_quiet

pytestmark = pytest.mark.integration


def change(value: dict[str, Any], segment: str, kind: str, version: int) -> dict[str, Any]:
    return {
        "customer_id": value["customer_id"],
        "segment": segment,
        "change": kind,
        "at": format_ts(value["ts"]),
        "cause": "event",
        "cause_event_id": value["event_id"],
        "version": version,
    }


def per_customer(changes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in changes:
        grouped.setdefault(item["customer_id"], []).append(item)
    return grouped


async def test_purchases_publish_exact_buyer_transitions(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=buyers_catalog(tmp_path))
    worker = worker_factory(deployment)
    alice = [purchase("alice", n) for n in (1, 2, 3)]
    bob = [purchase("bob", 1)]
    carol = [purchase("carol", n) for n in (1, 2)]
    # Interleaved across customers; each customer's events keep their order on their partition.
    sent = [alice[0], bob[0], carol[0], alice[1], carol[1], alice[2]]
    await produce(deployment.settings, [event(names.PURCHASES, v) for v in sent])

    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=7)

    worker.assert_running()
    assert per_customer(changes) == {
        "alice": [
            change(alice[0], "first_time_buyers", "enter", 1),
            change(alice[1], "first_time_buyers", "exit", 2),
            change(alice[1], "repeat_buyers", "enter", 3),
        ],
        "bob": [change(bob[0], "first_time_buyers", "enter", 1)],
        "carol": [
            change(carol[0], "first_time_buyers", "enter", 1),
            change(carol[1], "first_time_buyers", "exit", 2),
            change(carol[1], "repeat_buyers", "enter", 3),
        ],
    }


async def test_bad_records_are_dead_lettered_and_good_ones_still_count(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=buyers_catalog(tmp_path))
    worker = worker_factory(deployment)
    first, duplicate_of_first, second = (
        purchase("dora", 1),
        purchase("dora", 1),
        purchase("dora", 2),
    )
    negative = purchase("dora", 3, total=-5.0)
    bad = [
        (names.PURCHASES, b"dora", b"{not json"),
        (names.PURCHASES, b"someone-else", codec.dumps(purchase("dora", 4))),
        event(names.PURCHASES, negative),
    ]
    await produce(
        deployment.settings,
        [
            event(names.PURCHASES, first),
            *bad,
            event(names.PURCHASES, duplicate_of_first),
            event(names.PURCHASES, second),
        ],
    )

    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=3)
    letters = await read_until_quiet(deployment.settings, names.DEAD_LETTERS, at_least=3)

    worker.assert_running()
    assert changes == [
        change(first, "first_time_buyers", "enter", 1),
        change(second, "first_time_buyers", "exit", 2),
        change(second, "repeat_buyers", "enter", 3),
    ]
    by_reason = {letter["reason"]: letter for letter in letters}
    assert sorted(by_reason) == [
        "key: does not match customer_id",
        "total: -5.0 is outside 0..1000000000",
        "value: not valid UTF-8 JSON (unexpected character, expected a string key)",
    ]
    assert sorted(base64.b64decode(letter["raw_base64"]) for letter in letters) == sorted(
        value for _, _, value in bad
    )
    assert {letter["source_topic"] for letter in letters} == {names.PURCHASES}


async def test_an_event_too_late_for_any_window_counts_and_gets_a_side_record(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=buyers_catalog(tmp_path))
    worker = worker_factory(deployment)
    recent, old = purchase("erin", 300), purchase("erin", -100)  # 400 days apart
    await produce(
        deployment.settings, [event(names.PURCHASES, recent), event(names.PURCHASES, old)]
    )

    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=3)
    late = await read_until_quiet(deployment.settings, names.LATE_EVENTS, at_least=1)

    worker.assert_running()
    # The old order still counts (lifetime totals), at the customer's clock ...
    assert [(c["segment"], c["change"], c["at"]) for c in changes] == [
        ("first_time_buyers", "enter", format_ts(recent["ts"])),
        ("first_time_buyers", "exit", format_ts(recent["ts"])),
        ("repeat_buyers", "enter", format_ts(recent["ts"])),
    ]
    # ... and the side record says what of it could not.
    assert len(late) == 1
    assert late[0] | {"partition": 0, "at": ""} == {
        "source_topic": names.PURCHASES,
        "partition": 0,
        "offset": 1,
        "customer_id": "erin",
        "event_id": old["event_id"],
        "ts": format_ts(old["ts"]),
        "reason": LATE_FOR_WINDOWS,
        "at": "",
    }
