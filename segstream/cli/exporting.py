"""`segstream export SEGMENT FILE`: a segment's members (or its audience for a campaign) as CSV
for an email tool's upload, streamed from a running worker's API (``serving.audience``) into
FILE in constant memory, with a progress bar (or progress lines without a terminal). The file
appears only once complete: an interrupted export leaves FILE as it was."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import aiohttp

from config import Settings
from config.errors import SegstreamError
from segstream.cli.progress import Progress
from streams import codec

CHUNK = 64 * 1024


class ExportError(SegstreamError):
    """The worker refused or could not be reached."""


async def run_export(settings: Settings, segment: str, path: Path, campaign: str | None) -> int:
    """Write the CSV; return how many members it holds."""
    base = f"http://{settings.web_host}:{settings.web_port}/v1/segments/{quote(segment, safe='')}"
    token = settings.api_token.get_secret_value() if settings.api_token else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {} if campaign is None else {"audience": campaign}
    partial = path.with_name(path.name + ".partial")
    written = 0
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            size = await _size(session, base)
            progress = Progress(f"Exporting {segment}", size, lambda s: f"{written:,} members")
            async with session.get(f"{base}/members.csv", params=params) as answer:
                if answer.status != 200:
                    raise ExportError(
                        f"the worker answered {answer.status}: {await _reason(answer)}"
                    )
                with partial.open("wb") as out:
                    header = True
                    async for line in answer.content:
                        out.write(line)
                        if header:
                            header = False
                        else:
                            written += 1
                            progress.show(written)
            progress.close(written)
        os.replace(partial, path)
    except aiohttp.ClientError as exc:
        raise ExportError(
            f"no worker answered at {base} ({exc}): start one with segstream worker"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return written


async def _size(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base) as answer:
        if answer.status != 200:
            raise ExportError(f"the worker answered {answer.status}: {await _reason(answer)}")
        return int(codec.loads(await answer.read()).get("size") or 0)


async def _reason(answer: aiohttp.ClientResponse) -> str:
    text = await answer.text()
    try:
        return str(codec.loads(text).get("error", text[:200]))
    except ValueError:
        return text[:200]
