"""segstream's recovery loop (``BatchedRecovery``) takes every changelog record already queued
in one pass and applies each as Faust's loop does: its offset, its table's buffer, the table's
changelog callback; a record that fails is logged and the pass goes on."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP, EventT, Message

from segstream.faust_patches.app import SegstreamApp
from segstream.faust_patches.recovery import BatchedRecovery

pytestmark = pytest.mark.asyncio


def restored(app: SegstreamApp, tp: TP, offset: int, key: str, value: bytes) -> EventT:
    message = Message(tp.topic, tp.partition, offset, 0.0, 0, {}, key.encode(), value, None)
    return app.create_event(message.key, message.value, {}, message)


async def test_a_pass_takes_every_queued_record_and_applies_each_as_faust_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SegstreamApp("recovery-passes", broker="kafka://127.0.0.1:1", autodiscover=False)
    seen: list[tuple[int, int]] = []

    async def listener(event: EventT) -> None:
        seen.append((event.message.partition, event.message.offset))
        if event.message.key == b"bad":
            raise ValueError("a listener's bug")

    table = app.Table(
        "customers", partitions=2, key_type=str, value_type=bytes, on_changelog_event=listener
    )
    recovery = app.tables.recovery
    assert isinstance(recovery, BatchedRecovery)
    changelog = table.changelog_topic.get_topic_name()
    active, standby, elsewhere = TP(changelog, 0), TP(changelog, 1), TP("other-changelog", 0)
    recovery.active_tps.add(active)
    recovery.standby_tps.add(standby)
    recovery.tp_to_table.update({active: table, standby: table})
    recovery.active_highwaters[active] = 3
    recovery._set_recovery_started()
    records = [
        restored(app, active, 0, "a", b"1"),
        restored(app, standby, 0, "s", b"1"),
        restored(app, active, 1, "b", b"1"),
        restored(app, active, 1, "b", b"stale"),  # an offset already read: skipped
        restored(app, elsewhere, 0, "x", b"1"),  # neither active nor standby: skipped
        restored(app, active, 2, "bad", b"1"),  # its listener fails: logged, the pass goes on
        restored(app, active, 3, "a", b"2"),
    ]
    queue = app.tables.changelog_queue
    for record in records:
        queue.put_nowait(record)

    taken = await BatchedRecovery._take(queue)
    assert taken == records and queue.empty()
    with caplog.at_level(logging.WARNING):
        await recovery._apply(taken)
        await recovery._end_if_restored(0)

    assert seen == [(0, 0), (1, 0), (0, 1), (0, 2), (0, 3)]
    assert recovery.active_offsets[active] == 3 and recovery.standby_offsets[standby] == 0
    assert dict(table.items()) == {b"a": b"2", b"s": b"1", b"b": b"1", b"bad": b"1"}
    assert recovery.signal_recovery_end.is_set() and not recovery.in_recovery
    warnings = [record.getMessage() for record in caplog.records]
    assert any("a listener's bug" in line for line in warnings)
    assert any("other-changelog" in line for line in warnings)


async def test_recovery_goes_on_until_every_active_changelog_is_read() -> None:
    app = SegstreamApp("recovery-ends", broker="kafka://127.0.0.1:1", autodiscover=False)
    table = app.Table("customers", partitions=1, key_type=str, value_type=bytes)
    recovery = app.tables.recovery
    active = TP(table.changelog_topic.get_topic_name(), 0)
    recovery.active_tps.add(active)
    recovery.tp_to_table[active] = table
    recovery.active_highwaters[active] = 5
    recovery._set_recovery_started()
    await recovery._apply([restored(app, active, 4, "a", b"1")])
    await recovery._end_if_restored(0)
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
    await recovery._apply([restored(app, active, 5, "a", b"2")])
    await recovery._end_if_restored(0)
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()
    assert dict(table.items()) == {b"a": b"2"}


async def test_an_error_in_the_end_check_is_logged_and_recovery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SegstreamApp("recovery-end-error", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.Table("customers", partitions=1, key_type=str, value_type=bytes)
    recovery = app.tables.recovery
    assert isinstance(recovery, BatchedRecovery)
    recovery._set_recovery_started()

    def broken() -> bool:
        raise RuntimeError("an end check's bug")

    recovery.need_recovery = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        await recovery._check_end(0)
        await recovery._check_end(2)
    assert recovery.in_recovery
    assert sum("an end check's bug" in r.getMessage() for r in caplog.records) == 2
