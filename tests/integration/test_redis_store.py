"""The Redis membership store against the real Redis: it follows segment-changes, replays
change nothing, and `segstream rebuild` restores it from Kafka after a flush."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from config import names
from engine.state import CustomerState
from serving.redis_store import RedisStore
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.kafka_io import produce, read_until_quiet
from tests.integration.oracle import DAY, Shop, now_ms
from tests.integration.stored import counted_revenue, expected_snapshot, until_stored

pytestmark = pytest.mark.integration


async def test_store_follows_changes_and_survives_replay_and_rebuild(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    # The worker samples sizes once an hour here, so that the test's own samples are not raced.
    deployment = deployment_factory(size_sample_seconds="3600")
    worker = worker_factory(deployment)
    shop, t = Shop(), now_ms() - 10 * DAY
    for n in range(12):
        customer = f"r{n}"
        shop.profile(customer, t, email_consent=True, gender="female" if n % 2 else "male")
        for k in range(n % 4):
            shop.purchase(customer, t + (k + 1) * DAY)
        shop.open(customer, t + 5 * DAY)
    await produce(deployment.settings, shop.kafka_records())
    changes = await read_until_quiet(deployment.settings, names.SEGMENT_CHANGES, at_least=80)
    store = RedisStore.connect(deployment.settings)
    try:
        await until_stored(store, expected_snapshot(changes))
        live = await store.snapshot()
        sizes = await store.sizes(["gender_female", "gender_male"])
        await store.client.delete(store.key(names.REDIS_HISTORY_LOCK))
        sampled = await store.sample_sizes(["gender_female"], 1_000_000, 10)
        sampled_again = await store.sample_sizes(["gender_female"], 1_000_500, 10)
        history = await store.history("gender_female")
        stream = await store.recent_changes(count=len(changes) + 10)

        replayed = await store.apply(changes) + await store.apply(changes)
        after_replay = await store.snapshot()

        await store.flush()
        assert await store.snapshot() == {"members": {}, "customers": {}, "versions": {}}
        result = run_segstream(deployment.env, "rebuild", "--yes")
        rebuilt = await store.snapshot()
    finally:
        await store.close()

    worker.assert_running()
    assert live == expected_snapshot(changes)
    assert sizes == {"gender_female": 6, "gender_male": 6}
    assert (sampled, sampled_again) == (True, False)  # one sample per interval, across workers
    # The sample keeps the enters and exits since the one before: here, the whole change stream
    # (its ids are later than this made-up clock), so they net to the size.
    at, size, enters, exits = history[-1]
    assert (at, size, enters - exits) == (1_000_000, 6, 6) and enters >= 6
    assert sorted(stream, key=lambda c: (c["customer_id"], c["version"])) == sorted(
        changes, key=lambda c: (c["customer_id"], c["version"])
    )
    assert replayed == 0
    assert after_replay == live
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rebuilt the store from 12 stored customers"
    assert rebuilt == live


SYNC_CASES = [
    # (what Redis holds for c1: version and segments, or None; the table's state; after)
    pytest.param(None, (3, {"a", "b"}), (3, ["a", "b"]), id="nothing held: written"),
    pytest.param((2, {"a", "c"}), (3, {"a", "b"}), (3, ["a", "b"]), id="older: replaced"),
    pytest.param((3, {"a"}), (3, {"b"}), (3, ["a"]), id="same version: left"),
    pytest.param((5, {"a"}), (3, {"b"}), (5, ["a"]), id="newer held: left"),
    pytest.param((2, {"a"}), (4, set()), (4, []), id="newer state in no segment: emptied"),
    pytest.param(None, (0, set()), (0, []), id="a state without changes: nothing to write"),
]


@pytest.mark.parametrize(("held", "state", "after"), SYNC_CASES)
async def test_sync_writes_a_state_only_over_an_older_version(
    deployment_factory: Callable[..., Deployment],
    held: tuple[int, set[str]] | None,
    state: tuple[int, set[str]],
    after: tuple[int, list[str]],
) -> None:
    store = RedisStore.connect(deployment_factory().settings)
    try:
        if held is not None:
            version, segments = held
            await store.sync([CustomerState("c1", version=version, segments=segments)])
        version, segments = state
        result = await store.sync(
            [CustomerState("c1", version=version, segments=segments, total_spend=12.5)]
        )
        snapshot = await store.snapshot()
        spend = await store.client.hget(store.key(names.REDIS_SPEND), "c1")
    finally:
        await store.flush()
        await store.close()
    members = {s: ids for s, ids in snapshot["members"].items() if ids}
    assert (snapshot["versions"].get("c1", 0), snapshot["customers"].get("c1", [])) == after
    assert members == {segment: ["c1"] for segment in after[1]}
    assert result.repaired == (1 if after[0] != (held or (0,))[0] else 0)
    assert result.stale == []
    assert spend == (b"12.5" if result.repaired else None)


async def test_an_in_step_mark_survives_only_if_no_flush_came_during_the_check(
    deployment_factory: Callable[..., Deployment],
) -> None:
    store = RedisStore.connect(deployment_factory().settings)
    try:
        unmarked = await store.partitions_in_step([0, 1, 2])
        await store.begin_check([0, 1])
        during = await store.partitions_in_step([0, 1, 2])
        marked = await store.mark_in_step([0])
        await store.flush()
        flushed_during_check = await store.mark_in_step([1])
        after = await store.partitions_in_step([0, 1, 2])
    finally:
        await store.close()
    assert (unmarked, during) == (set(), set())
    assert (marked, flushed_during_check) == (1, 0)
    assert after == set()


async def test_a_change_over_a_gap_leaves_the_customer_to_the_catch_up(
    deployment_factory: Callable[..., Deployment],
) -> None:
    store = RedisStore.connect(deployment_factory().settings)
    try:
        # A flushed store sees only the customer's latest change (version 7): not in step.
        await store.apply([{"customer_id": "c1", "segment": "b", "change": "enter", "version": 7}])
        gapped = await store.version_of("c1")
        repaired = (
            await store.sync([CustomerState("c1", version=7, segments={"a", "b"})])
        ).repaired
        await store.apply([{"customer_id": "c1", "segment": "a", "change": "exit", "version": 8}])
        after = (await store.version_of("c1"), await store.segments_of("c1"))
    finally:
        await store.flush()
        await store.close()
    assert (gapped, repaired) == (0, 1)
    assert after == (8, ["b"])


# Steps on customer c1: ("apply", version, segment, change, erasing), ("sync", version, segments),
# ("erase",) for set_spend(None), ("reset",) for reset_memberships.
Step = tuple[Any, ...]
GAP_CASES = [
    pytest.param(
        [("apply", 6, "b", "enter", False), ("sync", 5, {"a"})],
        (0, 6, ["b"], [["c1"]]),
        id="an older state over a change applied over a gap: stale, not written",
    ),
    pytest.param(
        [("apply", 6, "b", "enter", False), ("sync", 5, {"a"}), ("sync", 6, {"a", "b"})],
        (6, None, ["a", "b"], [["c1"], []]),
        id="the state read again: written, in step",
    ),
    pytest.param(
        [("apply", 6, "b", "enter", False), ("sync", 8, {"a"})],
        (8, None, ["a"], [[]]),
        id="a state newer than the gap's change: written",
    ),
    pytest.param(
        [("apply", 7, "a", "enter", False), ("apply", 6, "a", "exit", False)],
        (0, 7, ["a"], []),
        id="over a gap, an older change than one seen is skipped",
    ),
    pytest.param(
        [("sync", 5, {"a"}), ("apply", 6, "b", "enter", False)],
        (6, None, ["a", "b"], [[]]),
        id="a change that follows: recorded",
    ),
    pytest.param(
        [("apply", 8, "x", "enter", False), ("apply", 1, "a", "enter", False)],
        (1, 8, ["a", "x"], []),
        id="a change that follows but is older than one seen: seen kept",
    ),
    pytest.param(
        [("apply", 3, "a", "enter", False), ("apply", 5, "a", "exit", True)],
        (0, None, [], []),
        id="an erasure over a gap drops both versions",
    ),
    pytest.param(
        [("apply", 3, "a", "enter", False), ("erase",)],
        (0, None, [], []),
        id="an erased customer's spend forgotten: both versions dropped",
    ),
    pytest.param(
        [("apply", 3, "a", "enter", False), ("reset",), ("sync", 2, {"b"})],
        (2, None, ["b"], [[]]),
        id="a rebuild's reset drops the seen version",
    ),
    pytest.param(
        # A redelivered change of an erased customer's earlier life, over a gap: the table's
        # state (its new life, v2) is stale once, then forced, since the table has not moved.
        [("apply", 11, "a", "enter", False), ("sync", 2, {"b"}), ("force", 2, {"b"})],
        (2, None, ["b"], [["c1"], []]),
        id="a state found stale twice at one version is written over the old life's change",
    ),
]


@pytest.mark.parametrize(("steps", "after"), GAP_CASES)
async def test_a_state_is_never_written_over_a_newer_change(
    deployment_factory: Callable[..., Deployment],
    steps: list[Step],
    after: tuple[int, int | None, list[str], list[list[str]]],
) -> None:
    store = RedisStore.connect(deployment_factory().settings)
    stale: list[list[str]] = []
    try:
        for kind, *args in steps:
            if kind == "apply":
                version, segment, change, erasing = args
                cause = "erasure:x" if erasing else "e1"
                await store.apply(
                    [
                        {
                            "customer_id": "c1",
                            "segment": segment,
                            "change": change,
                            "version": version,
                            "cause_event_id": cause,
                        }
                    ]
                )
            elif kind in ("sync", "force"):
                version, segments = args
                state = CustomerState("c1", version=version, segments=segments)
                force = {"c1"} if kind == "force" else set()
                stale.append((await store.sync([state], force=force)).stale)
            elif kind == "erase":
                await store.set_spend({"c1": None})
            else:
                await store.reset_memberships()
        seen = await store.client.hget(store.key(names.REDIS_SEEN), "c1")
        found = (
            await store.version_of("c1"),
            int(seen) if seen is not None else None,
            await store.segments_of("c1"),
            stale,
        )
    finally:
        await store.flush()
        await store.close()
    assert found == after


async def test_a_rebuild_drops_the_in_step_marks(
    deployment_factory: Callable[..., Deployment],
) -> None:
    store = RedisStore.connect(deployment_factory().settings)
    try:
        await store.begin_check([0, 1])
        await store.mark_in_step([0, 1])
        marked = await store.partitions_in_step([0, 1])
        await store.reset_memberships()
        after = await store.partitions_in_step([0, 1])
    finally:
        await store.close()
    assert (marked, after) == ({0, 1}, set())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_revenue_per_segment_follows_every_write_without_reading_members(
    deployment_factory: Callable[..., Deployment], seed: int
) -> None:
    """Random changes (in order, over gaps, replayed, erasures), spend updates, syncs and
    resets: after each, the kept revenue equals the members' spend counted from scratch, and it
    was counted from the members only after a reset."""
    rng = random.Random(seed)
    segments, customers = ["a", "b", "c"], [f"c{n}" for n in range(8)]
    versions = dict.fromkeys(customers, 0)
    sent: list[dict[str, Any]] = []
    store = RedisStore.connect(deployment_factory().settings)
    counted = store.key(names.REDIS_REVENUE_COUNTED)
    try:
        await store.revenue(segments)
        for _ in range(150):
            customer, roll = rng.choice(customers), rng.random()
            if roll < 0.45:
                versions[customer] += rng.choice([1, 1, 1, 2])  # now and then over a gap
                change = {
                    "customer_id": customer,
                    "segment": rng.choice(segments),
                    "change": rng.choice(["enter", "exit"]),
                    "version": versions[customer],
                    "cause_event_id": "erasure:x" if rng.random() < 0.05 else "e1",
                }
                sent.append(change)
                await store.apply([change])
            elif roll < 0.55 and sent:
                await store.apply([rng.choice(sent)])  # a redelivery
            elif roll < 0.8:
                total = rng.choice([None, 0.0, 9.99, 12.5, round(rng.uniform(1, 500), 2)])
                await store.set_spend({customer: total})
            elif roll < 0.97:
                versions[customer] += rng.choice([-1, 0, 1, 3])
                state = CustomerState(
                    customer,
                    version=max(versions[customer], 1),
                    segments=set(rng.sample(segments, rng.randint(0, 3))),
                    total_spend=round(rng.uniform(0, 300), 2),
                )
                await store.sync([state])
            else:
                await store.reset_memberships()
            kept = await store.client.exists(counted)
            revenue = await store.revenue(segments)
            assert revenue == await counted_revenue(store, segments)
            assert kept or roll >= 0.97, "revenue was counted from the members again"
    finally:
        await store.flush()
        await store.close()
