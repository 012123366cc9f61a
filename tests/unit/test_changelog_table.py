"""A table's ``put`` hands back the changelog record its assignment queued, not another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In its own process: a Faust app owns an event loop for its lifetime. Each record the agent
# handles is put in the table, then another record is sent after it through the same buffer.
PUT_IN_AGENT = """
import asyncio
from typing import cast

from segstream.faust_patches.app import SegstreamApp
from segstream.faust_patches.changelog import ChangelogRecordTable

app = SegstreamApp("put-test", broker="kafka://127.0.0.1:9", store="memory://")
table = cast(ChangelogRecordTable, app.Table("states", key_type=str, value_type=bytes))
source = app.topic("source", key_type=str, value_type=bytes)
other = app.topic("other", key_type=str, value_type=bytes)
returned = []


@app.agent(source)
async def store(stream):
    async for key, value in stream.items():
        returned.append(table.put(key, value))
        other.send_soon(key=key, value=b"output")


async def main():
    async with store.test_context() as agent:
        for key, value in (("a", b"1"), ("b", b"2")):
            await agent.put(key=key, value=value)
    buffered = []
    while not app.producer_buffer.pending.empty():
        buffered.append(app.producer_buffer.pending.get_nowait())
    changelog = table.changelog_topic.get_topic_name()
    for fut in returned:
        topic = fut.message.channel.get_topic_name()
        print(topic == changelog, fut.message.value.decode(), fut in buffered)
    print(len(buffered), table["a"].decode(), table["b"].decode())


asyncio.run(main())
"""


def test_put_returns_the_changelog_record_it_queued() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", PUT_IN_AGENT],
        env={"PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.splitlines() == ["True 1 True", "True 2 True", "4 1 2"]
