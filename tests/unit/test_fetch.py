"""segstream's Kafka consumer: built by Faust, with segstream's fetch wait."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from segstream.faust_patches.fetch import FETCH_MAX_WAIT_MS

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
