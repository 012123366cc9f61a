"""What segstream changes in Faust and aiokafka, in one place: ``CHANGES`` below.

Each change says what it overrides here, the upstream functions it overrides, copies or relies
on (by qualified name), what upstream does, why segstream does otherwise, the upstream issue
where there is one, and the tests that guard it. ``tests/unit/test_faust_patches.py`` pins the
installed faust-streaming and aiokafka and the source of every upstream function named here:
when one changes, it fails with the change to revisit.

The modules, one per concern: ``fetch`` (the hand-over of fetched records, the fetch wait),
``seeks``, ``commits``, ``recovery``, ``producer_buffer``, ``sender``, ``monitor``,
``changelog`` (a table assignment's changelog record, a partition's RocksDB keys), ``worker``
(no spinner, a graceful stop with a reason), and ``app``, which assembles them into
``SegstreamApp`` with ``faust_options()``, and gives the agents their interface to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CONSUMER = "faust.transport.consumer.Consumer"
THREAD_DELEGATE = "faust.transport.consumer.ThreadDelegateConsumer"
DRIVER = "faust.transport.drivers.aiokafka"
BUFFER = "faust.transport.producer.ProducerBuffer"
MONITOR = "faust.sensors.monitor.Monitor"
RECOVERY = "faust.tables.recovery.Recovery"
BENCH = "segstream bench (docs/benchmarks.md)"


@dataclass(frozen=True)
class Change:
    """One thing segstream changes in Faust or aiokafka."""

    name: str
    kind: Literal["speed-up", "fix", "addition"]  # addition: what the agents need, not upstream's
    overrides: tuple[str, ...]  # where, in this package (module.Class.attribute)
    upstream: tuple[str, ...]  # the upstream functions it overrides, copies or relies on
    upstream_does: str
    why: str
    issue: str | None  # the upstream issue reporting what it fixes, where there is one
    guarded_by: tuple[str, ...]  # tests (path::name), or the benchmark for a speed-up


CHANGES: tuple[Change, ...] = (
    Change(
        name="batch hand-over",
        kind="speed-up",
        overrides=(
            "fetch.BatchHandOverConsumer._drain_messages",
            "fetch.BatchHandOverConsumer._hand_over",
        ),
        upstream=(f"{CONSUMER}._drain_messages", f"{CONSUMER}.getmany"),
        upstream_does="Hands each fetched record to the streams in its own Service.wait_first: "
        "four asyncio tasks and an asyncio.wait per record.",
        why="One wait_first per fetched batch, with Faust's per-record steps and getmany's "
        "checks (flow stopped, generation changed) before each record: about half of the gain "
        "from faust_bare to faust_tuned.",
        issue=None,
        guarded_by=(
            BENCH,
            "tests/integration/test_first_path.py::test_purchases_publish_exact_buyer_transitions",
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="fetch only from active partitions",
        kind="fix",
        overrides=(
            "fetch.ActivePartitions",
            "fetch.BatchHandOverConsumer._getmany",
        ),
        upstream=(
            "faust.transport.consumer.ThreadDelegateConsumer._getmany",
            f"{CONSUMER}._wait_next_records",
            f"{CONSUMER}.getmany",
            f"{DRIVER}.AIOKafkaConsumerThread._fetch_records",
            "aiokafka.consumer.fetcher.Fetcher.fetched_records",
        ),
        upstream_does="Fetches with its set of active partitions, which aiokafka reads as "
        "every partition once it is empty: the set can empty while the fetch waits (a "
        "rebalance pauses a changelog it has read), and getmany drops the records of paused "
        "partitions the fetch then returned, which aiokafka has moved past.",
        why="Events were never processed after a rebalance while events flowed. The fetch "
        "reads Faust's set as it changes, and an empty one as no partition.",
        issue=None,
        guarded_by=(
            "tests/unit/test_fetch.py::"
            "test_a_fetch_returns_records_only_of_the_partitions_faust_fetches_from",
            "tests/unit/test_fetch.py::test_aiokafka_returns_every_partition_for_an_empty_set",
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="fetch max wait",
        kind="speed-up",
        overrides=(
            "fetch.FetchMaxWaitConsumerThread._create_worker_consumer",
            "fetch.BatchHandOverConsumer._new_consumer_thread",
        ),
        upstream=(
            f"{DRIVER}.AIOKafkaConsumerThread._create_worker_consumer",
            f"{DRIVER}.Consumer._new_consumer_thread",
        ),
        upstream_does="Builds the Kafka consumer with a fixed fetch_max_wait_ms of 1,500 ms.",
        why="aiokafka has one fetch in flight per broker: a fetch of idle partitions held up "
        "the busy ones (a restoring worker sat idle half the time). FETCH_MAX_WAIT_MS is 50 ms.",
        issue=None,
        guarded_by=(
            "tests/unit/test_fetch.py::"
            "test_the_worker_consumer_waits_at_most_fetch_max_wait_ms_for_idle_partitions",
        ),
    ),
    Change(
        name="batches overtaken by a seek",
        kind="fix",
        overrides=(
            "seeks.SeekTurnConsumer.perform_seek",
            "seeks.SeekTurnConsumer.seek",
            "seeks.SeekTurnConsumer.seek_wait",
            "seeks.SeekTurnConsumer._fetch_again",
            "fetch.BatchHandOverConsumer._hand_over",
        ),
        upstream=(
            f"{CONSUMER}.perform_seek",
            f"{CONSUMER}.seek",
            f"{THREAD_DELEGATE}.seek_wait",
            f"{CONSUMER}._drain_messages",
        ),
        upstream_does="Hands over the rest of a batch fetched before a seek in the same "
        "generation: its first record past the seek's offset looks like a gap, which counts as "
        "acknowledged, so the records in between are committed unprocessed. Seeks can "
        "interleave.",
        why="Lost events when partitions moved while events flowed. The rest of such a batch "
        "is fetched again, and seeks take turns.",
        issue="faust-streaming/faust#606",
        guarded_by=(
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="commit before revocation",
        kind="fix",
        overrides=("commits.OffsetCommitConsumer.on_partitions_revoked",),
        upstream=(f"{CONSUMER}.on_partitions_revoked",),
        upstream_does="Drops its record of acknowledged offsets, then commits: only what was "
        "still in flight. Under exactly-once the transaction stays open across the rebalance.",
        why="A worker that kept a partition processed its events again in the same "
        "transaction and committed both runs: two different changes under one version. The "
        "revoked worker now commits what the streams acknowledged first.",
        issue="faust-streaming/faust#323, faust-streaming/faust#517",
        guarded_by=(
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="commits take turns with steps",
        kind="fix",
        overrides=(
            "commits.OffsetCommitConsumer.force_commit",
            "commits.OffsetCommitConsumer.step_turn",
            "app.SegstreamApp.atomic_step",
        ),
        upstream=(f"{CONSUMER}.force_commit",),
        upstream_does="Commits each partition's transaction with the offsets acknowledged so "
        "far, whenever its timer or the record count says, also while an agent is between "
        "sending a record's outputs into that transaction and acknowledging the record.",
        why="The transaction then committed the outputs without the record's offset; after a "
        "kill -9 the record was processed again and its outputs committed twice. Under "
        "exactly-once a commit now waits for the step in flight, which holds the turn from its "
        "first send until its record is acknowledged.",
        issue=None,
        guarded_by=("tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",),
    ),
    Change(
        name="exactly-once commit flush",
        kind="fix",
        overrides=("commits.OffsetCommitConsumer._commit_offsets",),
        upstream=(f"{CONSUMER}._commit_offsets",),
        upstream_does="Under exactly-once, commits the transaction without flushing the "
        "producer buffer (it flushes under at-least-once).",
        why="A changelog record of an event the transaction commits could go in the next "
        "transaction, or outside any at shutdown. Flushed into the committing one.",
        issue=None,
        guarded_by=("tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",),
    ),
    Change(
        name="last commit finds its transaction ended",
        kind="fix",
        overrides=("commits.OffsetCommitConsumer.commit_and_end_transactions",),
        upstream=(f"{CONSUMER}.commit_and_end_transactions",),
        upstream_does="Lets aiokafka's IllegalOperation out of the last commit: Faust gives up "
        "stopping the consumer.",
        why="The worker process never exited. The commit is skipped instead: the aborted "
        "transaction's records are processed again by the partition's next owner.",
        issue=None,
        guarded_by=(
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="let_go",
        kind="addition",
        overrides=(
            "commits.OffsetCommitConsumer.let_go",
            "commits.OffsetCommitConsumer._new_offset",
            "commits.OffsetCommitConsumer.on_partitions_assigned",
            "commits.OffsetCommitConsumer.giving_up_partitions",
        ),
        upstream=(
            f"{CONSUMER}.wait_empty",
            f"{CONSUMER}._new_offset",
            f"{CONSUMER}.on_partitions_assigned",
            f"{CONSUMER}.stop_flow",
        ),
        upstream_does="Waits for every message handed to a stream before it gives partitions "
        "up, and offers no way to leave one unprocessed. _new_offset misses a hole of one "
        "record at the head of what was acknowledged.",
        why="With Redis down, the projection's batch held a rebalance or a shutdown until "
        "Redis returned. The batch is now let go, and never committed past.",
        issue="faust-streaming/faust#606",
        guarded_by=(
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
            "tests/integration/test_faults.py::test_redis_stops_mid_stream_and_the_store_catches_up",
        ),
    ),
    Change(
        name="committed offsets readable",
        kind="addition",
        overrides=("commits.OffsetCommitConsumer.committed_offset",),
        upstream=(f"{CONSUMER}._commit_offsets", f"{CONSUMER}.perform_seek"),
        upstream_does="Keeps the committed offsets private (Consumer._committed_offset).",
        why="The outbox drops the outputs whose input offset is committed (Faust flushes the "
        "producer before it commits).",
        issue=None,
        guarded_by=("tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",),
    ),
    Change(
        name="highwaters under exactly-once",
        kind="fix",
        overrides=("recovery.BrokerEndOffsetsConsumer.highwaters",),
        upstream=(
            f"{THREAD_DELEGATE}.highwaters",
            f"{DRIVER}.AIOKafkaConsumerThread.highwaters",
            f"{DRIVER}.AIOKafkaConsumerThread._highwaters",
        ),
        upstream_does="Under exactly-once, takes a changelog's end from the last stable offset "
        "of the last fetch response, which a worker that has not fetched yet does not have.",
        why="A restarted worker restored nothing. The broker's end_offsets answers the last "
        "stable offset under read_committed.",
        issue=None,
        guarded_by=(
            "tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",
            "tests/integration/test_faults.py::"
            "test_local_state_wiped_while_down_is_restored_from_the_changelog",
        ),
    ),
    Change(
        name="recovery in passes",
        kind="speed-up",
        overrides=(
            "recovery.BatchedRecovery._slurp_changelogs",
            "recovery.BatchedRecoveryTableManager.recovery",
        ),
        upstream=(
            f"{RECOVERY}._slurp_changelogs",
            f"{RECOVERY}._set_recovery_started",
            f"{RECOVERY}._set_recovery_ended",
            f"{RECOVERY}.flush_buffers",
            f"{RECOVERY}.need_recovery",
            f"{RECOVERY}.standby_remaining_total",
            "faust.tables.manager.TableManager.recovery",
            "mode.utils.queues.ThrowableQueue.get_nowait",
        ),
        upstream_does="Waits for each restored changelog record in its own asyncio.wait_for (a "
        "task and a timer per record), formats three debug lines per record with debug off, and "
        "after each record totals what is left of every active and standby changelog.",
        why="Faust's loop, not the work per key, set the restore rate: a table doing nothing "
        "per key restored 2.2-2.8x faster with one wait per pass of every queued record, and "
        "the worker went from 0.7 of Faust's own recovery to 1.5 (docs/benchmarks.md). Each "
        "record is applied as Faust applies it (offset, buffer, callback, flush); what is left "
        "is totalled once per pass.",
        issue=None,
        guarded_by=(
            BENCH,
            "tests/unit/test_recovery_passes.py::"
            "test_a_pass_takes_every_queued_record_and_applies_each_as_faust_does",
            "tests/unit/test_recovery_passes.py::"
            "test_recovery_goes_on_until_every_active_changelog_is_read",
            "tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="stream partitions resumed with the flow",
        kind="fix",
        overrides=(
            "recovery.FlowResumedStreamsConsumer.resume_partitions",
            "recovery.FlowResumedStreamsConsumer.pause_partitions",
            "recovery.FlowResumedStreamsConsumer.resume_flow",
        ),
        upstream=(
            f"{CONSUMER}.resume_partitions",
            f"{CONSUMER}.pause_partitions",
            f"{CONSUMER}.resume_flow",
            "faust.tables.recovery.Recovery.on_recovery_completed",
            "faust.tables.recovery.Recovery._resume_streams",
            "mode.utils.queues.FlowControlEvent.resume",
        ),
        upstream_does="At the end of a rebalance, resumes the stream partitions, seeks them to "
        "their committed offsets, then resumes flow, which empties the streams' queues. Flow "
        "is already on (the changelogs were read with it): records fetched in between are "
        "emptied out unprocessed, and the fetcher has moved past them.",
        why="Events were never processed and their changes never published (a partition's "
        "offset then stopped at the hole in front of what was acknowledged). Stream partitions "
        "a rebalance resumes are fetched from once flow resumes, after the queues are emptied.",
        issue=None,
        guarded_by=(
            "tests/unit/test_recovery.py::"
            "test_a_rebalance_fetches_from_stream_partitions_once_flow_resumes",
            "tests/integration/test_rebalance_in_flight.py::"
            "test_a_second_worker_joins_then_the_first_leaves_while_events_flow",
        ),
    ),
    Change(
        name="producer buffer flushed to its end",
        kind="fix",
        overrides=(
            "producer_buffer.FlushToEndProducerBuffer.flush",
            "producer_buffer.FlushToEndProducerBuffer.put",
            "producer_buffer.FlushToEndProducerBuffer._send_pending",
            "producer_buffer.FlushToEndProducer.__init__",
        ),
        upstream=(
            f"{BUFFER}.flush",
            f"{BUFFER}.flush_atmost",
            f"{BUFFER}.put",
            f"{BUFFER}._send_pending",
            f"{BUFFER}.__post_init__",
            "faust.transport.producer.Producer.__init__",
        ),
        upstream_does="Returns from flush once 0.1 s passes without a record leaving the "
        "buffer, with records still in it.",
        why="Offsets were committed, partitions handed over and workers stopped with "
        "changelog records still buffered (lost after a kill -9, landed late over newer states "
        "after a rebalance, dropped at shutdown). The flush waits for every record put before "
        "it.",
        issue=None,
        guarded_by=(
            "tests/unit/test_producer_buffer.py::test_faust_flush_returns_with_records_unsent",
            "tests/unit/test_producer_buffer.py::test_flush_returns_once_every_record_is_sent",
            "tests/unit/test_producer_buffer.py::test_flush_does_not_wait_for_records_put_after_it",
            "tests/unit/test_producer_buffer.py::"
            "test_concurrent_flushes_each_return_once_their_own_records_are_sent",
            "tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",
        ),
    ),
    Change(
        name="put_after",
        kind="addition",
        overrides=("producer_buffer.FlushToEndProducerBuffer.put_after",),
        upstream=(f"{BUFFER}._handle_pending",),
        upstream_does="Sends buffered records in the order put; aiokafka then sends each "
        "partition's batch when it is ready, so records of different partitions reach the "
        "broker in any order.",
        why="Under at-least-once an output must not reach the broker before the stored state "
        "that produced it (agents.outbox): it is sent once the state's record is delivered, "
        "holding up no other record.",
        issue=None,
        guarded_by=(
            "tests/unit/test_producer_buffer.py::"
            "test_a_record_put_after_a_delivery_holds_up_no_other_record_and_flush_waits_for_it",
            "tests/unit/test_producer_buffer.py::"
            "test_records_put_after_deliveries_leave_in_the_order_given",
            "tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",
        ),
    ),
    Change(
        name="direct publish",
        kind="speed-up",
        overrides=(
            "producer_buffer.DirectPublishProducerBuffer.publish",
            "producer_buffer._completed",
        ),
        upstream=("faust.topics.Topic.publish_message", "faust.topics.Topic._on_published"),
        upstream_does="Publishes each buffered record with a debug line, sensor calls and a "
        "producer look-up; _on_published completes the record's future (copied in _completed, "
        "less the sensors).",
        why="Per-record framework work the worker does not need.",
        issue=None,
        guarded_by=(
            BENCH,
            "tests/integration/test_first_path.py::test_purchases_publish_exact_buyer_transitions",
        ),
    ),
    Change(
        name="producer buffer size",
        kind="speed-up",
        overrides=("app.SegstreamApp._new_producer",),
        upstream=("faust.app.base.App._new_producer", f"{BUFFER}.wait_until_ebb"),
        upstream_does="Stalls the streams once the buffer holds 100 records.",
        why="Less than one timer tick produces: every tick stalled the streams and logged a "
        "warning per record delivered meanwhile. PRODUCER_BUFFER is 5,000.",
        issue=None,
        guarded_by=(BENCH,),
    ),
    Change(
        name="monitor without per-record hooks",
        kind="speed-up",
        overrides=("monitor.MonitorWithoutRecordHooks",),
        upstream=tuple(
            f"{MONITOR}.{hook}"
            for hook in (
                "on_message_in",
                "on_stream_event_in",
                "on_stream_event_out",
                "on_message_out",
                "on_table_get",
                "on_table_set",
                "on_table_del",
                "on_send_initiated",
                "on_send_completed",
                "on_send_error",
            )
        ),
        upstream_does="Does bookkeeping for every message, table access and send.",
        why="Nothing reads it (the worker's own counters are at /metrics).",
        issue=None,
        guarded_by=(BENCH,),
    ),
    Change(
        name="coordinator retry",
        kind="fix",
        overrides=(
            "sender.CoordinatorRetryingSender._find_coordinator",
            "sender.CoordinatorRetryingKafkaProducer.__init__",
            "app.SegstreamProducer._producer_type",
        ),
        upstream=(
            "aiokafka.producer.sender.Sender._find_coordinator",
            "aiokafka.producer.sender.Sender.__init__",
            "aiokafka.producer.producer.AIOKafkaProducer.__init__",
            f"{DRIVER}.Producer._producer_type",
        ),
        upstream_does="Retries a coordinator look-up answered 'not available' or timed out, but "
        "a connection that closes mid-request ends the sender's task for good ('Unexpected "
        "error during batch delivery').",
        why="An exactly-once worker exited after a broker restart instead of reconnecting. "
        "Every error aiokafka marks retriable is retried, as the Java client does. The "
        "retrying sender replaces the one AIOKafkaProducer.__init__ builds, with its settings, "
        "before it is started.",
        issue=None,
        guarded_by=(
            "tests/unit/test_sender.py::test_aiokafka_gives_up_when_the_connection_closes_mid_lookup",
            "tests/unit/test_sender.py::"
            "test_retriable_failures_are_retried_until_the_coordinator_answers",
            "tests/unit/test_sender.py::test_an_error_retrying_cannot_fix_still_raises",
            "tests/unit/test_sender.py::test_faust_producers_get_the_coordinator_retrying_sender",
            "tests/integration/test_faults.py::test_the_broker_stops_for_ten_seconds_mid_stream",
        ),
    ),
    Change(
        name="a table assignment's changelog record",
        kind="addition",
        overrides=(
            "changelog.ChangelogRecordTable.put",
            "changelog.ChangelogRecordTable.send_changelog",
        ),
        upstream=(
            "faust.tables.table.Table.on_key_set",
            "faust.tables.base.Collection.send_changelog",
        ),
        upstream_does="table[key] = value queues the changelog record and drops its future.",
        why="Under at-least-once the step's outputs are sent once the state's changelog record "
        "is delivered (agents.outbox).",
        issue=None,
        guarded_by=(
            "tests/unit/test_changelog_table.py::test_put_returns_the_changelog_record_it_queued",
            "tests/integration/test_faults.py::test_kill_9_mid_burst_then_restart",
        ),
    ),
    Change(
        name="a partition's RocksDB keys",
        kind="addition",
        overrides=("changelog.ChangelogRecordTable.rocksdb_keys",),
        upstream=(
            "faust.stores.rocksdb.Store._db_for_partition",
            "faust.stores.rocksdb.Store._visible_keys",
            "faust.stores.base.Store._decode_key",
        ),
        upstream_does="Lists a store's keys only across every partition it holds.",
        why="The serving store's catch-up checks one partition's customers; a RocksDB store "
        "restores only the changelog past its local offset, so only its database knows the "
        "customers it kept.",
        issue=None,
        guarded_by=(
            "tests/integration/test_store_catch_up.py::"
            "test_the_store_catches_up_after_a_flush_and_after_a_restart_over_a_flushed_store",
        ),
    ),
    Change(
        name="no terminal spinner",
        kind="speed-up",
        overrides=("worker.GracefulStopWorker.__init__",),
        upstream=(
            "faust.worker.Worker.__init__",
            "faust.worker.Worker._setup_spinner_handler",
        ),
        upstream_does="Builds a terminal spinner, and then sets the root logger to DEBUG when "
        "the log level is WARNING or above, so that the spinner turns on every record.",
        why="Every debug call on the per-event path built a log record: about a tenth of a "
        "worker's time. A worker logs to files and journals, not a terminal.",
        issue=None,
        guarded_by=(
            BENCH,
            "tests/unit/test_worker_stop.py::"
            "test_without_a_spinner_faust_leaves_the_root_logger_at_its_level",
        ),
    ),
    Change(
        name="graceful stop with a reason",
        kind="fix",
        overrides=(
            "worker.GracefulStopWorker.stop_on",
            "worker.GracefulStopWorker.execute_from_commandline",
            "app.SegstreamApp.stop_worker",
        ),
        upstream=(
            "mode.worker.Worker._schedule_shutdown",
            "mode.worker.Worker.execute_from_commandline",
            "mode.services.Service.crash",
        ),
        upstream_does="App.crash marks every service crashed at once: the consumer's thread "
        "stops serving calls while the worker's last commit still needs it.",
        why="A worker stopping on an internal error (SEGSTREAM_ON_INTERNAL_ERROR=stop) hung in "
        "its last commit for ever. It now stops as SIGTERM does and exits 1 with the reason.",
        issue=None,
        guarded_by=(
            "tests/integration/test_internal_errors.py::"
            "test_with_the_stop_policy_the_worker_stops_and_a_fixed_one_applies_the_record",
            "tests/unit/test_worker_stop.py::"
            "test_an_app_outside_a_worker_raises_the_reason_it_was_asked_to_stop_for",
        ),
    ),
)
