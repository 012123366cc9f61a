"""The stream partitions a rebalance resumes are fetched from once flow resumes, after Faust's
recovery has emptied the streams' queues (``segstream.faust_patches.recovery``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from segstream.faust_patches.app import SegstreamConsumer
from segstream.faust_patches.recovery import held_until_flow

CHANGELOG = "segstream-customers-changelog"
PURCHASES = TP("purchases", 0)
TICKS = TP("customer-ticks", 1)
RESTORED = TP(CHANGELOG, 0)


def is_changelog(tp: TP) -> bool:
    return tp.topic == CHANGELOG


@pytest.mark.parametrize(
    ("resumed", "rebalancing", "held"),
    [
        # The end of a rebalance: stream partitions wait for the flow, changelogs do not.
        ({PURCHASES, TICKS, RESTORED}, True, {PURCHASES, TICKS}),
        # Recovery reads a changelog (active or standby) as soon as it resumes it.
        ({RESTORED}, True, set()),
        # Outside a rebalance a resumed partition is fetched from at once, as in Faust.
        ({PURCHASES, RESTORED}, False, set()),
        (set(), True, set()),
    ],
)
def test_the_stream_partitions_a_rebalance_resumes_wait_for_the_flow(
    resumed: set[TP], rebalancing: bool, held: set[TP]
) -> None:
    assert held_until_flow(resumed, rebalancing, is_changelog) == held


def consumer(rebalancing: bool) -> SegstreamConsumer:
    """The worker's consumer with only what pausing, resuming and flow read (no Kafka)."""
    made = SegstreamConsumer.__new__(SegstreamConsumer)
    made.app = SimpleNamespace(
        rebalancing=rebalancing, tables=SimpleNamespace(changelog_topics={CHANGELOG})
    )
    made._active_partitions = set()
    made._paused_partitions = set()
    made.can_resume_flow = asyncio.Event()
    made.suspend_flow = asyncio.Event()
    made.flow_active = True
    return made


def test_a_rebalance_fetches_from_stream_partitions_once_flow_resumes() -> None:
    """Faust's recovery resumes the stream partitions, seeks them, empties the streams' queues,
    then resumes flow: nothing of theirs is fetched before that last step."""
    worker = consumer(rebalancing=True)
    worker.pause_partitions({PURCHASES, TICKS, RESTORED})
    worker.resume_partitions({RESTORED})
    assert worker._active_partitions == {RESTORED}
    worker.resume_partitions({PURCHASES, TICKS})
    assert worker._active_partitions == {RESTORED}
    assert worker._paused_partitions == {PURCHASES, TICKS}
    worker.resume_flow()
    assert worker._active_partitions == {PURCHASES, TICKS, RESTORED}
    assert worker._paused_partitions == set()


def test_a_rebalance_that_starts_again_drops_what_waited_for_the_flow() -> None:
    """A rebalance cut short before flow resumed: the next one pauses every partition, and the
    flow resumed while it restores the changelogs fetches from no stream partition."""
    worker = consumer(rebalancing=True)
    worker.pause_partitions({PURCHASES, RESTORED})
    worker.resume_partitions({PURCHASES})
    worker.pause_partitions({PURCHASES, RESTORED})
    worker.resume_partitions({RESTORED})
    worker.resume_flow()
    assert worker._active_partitions == {RESTORED}


def test_outside_a_rebalance_a_resumed_partition_is_fetched_from_at_once() -> None:
    worker = consumer(rebalancing=False)
    worker.pause_partitions({PURCHASES})
    worker.resume_partitions({PURCHASES})
    assert worker._active_partitions == {PURCHASES}
