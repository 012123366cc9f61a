"""The changes in ``segstream.faust_patches`` still fit the Faust and aiokafka installed.

Each change was written against the source of the upstream functions it overrides, copies or
relies on. When faust-streaming or aiokafka is upgraded these tests fail with the change to
revisit: read the upstream function's new source against the change (``CHANGES`` says what it
does and why), adapt or drop the change, then pin the new version and source hash here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from segstream.faust_patches import CHANGES, Change

ROOT = Path(__file__).resolve().parents[2]

VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

# The first 16 hex digits of the sha256 of ``inspect.getsource`` of each upstream function that
# a change names, as installed at the versions above.
SOURCES = {
    "aiokafka.consumer.fetcher.Fetcher.fetched_records": "be4348896b9b66af",
    "aiokafka.producer.producer.AIOKafkaProducer.__init__": "fd6f2966fb3dc883",
    "aiokafka.producer.sender.Sender.__init__": "dae60514401a3817",
    "aiokafka.producer.sender.Sender._find_coordinator": "33001a36bf6a0ae0",
    "faust.app.base.App._new_producer": "e7e1814e715d8b30",
    "faust.sensors.monitor.Monitor.on_message_in": "b2a9a9045b2f456c",
    "faust.sensors.monitor.Monitor.on_message_out": "7c4054247cde96c3",
    "faust.sensors.monitor.Monitor.on_send_completed": "4942b34ea1f35eaf",
    "faust.sensors.monitor.Monitor.on_send_error": "fa059dffe3b57b69",
    "faust.sensors.monitor.Monitor.on_send_initiated": "6394b4e330614dbb",
    "faust.sensors.monitor.Monitor.on_stream_event_in": "df6d2e5f6397ce44",
    "faust.sensors.monitor.Monitor.on_stream_event_out": "2d2277a6dbda754c",
    "faust.sensors.monitor.Monitor.on_table_del": "8dae2dcdbcecc657",
    "faust.sensors.monitor.Monitor.on_table_get": "240aac793cfe6002",
    "faust.sensors.monitor.Monitor.on_table_set": "fe5ba12e91b2f6d4",
    "faust.tables.base.Collection.send_changelog": "3dd3884e1b5fc0e1",
    "faust.tables.table.Table.on_key_set": "a370e35ca55c2c7e",
    "faust.topics.Topic._on_published": "7cfe9ebd65964b0a",
    "faust.topics.Topic.publish_message": "4ce1cbc353047a36",
    "faust.transport.consumer.Consumer._commit_offsets": "1a69799041188441",
    "faust.transport.consumer.Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer.Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.consumer.Consumer.commit_and_end_transactions": "892377824b11a2ee",
    "faust.transport.consumer.Consumer.force_commit": "cc094614d22c70fb",
    "faust.transport.consumer.Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer.Consumer.on_partitions_assigned": "29ce96596f05a18c",
    "faust.transport.consumer.Consumer.on_partitions_revoked": "d04b7ae72c6fc206",
    "faust.transport.consumer.Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer.Consumer.seek": "b86a9fe05f956b30",
    "faust.transport.consumer.Consumer.stop_flow": "cf7e875a2b0d40e8",
    "faust.transport.consumer.Consumer.wait_empty": "e4662fe24f094819",
    "faust.transport.consumer.Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer.ThreadDelegateConsumer._getmany": "f9d47aa9010b5ff2",
    "faust.worker.Worker.__init__": "25a4d782432f0968",
    "faust.worker.Worker._setup_spinner_handler": "18cb28ef5b3de212",
    "mode.worker.Worker._schedule_shutdown": "1a6a5dfc88c2298b",
    "mode.worker.Worker.execute_from_commandline": "212e98f635d7a69b",
    "mode.services.Service.crash": "14980000465df0af",
    "faust.stores.base.Store._decode_key": "fcb649a35b6e5f45",
    "faust.tables.recovery.Recovery._resume_streams": "d986a6710c1aca98",
    "faust.tables.recovery.Recovery._slurp_changelogs": "7825c7e50f766d5a",
    "faust.tables.recovery.Recovery._set_recovery_started": "bcfebf81ae13fc75",
    "faust.tables.recovery.Recovery._set_recovery_ended": "84badf3f2cfe0d02",
    "faust.tables.recovery.Recovery.flush_buffers": "6fa9c17f1071018c",
    "faust.tables.recovery.Recovery.need_recovery": "fd1dc345b5d5e121",
    "faust.tables.recovery.Recovery.standby_remaining_total": "15bd44e3a39bb01f",
    "faust.tables.manager.TableManager.recovery": "f0bf5de78b4c3d23",
    "mode.utils.queues.ThrowableQueue.get_nowait": "d42b1be9219a0e6e",
    "faust.tables.recovery.Recovery.on_recovery_completed": "6ef567acf072e46d",
    "faust.transport.consumer.Consumer.pause_partitions": "27a1c94bdacd54de",
    "faust.transport.consumer.Consumer.resume_flow": "db59630f25b5819b",
    "faust.transport.consumer.Consumer.resume_partitions": "afe6b7c02a41d63c",
    "mode.utils.queues.FlowControlEvent.resume": "4dcdc1253fd0dcb4",
    "faust.stores.rocksdb.Store._db_for_partition": "cb7e67d5f9efc4bc",
    "faust.stores.rocksdb.Store._visible_keys": "28b3c24a6884cbcd",
    "faust.transport.consumer.ThreadDelegateConsumer.highwaters": "3a2723b22582ffb7",
    "faust.transport.consumer.ThreadDelegateConsumer.seek_wait": "e9db5bbc4ceb2543",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer": (
        "c2701bfc3e6f6cad"
    ),
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._fetch_records": "39a2c6c79fc1455a",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters": "a7f4f97d9f32aca2",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread.highwaters": "b49ed48ec1731816",
    "faust.transport.drivers.aiokafka.Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka.Producer._producer_type": "311dc214fc435d81",
    "faust.transport.producer.Producer.__init__": "5c53a4b47aa1372b",
    "faust.transport.producer.ProducerBuffer.__post_init__": "ea072d7b80cf8af6",
    "faust.transport.producer.ProducerBuffer._handle_pending": "78d648030fd21016",
    "faust.transport.producer.ProducerBuffer._send_pending": "4a9d5f932b56bc68",
    "faust.transport.producer.ProducerBuffer.flush": "26fbebb124ad9c98",
    "faust.transport.producer.ProducerBuffer.flush_atmost": "4966e8c5f9b42eb9",
    "faust.transport.producer.ProducerBuffer.put": "bf26dfbc01d91088",
    "faust.transport.producer.ProducerBuffer.wait_until_ebb": "758dd5744044071b",
}

CONSUMER = "faust.transport.drivers.aiokafka.Consumer"
CONSUMER_THREAD = "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread"
BUFFER = "faust.transport.producer.ProducerBuffer"
RECOVERY = "faust.tables.recovery.Recovery"

# Every private upstream name the changes read, write, call or override: (owner, name) -> the
# changes that use it. An instance attribute counts as there when the owner's class (or a base)
# still assigns it.
PRIVATE_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    (CONSUMER, "_drain_messages"): ("batch hand-over",),
    (CONSUMER, "_read_offset"): ("batch hand-over", "batches overtaken by a seek"),
    (CONSUMER, "_commit_every"): ("batch hand-over",),
    (CONSUMER, "_n_acked"): ("batch hand-over",),
    (CONSUMER, "_add_gap"): ("batch hand-over",),
    (CONSUMER, "_stopped"): ("batch hand-over",),
    (CONSUMER, "_new_consumer_thread"): ("fetch max wait",),
    (CONSUMER, "_getmany"): ("fetch only from active partitions",),
    (CONSUMER_THREAD, "_create_worker_consumer"): ("fetch max wait",),
    ("aiokafka.AIOKafkaConsumer", "_fetch_max_wait_ms"): ("fetch max wait",),
    (CONSUMER, "_unacked_messages"): ("let_go",),
    (CONSUMER, "_new_offset"): ("let_go",),
    (CONSUMER, "_committed_offset"): ("committed offsets readable",),
    (CONSUMER, "_commit_offsets"): ("exactly-once commit flush",),
    (CONSUMER, "_thread"): ("highwaters under exactly-once",),
    (CONSUMER, "_is_changelog_tp"): ("stream partitions resumed with the flow",),
    (CONSUMER_THREAD, "_ensure_consumer"): ("highwaters under exactly-once",),
    (BUFFER, "_send_pending"): ("producer buffer flushed to its end", "direct publish"),
    ("faust.transport.drivers.aiokafka.Producer", "_producer_type"): ("coordinator retry",),
    ("faust.topics.Topic", "_on_published"): ("direct publish",),
    ("aiokafka.producer.sender.Sender", "_find_coordinator"): ("coordinator retry",),
    ("aiokafka.producer.sender.Sender", "_retry_backoff"): ("coordinator retry",),
    ("aiokafka.producer.sender.Sender", "_acks"): ("coordinator retry",),
    ("aiokafka.producer.sender.Sender", "_txn_manager"): ("coordinator retry",),
    ("aiokafka.producer.sender.Sender", "_message_accumulator"): ("coordinator retry",),
    ("aiokafka.producer.sender.Sender", "_request_timeout_ms"): ("coordinator retry",),
    ("aiokafka.AIOKafkaProducer", "_sender"): ("coordinator retry",),
    ("faust.stores.rocksdb.Store", "_db_for_partition"): ("a partition's RocksDB keys",),
    ("faust.stores.rocksdb.Store", "_visible_keys"): ("a partition's RocksDB keys",),
    ("faust.stores.base.Store", "_decode_key"): ("a partition's RocksDB keys",),
    ("mode.worker.Worker", "_schedule_shutdown"): ("graceful stop with a reason",),
    ("faust.worker.Worker", "_setup_spinner_handler"): ("no terminal spinner",),
    **{
        (RECOVERY, name): ("recovery in passes",)
        for name in (
            "_slurp_changelogs",
            "_set_recovery_started",
            "_set_recovery_ended",
            "_active_events_received_at",
            "_standby_events_received_at",
            "_last_flush_at",
            "_processing_times",
            "_last_active_event_processed_at",
            "_actives_span",
            "_standbys_span",
        )
    },
    ("faust.tables.manager.TableManager", "_recovery"): ("recovery in passes",),
    # How every consumer and producer change gets in.
    ("faust.App", "_new_transport"): tuple(change.name for change in CHANGES),
    ("faust.App", "_new_producer"): ("producer buffer size",),
}


def resolve(name: str) -> Any:
    """The object a dotted name points to: a module's attribute, or one a class defines itself
    (not inherits: a method moved to another class upstream is a change to look at)."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:-1]:
            owner = getattr(owner, part)
        if isinstance(owner, type):
            return vars(owner)[parts[-1]]
        return getattr(owner, parts[-1])
    raise ImportError(name)


