"""The real stack for integration tests: Kafka and Redis on free ports, a fresh prefix per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from config import load_settings
from config.errors import StackError
from segstream.stack import LocalStack
from segstream.stack.process import free_port
from tests.integration.api_client import TOKEN, Api
from tests.integration.deployment import Deployment, WorkerProcess


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


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., WorkerProcess]]:
    """Starts `segstream worker` processes (or ``argv``, a stand-in for one), as an operator
    would, and stops them after the test."""
    workers: list[WorkerProcess] = []

    def start(deployment: Deployment, argv: list[str] | None = None) -> WorkerProcess:
        log = deployment.home / f"worker-{len(workers)}.log"
        worker = WorkerProcess.start(deployment, log, argv)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
async def api(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> AsyncIterator[Api]:
    """A ready worker whose HTTP API needs ``TOKEN``, and a client for it."""
    deployment = deployment_factory(api_token=TOKEN)
    worker = worker_factory(deployment)
    await worker.until_ready()
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{deployment.settings.web_port}", deployment)
