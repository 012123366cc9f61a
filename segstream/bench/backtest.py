"""A marketer's backtest: `segstream replay` of the workload's first events as a JSON-lines
history, end to end (the command started, the file read, every change printed, the process
gone), against plain ``orjson.loads`` of the same lines in this process, in the same run."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from config.errors import SegstreamError
from segstream.bench.workload import Record


@dataclass(frozen=True)
class Backtest:
    events: int
    changes: int  # the transitions the replay printed
    seconds: float  # start of the command to its exit
    cpu_seconds: float  # the command's own CPU
    loads_seconds: float  # orjson.loads of the same lines, in the harness
    loads_cpu_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def loads_per_second(self) -> float:
        return self.events / self.loads_seconds if self.loads_seconds else 0.0

    @property
    def ratio(self) -> float:
        """Replay's events per second over orjson.loads' lines per second."""
        return self.events_per_second / self.loads_per_second if self.loads_per_second else 0.0


def write_history(records: Iterable[Record], path: Path) -> int:
    """The records as replay's JSON lines; how many."""
    count = 0
    with path.open("wb") as out:
        for record in records:
            line = {"topic": record.topic, "key": record.key, "value": record.value}
            out.write(orjson.dumps(line) + b"\n")
            count += 1
    return count


def measure(history: Path, events: int, env: dict[str, str], log: Path) -> Backtest:
    lines = history.read_bytes().splitlines()
    started, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        orjson.loads(line)
    loads = (time.perf_counter() - started, time.process_time() - cpu)
    children = _children_cpu()
    started = time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "segstream", "replay", str(history)],
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    seconds = time.perf_counter() - started
    printed = log.read_text(errors="replace").splitlines()
    summary = f"{events} events, "
    if done.returncode or not any(line.startswith(summary) for line in printed):
        raise SegstreamError(f"segstream replay failed (exit {done.returncode}); see {log}.")
    changes = sum(1 for line in printed if "→ enter" in line or "← exit" in line)
    return Backtest(events, changes, seconds, _children_cpu() - children, *loads)


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime
