"""What an unexpected exception on a record does. Bad input is not a bug: it raises InvalidEvent
and goes to dead-letters with its reason. Anything else is a bug in segstream, and the policy
(``SEGSTREAM_ON_INTERNAL_ERROR``, in the shape of quix-streams' error callbacks) decides:

- ``dead_letter`` (the default): count it, log it with its traceback, dead-letter the record
  with reason ``internal error: <type>`` so nothing is lost, and go on with the next record;
- ``stop``: count it, log it, and stop the worker without acknowledging the record, so that a
  fixed worker processes it again.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from faust.types import Message

from config.errors import InternalFailure
from segstream.app import app
from serving import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InternalError:
    """A record that failed for a reason other than bad input."""

    topic: str
    partition: int
    offset: int
    error: BaseException

    @property
    def reason(self) -> str:
        """The dead-letter reason: the type only, since a message can quote the record."""
        return f"internal error: {type(self.error).__name__}"

    def stopped(self) -> str:
        return (
            f"Stopped on an internal error ({type(self.error).__name__}) at "
            f"{self.topic}[{self.partition}]@{self.offset}, left unacknowledged "
            "(SEGSTREAM_ON_INTERNAL_ERROR=stop)."
        )


# Returns True to go on (the record is dead-lettered), False to stop the worker.
ErrorPolicy = Callable[[InternalError], bool]


def dead_letter_and_go_on(failure: InternalError) -> bool:
    return True


def stop_the_worker(failure: InternalError) -> bool:
    return False


POLICIES: dict[str, ErrorPolicy] = {"dead_letter": dead_letter_and_go_on, "stop": stop_the_worker}


def report(failure: InternalError) -> None:
    """Count and log a bug: the traceback, never the exception's message (it may quote personal
    data from the record)."""
    name = type(failure.error).__name__
    metrics.internal_errors.labels(failure.topic, name).inc()
    frames = "".join(traceback.format_tb(failure.error.__traceback__)).rstrip()
    log.error(
        "Internal error (%s) on %s[%d]@%d; traceback (message withheld):\n%s",
        name,
        failure.topic,
        failure.partition,
        failure.offset,
        frames,
    )


async def stop_unacknowledged(failure: InternalError, messages: list[Message]) -> None:
    """Stop the worker (it exits 1) with the records let go unacknowledged: no commit goes
    past them, and the next worker to read their partitions processes them again."""
    app.let_go(messages)
    app.stop_worker(InternalFailure(failure.stopped()))
    await asyncio.Event().wait()  # cancelled as the worker stops
