"""The producer buffer's flush waits for every record put before it, however slow a send is."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from segstream.flushing import DrainingProducerBuffer

SLOW_SEND_S = 0.3  # a loaded machine's pause: longer than the 0.1 s Faust's flush waits


class SlowChannel:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(SLOW_SEND_S)
        self.sent.append(fut)


async def started(buffer: ProducerBuffer) -> ProducerBuffer:
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


async def stopped(buffer: ProducerBuffer, channel: SlowChannel, records: int) -> None:
    """Stop once every record is sent (a buffer stopped with records in it raises)."""
    while len(channel.sent) < records:
        await asyncio.sleep(0.05)
    await buffer.stop()


def record(channel: SlowChannel) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=channel))


async def flushed(buffer: ProducerBuffer, records: int) -> int:
    """How many of ``records`` were sent when flush returned."""
    channel = SlowChannel()
    await started(buffer)
    for _ in range(records):
        buffer.put(record(channel))
    await buffer.flush()
    sent = len(channel.sent)
    await stopped(buffer, channel, records)
    return sent


async def test_faust_flush_returns_with_records_unsent() -> None:
    # The defect this module works around (faust-streaming 0.15.3).
    assert await flushed(ProducerBuffer(), 3) < 3


async def test_draining_flush_returns_once_every_record_is_sent() -> None:
    assert await flushed(DrainingProducerBuffer(), 3) == 3


async def test_draining_flush_does_not_wait_for_records_put_after_it() -> None:
    channel = SlowChannel()
    buffer = await started(DrainingProducerBuffer())
    buffer.put(record(channel))
    flush = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0)
    for _ in range(3):
        buffer.put(record(channel))
    await flush
    assert len(channel.sent) == 1
    await stopped(buffer, channel, 4)


async def test_concurrent_flushes_each_return_once_their_own_records_are_sent() -> None:
    channel = SlowChannel()
    buffer = await started(DrainingProducerBuffer())
    buffer.put(record(channel))
    first = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0)
    for _ in range(2):
        buffer.put(record(channel))
    second = asyncio.ensure_future(buffer.flush())
    await first
    assert len(channel.sent) == 1
    await second
    assert len(channel.sent) == 3
    await stopped(buffer, channel, 3)
