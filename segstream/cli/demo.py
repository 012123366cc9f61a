"""`segstream demo`: the local stack, a worker and a synthetic shop, with changes on screen.

The demo owns what it starts: it watches the worker (a worker that exits ends the demo with its
last log lines), and however it is stopped (Ctrl-C, SIGTERM, the terminal closing, --duration)
it stops the worker and whichever of Kafka and Redis it started, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import click

from config import Settings, names
from config.errors import StackError
from config.settings import env_name
from segstream.cli.display import format_change, format_trigger
from segstream.stack.process import poll, stop_gracefully, worker_ready
from streams.timestamps import wall_clock_ms

if TYPE_CHECKING:
    from segstream.stack import LocalStack

# Short enough that cart abandoners and their trigger show up while one watches.
DEMO_CART_QUIET_MINUTES = "2"
READY_TIMEOUT_S = 180.0
WORKER_STOP_TIMEOUT_S = 60.0
LOG_LINES_SHOWN = 15
PR_SET_PDEATHSIG = 1


class DemoStopped(Exception):
    """The demo cannot go on; the message says why (and the exit status is 1)."""


class Screen:
    """The demo's output. A reader that went away (a closed pipe, a closed terminal) is not an
    error: lines for it are dropped, and status lines go to stderr if that still works, else to
    the controlling terminal (`demo 2>&1 | tee log` loses both to a Ctrl-C that ends tee)."""

    def __init__(self) -> None:
        self.out_ok = True
        self.err_ok = True
        self.tty_ok = True

    def line(self, text: str) -> None:
        """A segment change or a trigger: stdout only."""
        if self.out_ok:
            self.out_ok = _write(sys.stdout, text)

    def status(self, text: str) -> None:
        """What the demo is doing: stdout, or stderr once stdout has gone."""
        if self.out_ok:
            self.out_ok = _write(sys.stdout, text)
            if self.out_ok:
                return
        if self.err_ok:
            self.err_ok = _write(sys.stderr, text)
            if self.err_ok:
                return
        if self.tty_ok:
            self.tty_ok = _write_tty(text)


def _write_tty(text: str) -> bool:
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(text + "\n")
        return True
    except OSError:  # no controlling terminal (a service, CI), or it has gone
        return False


def _write(stream: IO[str], text: str) -> bool:
    try:
        click.echo(text, file=stream)
        stream.flush()
        return True
    except OSError:  # BrokenPipeError from `| tee` after Ctrl-C, EIO from a closed terminal
        with contextlib.suppress(OSError, ValueError):
            # Point the dead descriptor at /dev/null, so that the interpreter's last flush at
            # exit does not print a BrokenPipeError either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        return False


class Worker:
    """The demo's `segstream worker` child, logging to the stack's worker.log."""

    def __init__(self, settings: Settings) -> None:
        self.log_file = settings.stack_dir.resolve() / "worker.log"
        self.pid_file = settings.stack_dir.resolve() / "worker.pid"
        self.health_url = f"http://{settings.web_host}:{settings.web_port}/health"
        self.metrics_url = f"http://{settings.web_host}:{settings.web_port}/metrics"
        self._log_start = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = os.environ.copy()
        env.setdefault(env_name("cart_quiet_minutes"), DEMO_CART_QUIET_MINUTES)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "segstream", "worker"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C or hang-up reaches the demo, which stops the worker
                # in order; the death signal stops it should the demo itself be killed.
                start_new_session=True,
                preexec_fn=_death_signal(),
            )
        self.pid_file.write_text(str(self.process.pid))

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self) -> str:
        """This run's last lines of the worker's log."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_start)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return "  (no worker log)"
        shown = [line for line in lines if line.strip()][-LOG_LINES_SHOWN:]
        return "\n".join(f"  {line}" for line in shown) or "  (the worker's log is empty)"

    def exited(self) -> DemoStopped:
        return DemoStopped(
            f"The worker exited (status {self.exit_code}). The end of {self.log_file}:\n"
            + self.log_tail()
        )

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Until the worker's /health says ready (see ``worker_ready``)."""
        if not await poll(
            lambda: worker_ready(session, self.health_url), READY_TIMEOUT_S, 0.5, self._running
        ):
            raise DemoStopped(
                f"The worker was not ready after {READY_TIMEOUT_S:.0f} s. The end of "
                f"{self.log_file}:\n{self.log_tail()}"
            )

    def _running(self) -> None:
        if self.exit_code is not None:
            raise self.exited()

    async def watch(self) -> None:
        """Returns never; raises once the worker exits."""
        while self.exit_code is None:
            await asyncio.sleep(0.5)
        raise self.exited()

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL after a minute; False if it was not running."""
        self.pid_file.unlink(missing_ok=True)
        if self.process is None or self.process.poll() is not None:
            return False
        stop_gracefully(self.process, WORKER_STOP_TIMEOUT_S, group=True)
        return True


def _death_signal() -> Callable[[], None] | None:
    """What the worker's process runs before exec: ask for SIGTERM when the demo's process dies
    (Linux). Looked up here, in the parent, so the child only makes the call."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    demo = os.getpid()

    def ask() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != demo:  # the demo died before the request: nobody would stop us
            os._exit(1)

    return ask