def source_hash(name: str) -> str:
    found = resolve(name)
    function = getattr(found, "fget", None) or getattr(found, "fun", None) or found
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def revisit(change: Change) -> str:
    return (
        f"Revisit the change '{change.name}' ({', '.join(change.overrides)} in "
        f"segstream/faust_patches): {change.why}"
    )


UPSTREAM = [(change, name) for change in CHANGES for name in change.upstream]


@pytest.mark.parametrize(("package", "version"), VERSIONS.items())
def test_the_installed_versions_are_those_the_changes_were_written_for(
    package: str, version: str
) -> None:
    installed = importlib.metadata.version(package)
    assert installed == version, (
        f"{package} {installed} is installed, the changes in segstream.faust_patches were "
        f"written for {version}: let the source checks below name the changes to revisit, "
        "then pin the new version here"
    )


@pytest.mark.parametrize(("change", "name"), UPSTREAM, ids=[name for _, name in UPSTREAM])
def test_each_upstream_function_a_change_relies_on_is_unchanged(change: Change, name: str) -> None:
    try:
        found = source_hash(name)
    except (ImportError, AttributeError, KeyError) as exc:
        pytest.fail(f"{name} is gone upstream ({exc!r}). {revisit(change)}")
    assert name in SOURCES, f"{name} has no pinned source hash: add {found!r} to SOURCES"
    assert found == SOURCES[name], (
        f"{name} changed upstream. {revisit(change)} Read its new source against "
        f"the change; once the change fits it, pin {found!r} here."
    )


