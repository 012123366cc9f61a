"""The contenders other than segstream itself, each run in its own process by the harness:

- ``raw``: plain aiokafka: consume, orjson-decode, update a dict, produce one record per event
  (sends batched per fetch). The floor.
- ``faust_bare``: a Faust agent (Faust's defaults) that only iterates the same events.
- ``faust_tuned``: the same agent on segstream's tuned Faust (``segstream.faust_patches``):
  what the framework costs segstream before any segment logic.
- ``naive``: the default catalog the way Faust's documentation teaches it: Record values, one
  agent per topic, a table write and an awaited send per event.
- ``quix``: the workload's buyer segments on Quix Streams, in ``segstream.bench.quix``.
- ``faust_restore``: Faust's own recovery loop (on segstream's tuned consumer) of segstream's
  changelog into a table that does nothing per key: the restore rate the framework allows.
- ``segstream_restore``: the same with segstream's recovery loop (``BatchedRecovery``): what
  the worker's work per key costs, against the same loop.

Each prints one JSON line when it has seen every event: how many, over how many seconds
(first event seen to last), and its resident memory.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import faust
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.tables.manager import TableManager

from config import Settings, load_settings, names
from engine.catalog import catalog_for
from engine.state import CustomerState
from engine.step import Step
from segstream.faust_patches.app import SegstreamApp, faust_options
from segstream.stack.process import resident_kb
from streams import codec
from streams.connections import broker_credentials, kafka_options
from streams.events import Erasure, IdentityLink, decode
from streams.layout import changelog_topic


class Finish:
    """Counts events; at the last one, reports and (for Faust) leaves the worker to be stopped."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.first = self.cpu = 0.0

    def begin(self) -> None:
        """The first event is here (called again later, it changes nothing)."""
        if not self.first:
            self.first, self.cpu = time.perf_counter(), time.process_time()

    def add(self, count: int = 1) -> bool:
        if not self.counted(count):
            return False
        self.report()
        return True

    def counted(self, count: int = 1) -> bool:
        """Count without reporting: whether every event is seen now."""
        self.begin()
        self.seen += count
        return self.seen >= self.expected

    def report(self) -> None:
        report = {
            "events": self.seen,
            "seconds": time.perf_counter() - self.first,
            "rss_kb": resident_kb(os.getpid()),
            "cpu_seconds": time.process_time() - self.cpu,
        }
        print(codec.dumps(report).decode(), flush=True)


def input_topics(settings: Settings) -> list[str]:
    return [settings.topic(name) for name in names.EVENT_TOPICS]


async def run_raw(settings: Settings, group: str, expected: int) -> None:
    consumer = AIOKafkaConsumer(
        *input_topics(settings),
        **kafka_options(settings),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=5)
    await consumer.start()
    await producer.start()
    out = settings.topic("bench-raw-out")
    counts: dict[str, int] = {}
    finish = Finish(expected)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if batches:
                finish.begin()
            sent = []
            for messages in batches.values():
                for message in messages:
                    customer_id = codec.loads(message.value)["customer_id"]
                    counts[customer_id] = counts.get(customer_id, 0) + 1
                    value = codec.dumps({"customer_id": customer_id, "n": counts[customer_id]})
                    sent.append(await producer.send(out, key=message.key, value=value))
            for future in sent:
                await future
            if batches:
                await consumer.commit()
                if finish.add(len(sent)):
                    return
    finally:
        await producer.stop()
        await consumer.stop()


def faust_app(
    settings: Settings, group: str, web_port: int, tuned: bool = False, own_recovery: bool = False
) -> faust.App:
    common: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "broker_credentials": broker_credentials(settings),
        "topic_partitions": settings.partitions,
        "web_port": web_port,
        # In the run's directory (Faust's default is "<app id>-data" in the working directory).
        "datadir": str(settings.data_dir),
    }
    if own_recovery:  # Faust's own recovery loop, not segstream's
        common["TableManager"] = TableManager
    if tuned:
        return SegstreamApp(group, **common, **faust_options())
    return faust.App(group, consumer_auto_offset_reset="earliest", autodiscover=False, **common)


def bare_app(
    settings: Settings, group: str, web_port: int, expected: int, tuned: bool = False
) -> faust.App:
    app = faust_app(settings, group, web_port, tuned)
    source = app.topic(*input_topics(settings), key_serializer="raw", value_serializer="raw")
    finish = Finish(expected)

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            finish.add()

    return app