async def follow_into(
    settings: Settings, topic: str, show: Callable[[str], None], positioned: asyncio.Event
) -> None:
    from streams.kafka_clients import follow

    shown = format_change if topic == names.SEGMENT_CHANGES else format_trigger
    async for record in follow(settings, topic, positioned=positioned):
        show(shown(record))


async def show_reevaluation(session: aiohttp.ClientSession, worker: Worker, screen: Screen) -> None:
    """The worker's re-evaluation of stored customers after a definition change, as it goes."""
    last: tuple[int, int] | None = None
    while True:
        await asyncio.sleep(1.0)
        try:
            async with session.get(worker.metrics_url) as answer:
                text = await answer.text()
        except (TimeoutError, aiohttp.ClientError):
            continue
        total = _gauge(text, "segstream_catalog_reevaluation_customers")
        done = _gauge(text, "segstream_catalog_reevaluation_done")
        if total and (done, total) != last:
            state = "done" if done >= total else "in progress"
            screen.status(
                f"Segment definitions changed: re-evaluated {done} of {total} stored "
                f"customers ({state})"
            )
            last = (done, total)


def _gauge(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


async def run_demo(settings: Settings, customers: int, rate: float, duration: float | None) -> int:
    """Run the demo until --duration, a signal or a failure; return the exit status."""
    from segstream.stack import LocalStack

    # Fresh topics make aiokafka log retried, harmless leader errors; keep the screen for changes.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    screen = Screen()
    local = LocalStack.from_settings(settings)
    worker = Worker(settings)
    running_before = {"kafka": local.kafka.process.pid, "redis": local.redis.process.pid}
    main = asyncio.current_task()
    assert main is not None
    stopped_by: list[str] = []

    def on_signal(signum: int) -> None:
        if stopped_by:
            return  # already stopping; the clean-up runs to its end
        stopped_by.append(signal.Signals(signum).name)
        main.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    status = 0
    try:
        await _run(settings, local, worker, screen, customers, rate, duration)
    except (asyncio.CancelledError, StackError):
        # A Ctrl-C during a blocking start-up step (the first run's Maven fetch) also stops
        # that step's child, which then reports failure: the signal is the news, not that.
        if not stopped_by:
            raise
        screen.status(f"\n{stopped_by[0]} received.")
    except DemoStopped as exc:
        screen.status(f"\n{exc}")
        status = 1
    finally:
        screen.status("Stopping...")
        stopped = ["worker"] if worker.stop() else []
        started_here = {name: pid is None for name, pid in running_before.items()}
        for name, was_running in local.stop(**started_here).items():
            if was_running:
                stopped.append({"kafka": "Kafka", "redis": "Redis"}[name])
        kept = [name for name, started in started_here.items() if not started]
        note = f" ({' and '.join(kept)} ran before the demo and keep running)" if kept else ""
        screen.status("Stopped: " + (", ".join(stopped) or "nothing") + note + ".")
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    return status


async def _run(
    settings: Settings,
    local: LocalStack,
    worker: Worker,
    screen: Screen,
    customers: int,
    rate: float,
    duration: float | None,
) -> None:
    from segstream.offline.simulator import SyntheticShop, new_run_id
    from streams.kafka_clients import send_records
    from streams.layout import ensure_topics

    screen.status("Starting Kafka and Redis (the first run fetches the Kafka jars)...")
    await local.start()
    await ensure_topics(settings)
    worker.start()
    screen.status("Starting the worker...")
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await worker.wait_ready(session)
        quiet = os.environ.get(env_name("cart_quiet_minutes"), DEMO_CART_QUIET_MINUTES)
        screen.status(f"Worker ready (log: {worker.log_file}).")
        screen.status(f"Dashboard: http://{settings.web_host}:{settings.web_port}/dashboard")
        screen.status(
            f"Feeding the synthetic shop ({customers} customers, {rate:g} events/s; carts count "
            f"as abandoned after {quiet} quiet minutes). Segment changes and triggers follow; "
            "Ctrl-C stops everything.\n"
        )
        followers = {names.SEGMENT_CHANGES: asyncio.Event(), names.TRIGGERS: asyncio.Event()}
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(worker.watch()),
            asyncio.create_task(show_reevaluation(session, worker, screen)),
            *(
                asyncio.create_task(follow_into(settings, topic, screen.line, positioned))
                for topic, positioned in followers.items()
            ),
        ]
        try:
            # The followers start at the newest records: the first event waits until they stand.
            standing = asyncio.create_task(_all_set(followers.values()))
            await asyncio.wait([standing, *tasks], return_when=asyncio.FIRST_COMPLETED)
            standing.cancel()
            for task in tasks:
                if task.done():
                    task.result()
            shop = SyntheticShop(customers=customers, run_id=new_run_id(), clock=wall_clock_ms)
            tasks.append(asyncio.create_task(send_records(settings, shop.events(None), rate)))
            done, _ = await asyncio.wait(
                tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                task.result()
            if duration is not None:
                screen.status(f"\n{duration:g} s are up.")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _all_set(events: Iterable[asyncio.Event]) -> None:
    for event in events:
        await event.wait()
