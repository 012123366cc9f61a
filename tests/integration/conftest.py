"""The real stack for integration tests: Kafka and Redis on free ports, a fresh prefix per test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import Settings, load_settings
from config.errors import StackError
from segstream.stack import LocalStack
from segstream.stack.process import free_port


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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One real Kafka broker and one real Redis for the whole session. Never skipped: a stack
    that does not come up fails the run (after one retry on fresh ports, since a free port
    can be taken by another process between choosing and binding it)."""
    for attempt in (1, 2):
        local = LocalStack.create(
            tmp_path_factory.mktemp("stack"), free_port(), free_port(), controller_port=free_port()
        )
        try:
            asyncio.run(local.start())
            break
        except StackError:
            local.stop()
            if attempt == 2:
                raise
    try:
        yield local
    finally:
        local.stop()


@dataclass
class Deployment:
    """One isolated segstream deployment on the shared stack: its settings and environment."""

    settings: Settings
    env: dict[str, str]
    home: Path


@pytest.fixture
def deployment_factory(stack: LocalStack, tmp_path: Path) -> Callable[..., Deployment]:
    def make(**overrides: str) -> Deployment:
        name = f"t{uuid.uuid4().hex[:10]}"
        home = tmp_path / name
        values = {
            "SEGSTREAM_KAFKA_BOOTSTRAP": stack.kafka.bootstrap,
            "SEGSTREAM_REDIS_URL": stack.redis.url,
            "SEGSTREAM_TOPIC_PREFIX": f"{name}.",
            "SEGSTREAM_PARTITIONS": "3",
            "SEGSTREAM_WEB_PORT": str(free_port()),
            "SEGSTREAM_DATA_DIR": str(home / "data"),
            "SEGSTREAM_STACK_DIR": str(home / "stack"),
        }
        values.update({f"SEGSTREAM_{k.upper()}": v for k, v in overrides.items()})
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")} | values
        return Deployment(load_settings(values), env, home)

    return make


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"worker exited:\n{self.log_tail()}"

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def worker_factory() -> Iterator[Callable[[Deployment], WorkerProcess]]:
    """Starts `segstream worker` processes, as an operator would, and stops them after the test."""
    workers: list[WorkerProcess] = []

    def start(deployment: Deployment) -> WorkerProcess:
        deployment.home.mkdir(parents=True, exist_ok=True)
        log = deployment.home / f"worker-{len(workers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "segstream", "worker"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=deployment.env,
            )
        worker = WorkerProcess(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
