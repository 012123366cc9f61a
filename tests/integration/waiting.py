"""Waiting in integration tests: poll until a condition holds, or fail naming what was awaited.
(Stopping a process, SIGTERM then SIGKILL, is ``segstream.stack.process.stop_gracefully``.)"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from segstream.stack.process import poll

T = TypeVar("T")


async def poll_until(
    condition: Callable[[], Awaitable[T] | T],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
    alive: Callable[[], object] | None = None,
    detail: Callable[[], Any] | None = None,
) -> T:
    """The first truthy answer of ``condition`` (a plain or an async function), asked every
    ``interval`` seconds. After ``timeout`` seconds an AssertionError says that ``what`` did not
    happen, followed by ``detail()`` (the last thing seen, a log's end). ``alive`` runs after
    each miss and raises to give up early."""

    async def attempt() -> T:
        found = condition()
        return await found if inspect.isawaitable(found) else found

    found = await poll(attempt, timeout, interval, alive)
    if not found:
        said = f"{what}: not within {timeout:g} s"
        raise AssertionError(f"{said}\n{detail()}" if detail is not None else said)
    return found


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
    alive: Callable[[], object] | None = None,
    detail: Callable[[], Any] | None = None,
) -> T:
    """``poll_until`` for a test without an event loop of its own."""
    return asyncio.run(poll_until(condition, what, timeout, interval, alive, detail))
