"""The producer buffer's flush waits for every record put before it, however slow a send is."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from segstream.faust_patches.producer_buffer import FlushToEndProducerBuffer
from segstream.stack.process import poll

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

    async def all_sent() -> bool:
        return len(channel.sent) >= records

    assert await poll(all_sent, timeout=30, interval=0.05), f"{len(channel.sent)} of {records} sent"
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


async def test_flush_returns_once_every_record_is_sent() -> None:
    assert await flushed(FlushToEndProducerBuffer(), 3) == 3


async def test_flush_does_not_wait_for_records_put_after_it() -> None:
    channel = SlowChannel()
    buffer = await started(FlushToEndProducerBuffer())
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
    buffer = await started(FlushToEndProducerBuffer())
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


class Channel(SlowChannel):
    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        self.sent.append(fut)


async def test_a_record_put_after_a_delivery_holds_up_no_other_record_and_flush_waits_for_it() -> (
    None
):
    channel = Channel()
    buffer = await started(FlushToEndProducerBuffer())
    state, output, other = record(channel), record(channel), record(channel)
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    buffer.put(state)
    buffer.put_after(output, delivery)
    buffer.put(other)
    flush = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0.05)
    assert channel.sent == [state, other]
    assert not flush.done()
    delivery.set_result(None)
    await flush
    assert channel.sent == [state, other, output]
    await stopped(buffer, channel, 3)


async def test_records_put_after_deliveries_leave_in_the_order_given() -> None:
    channel = Channel()
    buffer = await started(FlushToEndProducerBuffer())
    loop = asyncio.get_running_loop()
    deliveries = [loop.create_future() for _ in range(2)]
    outputs = [record(channel) for _ in deliveries]
    for output, delivery in zip(outputs, deliveries, strict=True):
        buffer.put_after(output, delivery)
    deliveries[1].set_result(None)
    await asyncio.sleep(0.05)
    assert channel.sent == []
    deliveries[0].set_result(None)
    await buffer.flush()
    assert channel.sent == outputs
    await stopped(buffer, channel, 2)