def test_every_pinned_source_belongs_to_a_change() -> None:
    assert set(SOURCES) == {name for _, name in UPSTREAM}


def assigned(owner: type, name: str) -> bool:
    """Whether the class or an upstream base assigns ``self.<name>`` (an instance attribute)."""
    assignment = re.compile(rf"self\.{re.escape(name)}\s*(:[^=\n]*)?=[^=]")
    return any(
        assignment.search(inspect.getsource(base))
        for base in owner.__mro__
        if base is not object and not base.__module__.startswith("segstream")
    )


@pytest.mark.parametrize(("owner", "name"), PRIVATE_NAMES, ids=[".".join(k) for k in PRIVATE_NAMES])
def test_every_private_upstream_name_the_changes_use_still_exists(owner: str, name: str) -> None:
    module, _, class_name = owner.rpartition(".")
    cls = getattr(importlib.import_module(module), class_name)
    assert hasattr(cls, name) or assigned(cls, name), (
        f"{owner}.{name} is gone upstream: revisit "
        f"{', '.join(repr(change) for change in PRIVATE_NAMES[(owner, name)])} "
        "(see segstream.faust_patches.CHANGES)"
    )


def test_the_private_names_list_names_real_changes() -> None:
    names = {change.name for change in CHANGES}
    assert {used for users in PRIVATE_NAMES.values() for used in users} <= names


@pytest.mark.parametrize("change", CHANGES, ids=[change.name for change in CHANGES])
def test_each_change_names_code_of_this_package(change: Change) -> None:
    for override in change.overrides:
        resolve(f"segstream.faust_patches.{override}")


@pytest.mark.parametrize("change", CHANGES, ids=[change.name for change in CHANGES])
def test_each_change_names_tests_that_exist(change: Change) -> None:
    assert change.guarded_by, change.name
    for guard in change.guarded_by:
        if not guard.startswith("tests/"):
            continue
        path, _, test = guard.partition("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"def {test}\(", source), f"{change.name}: no {guard}"
