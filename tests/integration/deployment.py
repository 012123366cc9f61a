"""One isolated segstream deployment on the shared stack, and its workers as an operator runs them:
started as `segstream worker`, ready once /health says so, stopped with SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from config import Settings
from segstream.bench.processes import WorkerMetrics
from segstream.stack.process import stop_gracefully, worker_ready
from tests.integration.waiting import poll_until

T = TypeVar("T")
READY_TIMEOUT_S = 150.0
STOP_GRACE_S = 60.0


def run_segstream(
    env: dict[str, str], *args: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """Run the `segstream` command as a user would, with the given environment."""
    return subprocess.run(
        [sys.executable, "-m", "segstream", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Deployment:
    """One isolated segstream deployment on the shared stack: its settings and environment."""

    settings: Settings
    env: dict[str, str]
    home: Path


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path
    web_port: int

    @classmethod
    def start(
        cls, deployment: Deployment, log: Path, argv: list[str] | None = None
    ) -> WorkerProcess:
        """`segstream worker` (or ``argv``) in the deployment's environment, logging to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv or [sys.executable, "-m", "segstream", "worker"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=deployment.env,
            )
        return cls(process, log, deployment.settings.web_port)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"worker exited:\n{self.log_tail()}"

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        """SIGTERM, a minute to exit, then SIGKILL; the exit status."""
        return stop_gracefully(self.process, STOP_GRACE_S)

    async def until(
        self,
        condition: Callable[[], Awaitable[T] | T],
        what: str,
        timeout: float = 90.0,
        interval: float = 0.2,
        detail: Callable[[], Any] | None = None,
    ) -> T:
        """``poll_until`` while this worker runs; a failure shows the end of its log."""

        def said() -> str:
            return (f"{detail()}\n" if detail is not None else "") + self.log_tail()

        return await poll_until(condition, what, timeout, interval, self.assert_running, said)

    async def until_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until /health says ready: the worker holds its partitions and has recovered their
        tables (its web server answers before that)."""
        url = f"http://127.0.0.1:{self.web_port}/health"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            await self.until(
                lambda: worker_ready(session, url), "/health saying ready", timeout, 0.5
            )

    async def until_processed(self, metrics: WorkerMetrics, at_least: int) -> None:
        """Until the worker's metrics count ``at_least`` records applied or dead-lettered."""

        async def counted() -> bool:
            return await metrics.processed() >= at_least

        await self.until(counted, f"{at_least} events processed", interval=0.1)