class Purchase(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    order_id: str
    total: float
    currency: str
    items: list[dict[str, Any]]


class EmailOpen(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    campaign_id: str


class EmailClick(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    campaign_id: str
    url: str


class CartEvent(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    action: str
    sku: str
    category: str
    quantity: int
    unit_price: float


class ProfileUpdate(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    traits: dict[str, Any]


class SupportContact(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    channel: str
    reason: str


class PageView(faust.Record, serializer="json"):
    event_id: str
    customer_id: str
    ts: int
    url: str
    sku: str | None = None
    category: str | None = None


RECORDS: dict[str, type[faust.Record]] = {
    names.PURCHASES: Purchase,
    names.EMAIL_OPENS: EmailOpen,
    names.EMAIL_CLICKS: EmailClick,
    names.CART_EVENTS: CartEvent,
    names.PROFILE_UPDATES: ProfileUpdate,
    names.SUPPORT_CONTACTS: SupportContact,
    names.PAGE_VIEWS: PageView,
}


def naive_app(settings: Settings, group: str, web_port: int, expected: int) -> faust.App:
    """What a Faust user writes from the documentation: typed records, a table of dicts, one
    agent per topic, each event read, evaluated, written back and its changes sent."""
    app = faust_app(settings, group, web_port)
    catalog = catalog_for(settings.segments_file, settings.cart_quiet_minutes)
    step = Step(catalog)
    table = app.Table("customers", default=dict, partitions=settings.partitions)
    changes = app.topic(settings.topic("bench-naive-changes"), value_serializer="json")
    finish = Finish(expected)

    def agent_for(topic: str, record: type[faust.Record]) -> None:
        source = app.topic(settings.topic(topic), key_type=str, value_type=record)

        async def evaluate(stream: faust.StreamT[Any]) -> None:
            async for event in stream:
                decoded = decode(
                    topic,
                    event.customer_id.encode(),
                    codec.dumps(event.asdict()),
                    traits=catalog.traits,
                )
                assert not isinstance(decoded, Erasure | IdentityLink)
                stored = table[event.customer_id]
                state = (
                    CustomerState.from_dict(stored) if stored else CustomerState(event.customer_id)
                )
                outcome = step.on_event(state, decoded, topic).outcome
                table[event.customer_id] = state.to_dict()
                for change in outcome.changes:
                    await changes.send(key=event.customer_id, value=change.to_dict())
                finish.add()

        evaluate.__name__ = f"evaluate_{topic.replace('-', '_')}"
        app.agent(source, name=evaluate.__name__)(evaluate)

    for topic, record in RECORDS.items():
        agent_for(topic, record)
    return app


def restore_app(
    settings: Settings, group: str, web_port: int, expected: int, faust_loop: bool
) -> faust.App:
    """A table on segstream's changelog (under this contender's own group) that only counts
    the keys restored into it: with ``faust_loop``, by Faust's own recovery loop, else by
    segstream's (``BatchedRecovery``)."""
    app = faust_app(settings, group, web_port, tuned=True, own_recovery=faust_loop)
    finish = Finish(expected)

    async def restored(event: faust.EventT) -> None:
        finish.add()

    changelog = app.topic(
        changelog_topic(settings, names.CUSTOMERS_TABLE),
        partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.Table(
        names.CUSTOMERS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        changelog_topic=changelog,
        on_changelog_event=restored,
    )
    return app


def main() -> None:
    """``python -m segstream.bench.contenders MODE GROUP EXPECTED WEB_PORT``; Kafka and the
    topic prefix come from the SEGSTREAM_ settings."""
    mode, group, expected, web_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    settings = load_settings()
    if mode == "raw":
        asyncio.run(run_raw(settings, group, expected))
        return
    if mode == "quix":
        from segstream.bench.quix import run_quix

        run_quix(settings, group, expected)
        return
    if mode == "naive":
        app = naive_app(settings, group, web_port, expected)
    elif mode in ("faust_restore", "segstream_restore"):
        app = restore_app(settings, group, web_port, expected, faust_loop=mode == "faust_restore")
    else:
        app = bare_app(settings, group, web_port, expected, tuned=mode == "faust_tuned")
    tuned = mode in ("faust_tuned", "faust_restore", "segstream_restore")
    loop = uvloop.new_event_loop() if tuned else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(app, loglevel="info", loop=loop)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
