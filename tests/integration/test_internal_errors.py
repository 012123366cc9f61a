"""A bug is not bad input: a real worker whose customer step fails for one customer (the fault is
injected by the test, not by segstream) counts it apart, logs its traceback without the
exception's message, and by default dead-letters the record and goes on; with
SEGSTREAM_ON_INTERNAL_ERROR=stop it stops instead, and a fixed worker applies the record."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from config import names
from segstream.bench.processes import WorkerMetrics
from serving.redis_store import RedisStore
from streams import codec
from tests.integration.buyers import buyers_catalog, purchase
from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.kafka_io import event, produce, read, read_until_quiet
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

SECRET = "ana@shop.example"  # in the failing exception's message: it must not reach the log
# Runs the real worker with Step.on_event failing for customer "bug" (a stand-in for a bug).
FAULTY_WORKER = [
    sys.executable,
    "-c",
    f"""
import engine.step
real = engine.step.Step.on_event
def on_event(self, state, event, *args, **kwargs):
    if state.customer_id == "bug":
        raise RuntimeError("failed for {SECRET}")
    return real(self, state, event, *args, **kwargs)
engine.step.Step.on_event = on_event
from segstream.cli.main import main
main(["worker"])
""",
]


def records() -> list[tuple[str, bytes, bytes]]:
    return [
        event(names.PURCHASES, purchase("before", 1)),
        event(names.PURCHASES, purchase("bug", 1)),
        event(names.PURCHASES, purchase("after", 1)),
    ]


async def test_a_bug_is_dead_lettered_counted_apart_and_the_events_around_it_go_on(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(segments_file=buyers_catalog(tmp_path))
    worker = worker_factory(deployment, FAULTY_WORKER)
    metrics = WorkerMetrics(deployment.settings.web_port)
    try:
        await produce(deployment.settings, records())
        await worker.until_processed(metrics, 3)
        counted = await metrics.read()
        samples = await metrics.samples()
    finally:
        await metrics.close()
        worker.stop()

    assert counted["segstream_internal_errors_total"] == 1
    assert samples[
        'segstream_internal_errors_total{error="RuntimeError",topic="purchases"}'
    ] == pytest.approx(1)
    assert counted["segstream_events_applied_total"] == 2
    assert counted["segstream_events_dead_lettered_total"] == 1
    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=2)
    assert sorted(c["customer_id"] for c in changes) == ["after", "before"]
    (letter,) = await read_until_quiet(deployment.settings, names.DEAD_LETTERS, at_least=1)
    assert letter["reason"] == "internal error: RuntimeError"
    assert codec.loads(base64.b64decode(letter["raw_base64"]))["customer_id"] == "bug"
    log = worker.log.read_text()
    assert "Internal error (RuntimeError) on" in log and "Traceback" not in log
    assert "engine.step" in log or "on_event" in log  # the traceback's frames are there
    assert SECRET not in log


async def test_with_the_stop_policy_the_worker_stops_and_a_fixed_one_applies_the_record(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory(
        segments_file=buyers_catalog(tmp_path), on_internal_error="stop"
    )
    faulty = worker_factory(deployment, FAULTY_WORKER)
    await produce(deployment.settings, records())
    exit_code = faulty.process.wait(timeout=120)
    assert exit_code != 0, faulty.log_tail()
    assert not await read_until_quiet(deployment.settings, names.DEAD_LETTERS)

    fixed = worker_factory(deployment)
    changes = await read(deployment.settings, names.SEGMENT_CHANGES, 3)
    fixed.stop()
    assert "bug" in {c["customer_id"] for c in changes}, fixed.log_tail()
    assert SECRET not in faulty.log.read_text() + fixed.log.read_text()


async def test_a_malformed_change_is_dead_lettered_and_the_store_goes_on(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """Only segstream writes segment-changes, but anyone with access to the topic can: a record
    the projection cannot read is dead-lettered, and the changes around it reach Redis."""
    deployment = deployment_factory(segments_file=buyers_catalog(tmp_path))
    worker = worker_factory(deployment)
    wrong = {"customer_id": "x", "segment": "buyers", "change": "left", "version": 1}
    await produce(
        deployment.settings,
        [
            (names.SEGMENT_CHANGES, b"x", b"[1,"),
            (names.SEGMENT_CHANGES, b"x", codec.dumps(wrong)),
            event(names.PURCHASES, purchase("after", 1)),
        ],
    )
    store = RedisStore.connect(deployment.settings)
    try:
        await poll_until(
            lambda: store.segments_of("after"),
            "the buyer's change in Redis",
            alive=worker.assert_running,
        )
        assert await store.segments_of("x") == []
    finally:
        await store.close()
        worker.stop()
    letters = await read_until_quiet(deployment.settings, names.DEAD_LETTERS, at_least=2)
    assert sorted(letter["reason"] for letter in letters) == [
        "change: expected enter or exit",
        "value: not valid UTF-8 JSON (unexpected end of data)",
    ]
    assert {letter["source_topic"] for letter in letters} == {names.SEGMENT_CHANGES}
