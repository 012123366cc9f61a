"""Backtests started through the API: a draft segment run over the retained input topics by
the offline engine, beside the live definition of the same name, day by day.

Each runs as `segstream replay --from-kafka --by-day --json` in a process of its own, so the
worker's event loop keeps processing events; its progress (records read, then the replay) is
read from that process, and cancelling it kills the process. Backtests live on the worker
that started them, in memory, the latest ``KEPT`` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.definitions import Live

KEPT = 20
READ = re.compile(rb"Reading the input topics: ([\d,]+) records")


def draft_name(name: str, taken: Mapping[str, Any]) -> str:
    """A name for the draft beside the live segment (never one that is taken)."""
    base = f"draft_{name}"[:60]
    candidate, n = base, 1
    while candidate in taken:
        candidate, n = f"{base}{n}", n + 1
    return candidate


@dataclass
class Backtest:
    id: str
    name: str
    since: str
    started_at: int
    state: str = "running"  # running, done, failed, cancelled
    records_read: int = 0
    phase: str = "reading the input topics"
    result: dict[str, Any] | None = None
    error: str | None = None
    finished_at: int | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    task: asyncio.Future[None] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "since": self.since,
            "state": self.state,
            "phase": self.phase,
            "records_read": self.records_read,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "result": self.result,
        }


class Backtests:
    def __init__(self) -> None:
        self.runs: dict[str, Backtest] = {}

    def busy(self) -> bool:
        """A backtest runs already: each holds the history it reads in memory, so one runs at a
        time per worker."""
        return any(run.state == "running" for run in self.runs.values())

    def start(
        self, name: str, body: Mapping[str, Any], since: str, running: Live, now: int
    ) -> Backtest:
        """Start a backtest of ``body`` as segment ``name`` beside the ``running`` ones."""
        bodies = dict(running.bodies())
        draft = draft_name(name, bodies)
        bodies[draft] = dict(body)
        document = {
            "segments": bodies,
            **({"traits": dict(running.traits)} if running.traits else {}),
        }
        run = Backtest(uuid.uuid4().hex[:12], name, since, now)
        self.runs[run.id] = run
        for old in list(self.runs)[:-KEPT]:
            if self.runs[old].state != "running":
                del self.runs[old]
        run.task = asyncio.ensure_future(
            self._run(run, document, draft, name in running.definitions)
        )
        return run

    def cancel(self, run: Backtest) -> None:
        if run.state == "running" and run.process is not None:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()
        if run.state == "running":
            run.state, run.finished_at = "cancelled", int(time.time() * 1000)

    async def _run(self, run: Backtest, document: dict[str, Any], draft: str, live: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="segstream-backtest-") as folder:
            catalog = Path(folder) / "catalog.json"  # JSON is YAML: the catalog loader reads it
            catalog.write_bytes(orjson.dumps(document))
            argv = ["replay", "--from-kafka", "--since", run.since, "--by-day", "--json"]
            try:
                run.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "segstream",
                    *argv,
                    "--segments",
                    str(catalog),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                if run.state == "cancelled":  # cancelled while the process started
                    run.process.kill()
                output, errors = await self._follow(run, run.process)
            except Exception as exc:  # the process could not start: the backtest failed
                output, errors = b"", repr(exc).encode()
            finally:  # the worker stopping cancels this task: the process goes with it
                if run.process is not None and run.process.returncode is None:
                    run.process.kill()
        if run.state == "cancelled":
            return
        run.finished_at = int(time.time() * 1000)
        try:
            if run.process is None or run.process.returncode != 0:
                raise ValueError(_last_line(errors) or "the backtest process failed")
            found = orjson.loads(output)
            days = found["segments"]
            run.result = {
                "events": found["events"],
                "draft": days.get(draft, []),
                "live": days.get(run.name, []) if live else None,
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            run.state, run.error = "failed", str(exc)
            return
        run.state, run.phase = "done", "done"

    async def _follow(
        self, run: Backtest, process: asyncio.subprocess.Process
    ) -> tuple[bytes, bytes]:
        """The process's output, reading its progress from stderr as it goes."""
        assert process.stdout is not None and process.stderr is not None
        reading = asyncio.ensure_future(process.stdout.read())
        errors = b""
        while chunk := await process.stderr.read(4096):
            errors += chunk
            found = READ.findall(errors[-4096:])
            if found:
                run.records_read = int(found[-1].replace(b",", b""))
            if b"Read " in chunk and b"records from the input topics" in chunk:
                run.phase = "replaying"
        await process.wait()
        return await reading, errors


def _last_line(errors: bytes) -> str:
    lines = [line for line in errors.decode(errors="replace").replace("\r", "\n").splitlines()]
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


backtests = Backtests()
