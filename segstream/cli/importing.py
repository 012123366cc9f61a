"""`segstream import FILE`: customers or orders from a CRM export, each row checked by the live
decoder and produced to the input topics keyed by customer, as a live producer sends them.

What the user sees: the columns that give no field (stderr, before any row), a progress bar on
a terminal or a progress line every tenth of the file otherwise (rows/s, ETA), a summary
(stdout), and the rejected rows in a report file, never on the screen (rows hold emails).
Exit status: 0 every row imported, 1 some rejected, 2 a bad file or mapping, or Kafka out of
reach (``friendly_errors``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import click
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from config import Settings
from config.errors import ConfigError, StackError
from engine.catalog import catalog_for
from segstream.cli.progress import PROGRESS_QUIET_S, Progress
from streams import codec
from streams.connections import kafka_options
from streams.import_rows import RowReader, format_of
from streams.importing import (
    EVENTS,
    ORDERS,
    ImportedEvent,
    RejectedRow,
    RowImporter,
    mapping_for,
    scattered_orders,
)
from streams.layout import ensure_topics, unreachable
from streams.personal import without_personal
from streams.timestamps import wall_clock_ms

PRODUCER_BATCH_BYTES = 256 * 1024
WAIT_POLL_S = 0.5


@dataclass
class Tally:
    """What became of the rows so far."""

    rows: int = 0
    rejected: int = 0
    accepted: int = 0  # events the decoder accepted
    produced_rows: int = 0  # rows whose events Kafka acknowledged
    produced: Counter[str] = field(default_factory=Counter)  # topic -> events acknowledged
    reasons: Counter[str] = field(default_factory=Counter)  # field -> rows rejected for it
    failures: list[BaseException] = field(default_factory=list)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)  # of what was produced

    def describe(self, seconds: float) -> str:
        rate = self.rows / seconds
        return f"{self.rows:,} rows, {self.rejected:,} rejected, {rate:,.0f} rows/s"

    def reject(self, rejected: RejectedRow) -> None:
        self.rejected += 1
        self.reasons[rejected.reason.partition(":")[0].partition(" (")[0]] += 1

    def delivered(self, event: ImportedEvent, delivery: asyncio.Future[RecordMetadata]) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            self.failures.append(delivery.exception() or TimeoutError("cancelled"))
            return
        self.produced[event.topic] += 1
        self.produced_rows += len(event.lines)
        sent = delivery.result()
        where = TopicPartition(sent.topic, sent.partition)
        self.last_offsets[where] = max(sent.offset, self.last_offsets.get(where, -1))


class Report:
    """The rejected rows, one JSON object a line: ``{line, reason, row}``, without personal
    data (``streams.personal``). Written only when a row is rejected; a report an earlier run
    left at the path is removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] | None = None

    def add(self, rejected: RejectedRow) -> None:
        if self._out is None:
            self._out = self.path.open("wb")
        self._out.write(codec.dumps(without_personal(rejected.to_dict())) + b"\n")

    def close(self, finished: bool) -> None:
        if self._out is not None:
            self._out.close()
        elif finished:
            self.path.unlink(missing_ok=True)


