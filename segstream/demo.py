"""`segstream demo`: the local stack, a worker and a synthetic shop, with changes on screen."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys

import click

from config import Settings, names
from segstream.display import format_change
from streams.timestamps import wall_clock_ms


async def run_demo(settings: Settings, customers: int, rate: float, duration: float | None) -> None:
    from segstream.kafka_clients import follow, send_records
    from segstream.simulator import SyntheticShop
    from segstream.stack import LocalStack
    from streams.layout import ensure_topics

    # Fresh topics make aiokafka log retried, harmless leader errors; keep the screen for changes.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    local = LocalStack.from_settings(settings)
    click.echo("Starting Kafka and Redis (the first run fetches the Kafka jars)...")
    started = await local.start()
    worker_log = settings.stack_dir.resolve() / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        await ensure_topics(settings)
        with worker_log.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "segstream", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        click.echo(f"Worker started (log: {worker_log}).")
        click.echo(f"Dashboard: http://{settings.web_host}:{settings.web_port}/dashboard")
        click.echo("Feeding the synthetic shop; segment changes follow. Ctrl-C stops everything.\n")
        shop = SyntheticShop(customers=customers, clock=wall_clock_ms)

        async def show() -> None:
            async for change in follow(settings, names.SEGMENT_CHANGES):
                click.echo(format_change(change))

        tasks = [
            asyncio.create_task(send_records(settings, shop.events(None), rate)),
            asyncio.create_task(show()),
        ]
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        click.echo("\nStopping...")
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        stopped = local.stop(kafka=started["kafka"], redis=started["redis"])
        click.echo("Stopped: " + (", ".join(n for n, s in stopped.items() if s) or "worker only"))
