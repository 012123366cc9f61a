"""Contender processes for the harness: start one, learn when it has processed everything."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from config.errors import SegstreamError
from segstream.stack.process import poll, resident_kb, stop_gracefully, worker_ready
from streams import codec

POLL_S = 0.1
STOP_GRACE_S = 60.0


@dataclass(frozen=True)
class Run:
    """One contender's pass over the workload."""

    events: int
    seconds: float
    rss_kb: int
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Contender:
    """A process the harness started; its output goes to a log file in the run's directory."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.started = time.perf_counter()
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise SegstreamError(
                f"{self.log.stem} exited early ({self.process.returncode}):\n{tail}"
            )

    def stop(self, kill: bool = False) -> None:
        """SIGTERM and a minute to exit before SIGKILL; or, with ``kill``, SIGKILL at once."""
        if kill:
            self.process.kill()
            self.process.wait()
        else:
            stop_gracefully(self.process, STOP_GRACE_S)

    def resident_kb(self) -> int:
        return resident_kb(self.process.pid)

    async def reported(self, timeout: float) -> Run:
        """The JSON line a contender of `segstream.bench.contenders` prints when done."""

        async def printed() -> Run | None:
            for line in self.log.read_text(errors="replace").splitlines():
                start = line.find('{"events"')
                if start >= 0:
                    return Run(**codec.loads(line[start:]))
            return None

        run = await poll(printed, timeout, POLL_S, alive=self.check_alive)
        if run is None:
            raise SegstreamError(f"{self.log.stem} did not finish within {timeout:.0f}s")
        return run


def contender(
    mode: str, group: str, expected: int, web_port: int, env: dict[str, str], log: Path
) -> Contender:
    argv = [
        sys.executable,
        "-m",
        "segstream.bench.contenders",
        mode,
        group,
        str(expected),
        str(web_port),
    ]
    return Contender(argv, env, log)


def segstream_worker(env: dict[str, str], log: Path) -> Contender:
    return Contender([sys.executable, "-m", "segstream", "worker"], env, log)


class WorkerMetrics:
    """Reads a worker's /metrics: its counters tell what it has processed."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))

    async def close(self) -> None:
        await self.session.close()

    async def samples(self) -> dict[str, float]:
        """Every sample, named as exposed (with its labels); empty while unreachable."""
        try:
            async with self.session.get(self.url) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found

    async def read(self) -> dict[str, float]:
        """Every sample summed over its labels, by metric name; empty while unreachable."""
        totals: dict[str, float] = {}
        for name, value in (await self.samples()).items():
            metric = name.split("{", 1)[0]
            totals[metric] = totals.get(metric, 0.0) + value
        return totals

    async def processed(self) -> float:
        """Input records applied or dead-lettered so far (-1 while unreachable)."""
        totals = await self.read()
        if not totals:
            return -1
        return totals.get("segstream_events_applied_total", 0.0) + totals.get(
            "segstream_events_dead_lettered_total", 0.0
        )

    async def until_idle(self, worker: Contender, timeout: float, quiet_s: float = 6.0) -> None:
        """Wait until the worker has nothing left to do: no input lag, no overdue deadline,
        nothing newly processed for ``quiet_s`` (its gauges refresh every few seconds)."""
        last, since = -1.0, time.monotonic()

        async def idle() -> bool:
            nonlocal last, since
            totals = await self.read()
            done = totals.get("segstream_events_applied_total", 0.0)
            busy = totals.get("segstream_consumer_lag", 0.0) + totals.get(
                "segstream_deadlines_overdue", 0.0
            )
            if done != last or busy:
                last, since = done, time.monotonic()
                return False
            return time.monotonic() - since >= quiet_s

        if not await poll(idle, timeout, 0.5, alive=worker.check_alive):
            raise SegstreamError(f"the worker did not become idle within {timeout:.0f}s")

    async def until_ready(self, worker: Contender, timeout: float) -> None:
        """Wait until the worker's /health says ready (partitions held, tables recovered)."""
        health = self.url.removesuffix("/metrics") + "/health"

        async def ready() -> bool:
            return await worker_ready(self.session, health)

        if not await poll(ready, timeout, 0.5, alive=worker.check_alive):
            raise SegstreamError(f"the worker was not ready within {timeout:.0f}s")

    async def until_processed(self, worker: Contender, expected: int, timeout: float) -> Run:
        """Poll until ``expected`` records are processed; time from the first one seen."""
        first: tuple[float, float] | None = None  # when the first record was seen, CPU used then

        async def processed() -> Run | None:
            nonlocal first
            done = await self.processed()
            now = time.perf_counter()
            if done > 0 and first is None:
                first = now, cpu_seconds(worker.process.pid)
            if done >= expected and first is not None:
                cpu = cpu_seconds(worker.process.pid) - first[1]
                return Run(int(done), now - first[0], worker.resident_kb(), cpu)
            return None

        run = await poll(processed, timeout, POLL_S, alive=worker.check_alive)
        if run is None:
            raise SegstreamError(
                f"the worker did not process {expected} events within {timeout:.0f}s"
            )
        return run


def clean_env(values: dict[str, str]) -> dict[str, str]:
    """This process's environment without any SEGSTREAM_ setting, plus ``values``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")} | values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
