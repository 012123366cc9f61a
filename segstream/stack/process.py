"""A server process of the local stack: started detached, found by its pid file, stopped cleanly.
Also what every caller of a child process needs: poll until something holds (a worker's /health
saying ready, say), and stop a process (SIGTERM, a grace period, then SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from config.errors import StackError

T = TypeVar("T")


def require(program: str, install_hint: str) -> str:
    """The path of ``program``, or a StackError saying what to install."""
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{program} is not installed: {install_hint}.")
    return path


def require_free(port: int, server: str, setting: str, note: str = "") -> None:
    """A StackError if something listens on ``port`` already: a server that is not this stack's
    would answer in its place (a developer's own Redis taking the demo's keys, another Kafka)."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        # (A probe of a free port in the ephemeral range can connect to itself.)
        taken = sock.connect_ex(("127.0.0.1", port)) == 0 and (
            sock.getsockname() != sock.getpeername()
        )
    if taken:
        raise StackError(
            f"port {port}, where {server} should start, is taken by another process: "
            f"stop it, or set {setting} to a free port{note}."
        )


def free_port() -> int:
    """A TCP port nothing listens on right now (for a server, a worker's web port, a test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resident_kb(pid: int) -> int:
    """A process's resident memory (VmRSS) in KiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def poll(
    condition: Callable[[], Awaitable[T]],
    timeout: float | None,
    interval: float = 0.2,
    alive: Callable[[], object] | None = None,
) -> T | None:
    """Await ``condition`` every ``interval`` seconds until it returns something truthy, which is
    returned; None once ``timeout`` seconds have passed (None: never). ``alive`` runs after each
    miss and raises to give up early (the process that should make the condition true has
    exited)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = await condition()
        if found:
            return found
        if alive is not None:
            alive()
        if deadline is not None and time.monotonic() >= deadline:
            return None
        await asyncio.sleep(interval)


async def worker_ready(session: aiohttp.ClientSession, health_url: str) -> bool:
    """Whether a segstream worker's /health says ready: it holds its partitions and has
    recovered their tables (its web server answers before that). False while it does not
    answer."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with session.get(health_url) as answer:
            return answer.status == 200 and (await answer.json()).get("ready") is True
    return False


def stop_gracefully(process: subprocess.Popen[Any], grace: float, group: bool = False) -> int:
    """SIGTERM (to the process's group if ``group``: one it leads, started in a session of its
    own), up to ``grace`` seconds to exit, then SIGKILL; its exit status. A process that has
    already exited is only reaped."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM, group)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group)
    return process.wait()


def stop_by_pid(pid: int, grace: float) -> None:
    """``stop_gracefully`` for the group of a process this one did not start (so cannot reap):
    SIGTERM, up to ``grace`` seconds to be gone, then SIGKILL until it is."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        if _gone_within(pid, wait):
            return


def _gone_within(pid: int, timeout: float | None) -> bool:
    """Whether the process is gone within ``timeout`` seconds (None: waits until it is)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while _alive(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal(process: subprocess.Popen[Any], signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:  # exited between the look and the signal
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


class ServerProcess:
    """One long-running server with a pid file and a log file under ``home``."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home
        self.pid_file = home / f"{name}.pid"
        self.log_file = home / f"{name}.log"
        # Kept while this process owns the child, so that it is reaped when it stops.
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) and self._runs_here(pid) else None

    def _runs_here(self, pid: int) -> bool:
        """Whether the process is this server (it runs in its home, where ``launch`` starts it:
        servers rewrite their command lines) and not another that got the number of a stale
        pid file (after a reboot, say). A child this process launched is."""
        if self._child is not None and self._child.pid == pid:
            return True
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")) == self.home.resolve()
        except FileNotFoundError:  # gone meanwhile
            return False
        except OSError:  # no /proc, or not ours to look at: the pid file is all there is
            return True

    def launch(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                env=env,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        self._child = process
        return process.pid

    async def wait_ready(self, probe: Callable[[], Awaitable[bool]], timeout: float) -> None:
        """Poll ``probe`` (a protocol call) until it answers, the process dies or time is up."""
        if not await poll(probe, timeout, alive=self._running):
            raise StackError(
                f"{self.name} did not become ready in {timeout:.0f}s; see {self.log_file}."
            )

    def _running(self) -> None:
        if self.pid is None:
            raise StackError(
                f"{self.name} exited during start-up ({self.log_tail()}); see {self.log_file}."
            )

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "no log"
        return " / ".join(line.strip() for line in text[-lines:]) or "empty log"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server (TERM, then KILL after ``timeout``); False if it was not running."""
        pid = self.pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        if self._child is not None and self._child.pid == pid:
            stop_gracefully(self._child, timeout, group=True)
            self._child = None
        else:  # started by another segstream process: watched by its pid, not ours to reap
            stop_by_pid(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True