def pairs(option: str, given: Iterable[str], split_last: bool) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict; ``split_last``: a column name may hold ``=``."""
    found: dict[str, str] = {}
    for text in given:
        name, equals, value = text.rpartition("=") if split_last else text.partition("=")
        if not equals or not name.strip() or not value.strip():
            shape = "COLUMN=FIELD" if split_last else "FIELD=VALUE"
            raise ConfigError(f"{option} {text!r}: expected {shape}.")
        found[name.strip()] = value.strip()
    return found


def run_import(
    settings: Settings,
    path: Path,
    *,
    kind: str | None,
    fmt: str | None,
    mapping_file: Path | None,
    columns: Iterable[str],
    defaults: Iterable[str],
    report_path: Path | None,
    dry_run: bool,
    wait: bool,
) -> int:
    """Import one file; the exit status (0: every row imported, 1: some rejected)."""
    catalog = catalog_for(settings.segments_file, settings.cart_quiet_minutes)
    mapping = mapping_for(
        kind,
        mapping_file,
        pairs("--map", columns, split_last=True),
        pairs("--default", defaults, split_last=False),
        catalog.traits,
    )
    fmt = format_of(path, fmt)
    if mapping.kind == EVENTS and fmt == "csv":
        raise ConfigError(f"{path}: rows of kind events are JSON lines ({{topic, value}}).")
    report = Report(report_path or path.with_name(f"{path.name}.rejected.jsonl"))
    tally = Tally()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    with handle:
        scattered: frozenset[str] = frozenset()
        if mapping.kind == ORDERS:
            scattered = scattered_orders(mapping, RowReader(handle, fmt, str(path)))
            handle.seek(0)
        rows = RowReader(handle, fmt, str(path))
        ignored = [] if rows.header is None else mapping.check_header(rows.header, str(path))
        if ignored:
            click.echo(
                f"{path}: columns not imported (not fields of {mapping.kind}; "
                f"--map COLUMN=FIELD maps one): {', '.join(ignored)}",
                err=True,
            )
        importer = RowImporter(mapping, wall_clock_ms(), settings.max_event_bytes, scattered)
        progress = Progress(f"Importing {path.name}", path.stat().st_size, tally.describe)
        finished = False
        try:
            events = _accepted(rows, importer, report, tally, progress)
            if dry_run:
                for _ in events:
                    pass
            else:
                asyncio.run(_produce(settings, events, tally, wait))
            finished = True
        finally:
            progress.close(rows.position)
            report.close(finished)
    _summarise(path, tally, progress.started, report.path, dry_run)
    return 1 if tally.rejected else 0


def _accepted(
    rows: RowReader, importer: RowImporter, report: Report, tally: Tally, progress: Progress
) -> Iterator[ImportedEvent]:
    """The events the decoder accepted, in file order; rejected rows go to the report."""

    def sorted_out(outcomes: list[ImportedEvent | RejectedRow]) -> Iterator[ImportedEvent]:
        for outcome in outcomes:
            if isinstance(outcome, RejectedRow):
                report.add(outcome)
                tally.reject(outcome)
            else:
                tally.accepted += 1
                yield outcome

    for row in rows:
        tally.rows += 1
        yield from sorted_out(importer.take(row))
        progress.show(rows.position)
    yield from sorted_out(importer.finish())


def _summarise(path: Path, tally: Tally, started: float, report: Path, dry_run: bool) -> None:
    seconds = time.monotonic() - started
    rate = tally.rows / max(seconds, 1e-3)
    if dry_run:
        taken = f"{tally.rows - tally.rejected:,} would be imported as {tally.accepted:,} events"
    else:
        topics = ", ".join(f"{n:,} {topic}" for topic, n in sorted(tally.produced.items()))
        taken = f"{tally.produced_rows:,} imported ({topics or 'no events'})"
    click.echo(
        f"{path}: {tally.rows:,} rows read, {taken}, {tally.rejected:,} rejected, "
        f"in {seconds:.1f} s ({rate:,.0f} rows/s)"
    )
    if tally.rejected:
        why = ", ".join(f"{n:,} {name}" for name, n in tally.reasons.most_common())
        click.secho(
            f"segstream: {tally.rejected:,} of {tally.rows:,} rows rejected ({why}): "
            f"the rows and their reasons are in {report}",
            fg="red",
            err=True,
        )


async def _produce(
    settings: Settings, events: Iterable[ImportedEvent], tally: Tally, wait: bool
) -> None:
    """Each event to its input topic keyed by its customer, with the deployment's Kafka
    settings, as a live producer sends it (idempotent, so a retried batch lands once); the
    tally counts what Kafka acknowledged. ``wait``: then until the worker has applied them."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **kafka_options(settings),
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=PRODUCER_BATCH_BYTES,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        for event in events:
            delivery = await producer.send(settings.topic(event.topic), event.raw, key=event.key)
            delivery.add_done_callback(partial(tally.delivered, event))
        await producer.flush()
    except KafkaError as exc:
        tally.failures.append(exc)
    finally:
        await producer.stop()
    if tally.failures:
        raise StackError(
            f"Kafka did not take every event ({tally.failures[0]!r}): {tally.produced_rows:,} "
            f"rows are in. Run the import again: it sends the same event ids."
        )
    if wait and tally.last_offsets:
        await _until_applied(settings, tally.last_offsets)


async def _until_applied(settings: Settings, last_offsets: dict[TopicPartition, int]) -> None:
    """Until the worker's consumer group has committed past every imported event: the worker
    commits an input record's offset once it has applied the record."""
    admin = AIOKafkaAdminClient(**kafka_options(settings), client_id=f"{settings.group_id}-import")
    await admin.start()
    try:
        said = 0.0
        while True:
            committed = await admin.list_consumer_group_offsets(
                settings.group_id, partitions=list(last_offsets)
            )
            behind = [
                tp
                for tp, offset in last_offsets.items()
                if tp not in committed or committed[tp].offset <= offset
            ]
            if not behind:
                click.echo("The worker has applied every imported event.", err=True)
                return
            if time.monotonic() - said >= PROGRESS_QUIET_S:
                said = time.monotonic()
                click.echo(
                    f"Waiting for the worker ({settings.group_id}) to apply the imported events: "
                    f"{len(behind)} of {len(last_offsets)} partitions to go",
                    err=True,
                )
            await asyncio.sleep(WAIT_POLL_S)
    finally:
        await admin.close()
