"""CLI commands against a running worker, as a user runs them: tail, preview, customer show,
and their answers for customers and segments that do not exist."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import orjson
import pytest

from engine.catalog import load_catalog
from segstream.stack.process import stop_gracefully
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce
from tests.integration.oracle import DAY, Shop, now_ms, read_settled
from tests.integration.stored import expected_snapshot, until_stored
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration

DRAFT = """
segments:
  spent_100:
    description: Spent 100 or more, ever
    consent_required: false
    when: {count: {of: spend, min: 100}}
  anyone_with_consent:
    description: Everyone who consented
    when: {always: true}
"""


def segstream(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return run_segstream(deployment.env, *args)


async def test_tail_preview_and_customer_show(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
    tmp_path: Path,
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    shop, t = Shop(), now_ms() - DAY
    shop.profile("p1", t, email_consent=True)
    shop.profile("p2", t, email_consent=False)
    shop.purchase("p1", t + 1000, total=150.0)
    shop.purchase("p2", t + 1000, total=120.0)
    shop.purchase("p3", t + 1000, total=20.0)
    # p4 enters segments and leaves them all: a customer with a version and no segments.
    shop.profile("p4", t, email_consent=True)
    shop.purchase("p4", t + 1000, total=30.0)
    shop.profile("p4", t + 2000, email_consent=False)
    await produce(deployment.settings, shop.kafka_records())
    changes, _ = await read_settled(deployment, shop, minimum=5)

    command = [sys.executable, "-m", "segstream", "tail", "--from-beginning", "--json"]
    tail_out = tmp_path / "tail.jsonl"
    with tail_out.open("w") as out:
        tail = subprocess.Popen([*command, "--customer", "p1"], env=deployment.env, stdout=out)
        try:
            await poll_until(
                lambda: len(tail_out.read_text().splitlines()) >= 3, "three tailed changes", 30
            )
        finally:
            stop_gracefully(tail, 30)
    tailed = [orjson.loads(line) for line in tail_out.read_text().splitlines()[:3]]

    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    previewed = segstream(deployment, "segments", "preview", str(draft), "--json")
    previewed_text = segstream(deployment, "segments", "preview", str(draft))

    from serving.redis_store import RedisStore

    store = RedisStore.connect(deployment.settings)
    try:
        await until_stored(store, expected_snapshot(changes))
    finally:
        await store.close()
    shown = segstream(deployment, "customer", "show", "p1", "--json")
    left_all = segstream(deployment, "customer", "show", "p4", "--json")
    nobody = segstream(deployment, "customer", "show", "nobody")
    unknown_segment = segstream(deployment, "tail", "--segment", "no_such")
    await worker.until_ready()
    explained = segstream(deployment, "customer", "explain", "p1", "high_spenders", "--json")
    explained_text = segstream(deployment, "customer", "explain", "p2", "first_time_buyers")
    explain_nobody = segstream(deployment, "customer", "explain", "nobody")

    worker.assert_running()
    assert tailed == [c for c in changes if c["customer_id"] == "p1"][:3]
    assert previewed.returncode == 0, previewed.stderr
    assert orjson.loads(previewed.stdout) == {
        "customers": 4,
        "segments": {"spent_100": 2, "anyone_with_consent": 1},
    }
    p1 = [c for c in changes if c["customer_id"] == "p1"]
    assert orjson.loads(shown.stdout) == {
        "customer_id": "p1",
        "segments": sorted(expected_snapshot(changes)["customers"]["p1"]),
        "version": p1[-1]["version"],
    }
    p4 = [c for c in changes if c["customer_id"] == "p4"]
    assert p4[-1]["change"] == "exit"
    assert left_all.returncode == 0, left_all.stderr
    assert orjson.loads(left_all.stdout) == {
        "customer_id": "p4",
        "segments": [],
        "version": p4[-1]["version"],
    }
    assert (nobody.returncode, nobody.stdout) == (1, "")
    assert nobody.stderr.strip().startswith(
        "segstream: no such customer 'nobody' in the serving store: it holds no segment change"
    )
    assert unknown_segment.returncode == 2
    assert explained.returncode == 0, explained.stderr
    (high_spender,) = orjson.loads(explained.stdout)["segments"]
    assert high_spender["segment"] == "high_spenders" and high_spender["member"] is False
    rule = high_spender["why"]["parts"][1]
    assert (rule["value"], rule["holds"]) == (150.0, False)
    # p2 bought once but gave no consent: the consent node says why, the rule holds.
    assert explained_text.returncode == 0, explained_text.stderr
    lines = click.unstyle(explained_text.stdout).splitlines()
    assert lines[0].startswith("first_time_buyers: not a member (")
    assert lines[1:] == [
        "  no   all of",
        "    no   email consent given (the segment requires it)  = no",
        "    yes  orders ever exactly 1  = 1",
    ]
    assert (explain_nobody.returncode, explain_nobody.stderr.strip()) == (
        1,
        "segstream: the worker answered 404: no such customer",
    )
    assert unknown_segment.stderr.strip() == (
        "segstream: no segment 'no_such' among the live definitions "
        f"(known: {', '.join(sorted(load_catalog().names()))})."
    )

    # Progress counts the changelog's records and the customers they hold, and ends at 100%.
    assert previewed_text.returncode == 0, previewed_text.stderr
    frames = [f.strip() for f in previewed_text.stderr.split("\r") if f.strip()]
    last = re.fullmatch(
        r"Reading the customers table: 100% \((\d+) records, 4 customers\)\n"
        r"4 stored customers; with .*draft\.yaml:",
        frames[-1],
    )
    assert last is not None, frames
    assert int(last.group(1)) >= 4
    assert all(re.match(r"Reading the customers table: \d{1,3}% ", f) for f in frames)
