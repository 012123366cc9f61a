"""`segstream bench`: one run, one broker, one pre-loaded workload, every contender in turn.

1. Throughput: raw, faust_bare, faust_tuned, naive, quix and segstream each read the same topics
   from the beginning in their own process and consumer group.
2. Latency: the segstream worker, caught up, gets a paced load at shares of its throughput.
3. Recovery and memory: fresh workers start on changelogs holding N customers' state, per
   table store; resident memory is compared with a worker that holds none. With the memory
   store, the same changelog is restored into a table that does nothing per key, by Faust's
   own recovery loop (``faust_restore``: the target's reference) and by segstream's
   (``segstream_restore``: the most the worker's restore can reach).
4. The engine alone: the workload folded in this process (decode and rules, no Kafka). With
   ``faust_tuned`` it bounds what segstream can reach (see ``report.ceilings``).
5. Ingest: the synthetic shop's events as Segment's SDK batches through a fresh worker's
   ``/v1/batch``, against the same events produced straight to Kafka (``bench.ingest``).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import Settings, load_settings
from engine.catalog import catalog_for
from segstream.bench import (
    backtest,
    burst,
    ingest,
    latency,
    preview,
    quix,
    report,
    restore,
    serving,
)
from segstream.bench.processes import (
    Run,
    WorkerMetrics,
    clean_env,
    contender,
    segstream_worker,
)
from segstream.bench.workload import Workload, produce
from segstream.gc_policy import collecting_less
from segstream.stack import LocalStack
from segstream.stack.process import free_port
from streams.layout import ensure_topics

PEERS = ("raw", "faust_bare", "faust_tuned", "naive", "quix")
READERS = (*PEERS, "segstream")  # the contenders that read the pre-loaded workload
OUTPUTS = ("bench-raw-out", "bench-naive-changes", quix.CHANGES)


@dataclass(frozen=True)
class BenchConfig:
    customers: int = 100_000
    events: int = 300_000
    seed: int = 42
    partitions: int = 4
    contenders: tuple[str, ...] = (*READERS, "ingest", "backtest", "serving")
    loads: tuple[float, ...] = (0.25, 0.5, 0.8)
    latency_seconds: float = 30.0
    burst_customers: int = 20_000
    memory_customers: tuple[int, ...] = (100_000, 1_000_000)
    stores: tuple[str, ...] = ("memory://", "rocksdb://")
    ingest_messages: int = 100_000
    ingest_rounds: int = 3
    backtest_events: int = 100_000
    serving_members: int = 1_000_000
    timeout: float = 1800.0
    workdir: Path = field(default_factory=lambda: Path("var/bench"))

    @classmethod
    def smoke(cls, workdir: Path) -> BenchConfig:
        """Small enough for the test suite: proves every step works, measures nothing."""
        return cls(
            customers=300,
            events=1_500,
            loads=(0.5,),
            latency_seconds=2.0,
            burst_customers=200,
            memory_customers=(1_000,),
            ingest_messages=1_000,
            ingest_rounds=1,
            backtest_events=1_000,
            serving_members=2_000,
            timeout=180.0,
            workdir=workdir,
        )


class Bench:
    def __init__(self, base: Settings, config: BenchConfig, say: Callable[[str], None]) -> None:
        self.base = base
        self.config = config
        self.say = say
        self.run_id = f"bench{uuid.uuid4().hex[:6]}"
        self.home = config.workdir / self.run_id
        self.home.mkdir(parents=True, exist_ok=True)

    def values(self, prefix: str, app_id: str, **extra: str) -> dict[str, str]:
        """The SEGSTREAM_ settings of one contender or worker."""
        return {
            "SEGSTREAM_KAFKA_BOOTSTRAP": self.base.kafka_bootstrap,
            "SEGSTREAM_REDIS_URL": self.base.redis_url.get_secret_value(),
            "SEGSTREAM_TOPIC_PREFIX": prefix,
            "SEGSTREAM_APP_ID": app_id,
            "SEGSTREAM_PARTITIONS": str(self.config.partitions),
            "SEGSTREAM_DATA_DIR": str(self.home / f"data-{prefix}{app_id}"),
            "SEGSTREAM_LOG_LEVEL": "info",
        } | {f"SEGSTREAM_{k.upper()}": v for k, v in extra.items()}

    async def run(self) -> dict[str, Any]:
        config = self.config
        prefix = f"{self.run_id}-"
        settings = load_settings(self.values(prefix, "seg"))
        workload = Workload(config.customers, config.events, config.seed)
        if set(READERS) & set(config.contenders):
            self.say(f"Loading {config.events:,} events for {config.customers:,} customers")
            await ensure_topics(settings, OUTPUTS)
            await produce(settings, workload.records())

        runs: dict[str, Run] = {}
        for name in config.contenders:
            if name in PEERS:
                runs[name] = await self.peer(name, prefix)
                self.say(f"{name}: {runs[name].rate:,.0f} events/s")
        latencies: list[latency.Latency] = []
        bursts: list[burst.Burst] = []
        engine, states = self.engine_alone(workload)
        self.say(f"engine alone: {engine.rate:,.0f} events/s")
        previewed = None
        if "segstream" in config.contenders:
            folded = config.customers / engine.seconds if engine.seconds else 0.0
            runs["segstream"], latencies, bursts, previewed = await self.segstream(
                prefix, settings, folded
            )
        took = await self.ingest() if "ingest" in config.contenders else None
        backtested = self.backtest(workload) if "backtest" in config.contenders else None
        served = await self.serving() if "serving" in config.contenders else None
        restores, baselines = await self.recovery(states)
        setup = {
            "customers": config.customers,
            "events": config.events,
            "seed": config.seed,
            "partitions": config.partitions,
            "run_id": self.run_id,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return report.build(
            setup, runs, latencies, bursts, restores, baselines, engine, took, previewed
        ) | {"backtest": report.backtest(backtested), "serving": report.serving(served)}

    def engine_alone(self, workload: Workload) -> tuple[Run, list[dict[str, Any]]]:
        """Fold the workload with the pure engine; every customer's final state comes back too
        (the recovery step writes them to changelogs)."""
        catalog = catalog_for(self.base.segments_file, self.base.cart_quiet_minutes)
        records = workload.encoded()
        started, cpu = time.perf_counter(), time.process_time()
        with collecting_less():  # as the worker and replay run the engine
            states = restore.fold(records, catalog)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return Run(len(records), seconds, 0, cpu), [state.to_dict() for state in states]

    def backtest(self, workload: Workload) -> backtest.Backtest:
        """`segstream replay` of the workload's first events, end to end."""
        history = self.home / "history.jsonl"
        events = backtest.write_history(
            itertools.islice(workload.records(), self.config.backtest_events), history
        )
        env = clean_env(self.values(f"{self.run_id}-backtest-", "seg"))
        found = backtest.measure(history, events, env, self.home / "backtest.log")
        self.say(
            f"backtest: {found.events:,} events replayed in {found.seconds:.2f} s "
            f"({found.events_per_second:,.0f} events/s, {found.ratio:.3f} of orjson.loads)"
        )
        return found

    async def peer(self, name: str, prefix: str) -> Run:
        group = f"{prefix}{name}"
        env = clean_env(self.values(prefix, name))
        process = contender(
            name, group, self.config.events, free_port(), env, self.home / f"{name}.log"
        )
        try:
            return await process.reported(self.config.timeout)
        finally:
            process.stop()

    async def segstream(
        self, prefix: str, settings: Settings, engine_customers_per_second: float
    ) -> tuple[Run, list[latency.Latency], list[burst.Burst], preview.Preview]:
        port = free_port()
        worker = segstream_worker(
            clean_env(self.values(prefix, "seg", web_port=str(port))), self.home / "segstream.log"
        )
        metrics = WorkerMetrics(port)
        try:
            run = await metrics.until_processed(worker, self.config.events, self.config.timeout)
            self.say(f"segstream: {run.rate:,.0f} events/s")
            await metrics.until_idle(worker, self.config.timeout)
            previewed = await preview.measure(port, engine_customers_per_second)
            self.say(
                f"preview: {previewed.customers:,} customers, "
                f"{previewed.customers_per_second:,.0f} customers/s"
            )
            latencies = []
            for share in self.config.loads:
                await metrics.until_idle(worker, self.config.timeout)
                measured = await latency.paced(
                    settings,
                    worker,
                    metrics,
                    share,
                    share * run.rate,
                    self.config.latency_seconds,
                    self.config.customers,
                    self.config.seed + 1,
                )
                self.say(f"latency at {share:.0%}: p99 {measured.p99_ms:.0f} ms")
                latencies.append(measured)
            bursts = []
            if self.config.burst_customers:
                await metrics.until_idle(worker, self.config.timeout)
                due = await burst.measure(
                    settings,
                    worker,
                    metrics,
                    self.config.burst_customers,
                    run.rate,
                    self.config.timeout,
                )
                self.say(f"burst of {due.customers:,}: last trigger {due.last_s:.1f} s late")
                bursts.append(due)
            return run, latencies, bursts, previewed
        finally:
            await metrics.close()
            worker.stop()

    async def ingest(self) -> ingest.Ingest:
        """A worker of a fresh deployment (no backlog), ready, with one write key."""
        values = self.values(
            f"{self.run_id}-ingest-",
            "seg",
            web_port=str(free_port()),
            write_keys=f"{ingest.WRITE_KEY}={ingest.SOURCE}",
        )
        settings = load_settings(values)
        direct = load_settings(self.values(f"{self.run_id}-direct-", "seg"))
        worker = segstream_worker(clean_env(values), self.home / "ingest.log")
        metrics = WorkerMetrics(settings.web_port)
        try:
            await metrics.until_ready(worker, self.config.timeout)
            took = await ingest.measure(
                settings,
                direct,
                worker,
                metrics,
                (self.config.customers, self.config.seed + 2),
                self.config.ingest_messages,
                self.config.ingest_rounds,
                self.config.timeout,
            )
        finally:
            await metrics.close()
            worker.stop()
        self.say(
            f"ingest: {took.messages_per_second:,.0f} messages/s through /v1/batch, "
            f"{took.direct_events_per_second:,.0f} events/s straight to Kafka "
            f"({took.ratio:.2f})"
        )
        return took

    async def serving(self) -> serving.Serving:
        """A worker of a fresh deployment whose Redis holds a segment of many members."""
        values = self.values(f"{self.run_id}-serving-", "seg", web_port=str(free_port()))
        settings = load_settings(values)
        keys = serving.Keys(settings)
        worker = None
        try:
            await keys.populate(self.config.serving_members)
            worker = segstream_worker(clean_env(values), self.home / "serving.log")
            metrics = WorkerMetrics(settings.web_port)
            try:
                await metrics.until_ready(worker, self.config.timeout)
                segments = catalog_for(settings.segments_file, settings.cart_quiet_minutes).names()
                found = await serving.measure(keys, settings.web_port, segments)
            finally:
                await metrics.close()
        finally:
            if worker is not None:
                worker.stop()
            await keys.close()
        self.say(
            f"serving {found.members:,} members: dashboard {found.dashboard_ms:.1f} ms "
            f"({found.dashboard_ratio:.1f}x Redis), page {found.page_ms:.1f} ms "
            f"({found.page_ratio:.1f}x Redis); the first dashboard {found.first_dashboard_ms:.0f} "
            f"ms, every member's spend summed {found.summed_ms:.0f} ms"
        )
        return found

    async def recovery(
        self, states: list[dict[str, Any]]
    ) -> tuple[list[restore.Restore], dict[str, int]]:
        if not self.config.stores:
            return [], {}
        results, baselines = [], {}
        for store in self.config.stores:
            for customers in (0, *self.config.memory_customers):
                measured = await self.restore_one(store, customers, states)
                if customers:
                    results.append(measured)
                    self.say(
                        f"{store} {customers:,} customers: ready in "
                        f"{measured.seconds_to_ready:.1f} s, rss {measured.rss_kb // 1024} MiB"
                    )
                else:
                    baselines[store] = measured.rss_kb
        return results, baselines

    async def restore_one(
        self, store: str, customers: int, states: list[dict[str, Any]]
    ) -> restore.Restore:
        tag = f"{store.split(':')[0]}{customers}"
        prefix = f"{self.run_id}-{tag}-"
        values = self.values(prefix, "seg", store=store, web_port=str(free_port()))
        settings = load_settings(values)
        await restore.write_changelog(settings, states, customers)
        worker = segstream_worker(clean_env(values), self.home / f"restore-{tag}.log")
        metrics = WorkerMetrics(settings.web_port)
        try:
            measured = await restore.measure(worker, metrics, store, customers, self.config.timeout)
        finally:
            worker.stop()
        try:
            if customers and store == "rocksdb://":
                measured = await self.restart(values, settings, metrics, measured, tag)
        finally:
            await metrics.close()
        if not customers or store != "memory://":
            return measured
        rates = {}
        for mode in ("faust_restore", "segstream_restore"):
            peer = contender(
                mode,
                f"{settings.group_id}-{mode.replace('_', '-')}",
                customers,
                free_port(),
                clean_env(values),
                self.home / f"{mode.replace('_', '-')}-{tag}.log",
            )
            try:
                rates[mode] = (await peer.reported(self.config.timeout)).rate
            finally:
                peer.stop()
            self.say(f"{mode} {customers:,} customers: {rates[mode]:,.0f} keys/s")
        return dataclasses.replace(
            measured,
            faust_keys_per_second=rates["faust_restore"],
            loop_keys_per_second=rates["segstream_restore"],
        )

    async def restart(
        self,
        values: dict[str, str],
        settings: Settings,
        metrics: WorkerMetrics,
        measured: restore.Restore,
        tag: str,
    ) -> restore.Restore:
        """The RocksDB worker, stopped, started again on its own store."""
        await restore.send_probe(settings, 2)
        worker = segstream_worker(clean_env(values), self.home / f"restart-{tag}.log")
        try:
            seconds, restored = await restore.measure_restart(worker, metrics, self.config.timeout)
        finally:
            worker.stop()
        self.say(
            f"{measured.store} {measured.customers:,} customers, restarted: ready in "
            f"{seconds:.1f} s ({restored:,} changelog records replayed)"
        )
        return dataclasses.replace(
            measured, restart_seconds_to_ready=seconds, restart_restored=restored
        )


async def run_bench(
    base: Settings, config: BenchConfig, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run on the configured Kafka and Redis; when neither answers, start the local stack for
    the run (and stop it after)."""
    local = LocalStack.from_settings(base)
    if await local.kafka.ping() and await local.redis.ping():
        return await Bench(base, config, say).run()
    started = await local.start()
    try:
        return await Bench(base, config, say).run()
    finally:
        local.stop(kafka=started["kafka"], redis=started["redis"])
