"""segstream's Kafka consumer: built by Faust, with segstream's fetch wait, fetching only from
the partitions Faust fetches from."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from faust.types import TP

from segstream.faust_patches.fetch import FETCH_MAX_WAIT_MS, ActivePartitions

ROOT = Path(__file__).resolve().parents[2]

# Builds the worker's Kafka consumer the way Faust does at start-up, in its own process (a
# Faust app owns an event loop for its lifetime).
SHOW_CONSUMER = """
import asyncio
from segstream.app import app

async def show():
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    print(type(thread).__name__, consumer._fetch_max_wait_ms, consumer._client._bootstrap_servers)

asyncio.run(show())
"""


def test_the_worker_consumer_waits_at_most_fetch_max_wait_ms_for_idle_partitions() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", SHOW_CONSUMER],
        env={"PATH": "/usr/bin:/bin", "SEGSTREAM_KAFKA_BOOTSTRAP": "k1:9093"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    # Faust passes a fixed 1,500 ms; the rest of the consumer is Faust's.
    assert shown.stdout.split() == [
        "FetchMaxWaitConsumerThread",
        str(FETCH_MAX_WAIT_MS),
        "['k1:9093']",
    ]
    assert FETCH_MAX_WAIT_MS < 1500


PAUSED = TP("purchases", 0)
FETCHED = TP("segstream-customers-changelog", 0)


def fetched(partitions: Any) -> set[TP]:
    """The partitions whose buffered records aiokafka's fetch returns, given the partitions
    asked for: records of ``PAUSED`` and ``FETCHED`` are waiting in its buffer."""

    def waiting(tp: TP) -> FetchResult:
        result = FetchResult.__new__(FetchResult)  # type(...) is FetchResult, as aiokafka checks
        result.getall = lambda max_records=None: [SimpleNamespace(topic=tp.topic, offset=0)]
        result.has_more = lambda: True
        return result

    fetcher = SimpleNamespace(
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda _: True),
        _records={PAUSED: waiting(PAUSED), FETCHED: waiting(FETCHED)},
    )
    loop = asyncio.new_event_loop()  # not asyncio.run: it would reset the thread's loop
    try:
        return set(loop.run_until_complete(Fetcher.fetched_records(fetcher, partitions, timeout=0)))
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("active", "returned"),
    [
        ({FETCHED}, {FETCHED}),
        ({FETCHED, PAUSED}, {FETCHED, PAUSED}),
        # Every partition paused while the fetch waited: none, not every one.
        (set(), set()),
    ],
)
def test_a_fetch_returns_records_only_of_the_partitions_faust_fetches_from(
    active: set[TP], returned: set[TP]
) -> None:
    assert fetched(ActivePartitions(active)) == returned


def test_aiokafka_returns_every_partition_for_an_empty_set() -> None:
    """Why ``ActivePartitions`` is never empty: Faust's own set, once emptied, fetched the
    records of paused partitions (which Faust's getmany then drops)."""
    assert fetched(set()) == {PAUSED, FETCHED}


def test_the_partitions_asked_for_follow_faust_s_set_as_it_changes() -> None:
    active = {FETCHED}
    asked = ActivePartitions(active)
    active.discard(FETCHED)
    assert FETCHED not in asked and asked
    active.add(PAUSED)
    assert PAUSED in asked
