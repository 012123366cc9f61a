"""The HTTP Tracking API as Segment's and RudderStack's SDKs speak it: point the SDK's host (or
data plane URL) at the worker and it works.

- ``POST /v1/batch`` (what the SDKs send), and one message each on ``/v1/track``,
  ``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group``, ``/v1/alias``;
- write keys: HTTP Basic auth with the key as user name (or ``writeKey`` in the body), compared
  in constant time with each configured key (``SEGSTREAM_WRITE_KEYS``: key=source pairs); the
  source's name goes on the events. With no keys configured, a worker that listens on loopback
  only accepts any key (local use), and one that listens beyond it accepts none;
- gzip bodies (RudderStack's SDK compresses by default); Segment's limits: a batch over
  ``SEGSTREAM_MAX_BATCH_BYTES`` is refused whole (400), a message over
  ``SEGSTREAM_MAX_EVENT_BYTES`` alone;
- answers: exactly 200 (RudderStack's SDK retries anything else) when any message was taken,
  with each message's outcome; 400 when none was; refused messages also go to dead-letters
  with the reason, since SDKs do not read answers. Errors are ``{"code", "message"}``, the
  shape both SDKs parse. When Kafka cannot take the events: 429 or 503 with ``Retry-After``
  (``serving.ingest``), which both SDKs retry.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import orjson
from faust import web

from config.errors import InvalidEvent
from config.settings import LOOPBACK
from segstream.app import app, settings
from serving import metrics
from serving.ingest import Accepted, Refused, check_event, dead_letter, intake
from streams import segment_spec

log = logging.getLogger(__name__)

# Segment's own cap on the messages of one batch.
MAX_BATCH_MESSAGES = 2500
OPEN_SOURCE = "default"  # the source of every message when no write keys are configured


def tracking_error(view: web.View, status: int, code: str, message: str, **headers: str) -> Any:
    return view.json({"code": code, "message": message}, status=status, headers=headers or None)


def given_write_key(request: web.Request, body: Any) -> str | None:
    """The write key: the user name of HTTP Basic auth, else ``writeKey`` in the body."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.partition(":")[0] or None
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def source_of(key: str | None) -> str | None:
    """The source of a write key; None if it is not one. Every configured key is compared, in
    constant time, so the time taken says nothing about which key came close."""
    keys = settings.write_key_sources()
    if not keys:
        return OPEN_SOURCE if settings.web_host.startswith(LOOPBACK) else None
    found = None
    for known, source in keys.items():
        if hmac.compare_digest((key or "").encode(), known.encode()):
            found = source
    return found


class Problem(NamedTuple):
    """A request refused whole: its status and Segment's error shape."""

    status: int
    code: str
    message: str


@dataclass(slots=True)
class Checked:
    """A request's messages mapped and checked: the events to produce, the refused messages to
    dead-letter with their reasons, and each message's outcome."""

    source: str
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[tuple[bytes, str]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


async def tracking_call(view: web.View, request: web.Request, call: str | None) -> Any:
    """One request of the Tracking API: ``call`` is the single call the route takes, or None
    for a batch."""
    try:
        body = await request.read()
    except aiohttp.web.HTTPException:
        raise  # aiohttp's own answer (a body beyond its size limit: 413)
    except Exception:  # a body that is not what its Content-Encoding says (bad gzip)
        return tracking_error(view, 400, "bad_request", "the body could not be decoded")
    # Checked here, in one call: nothing of the parsed body stays alive while Kafka acks.
    checked = checked_request(request, body, call)
    if isinstance(checked, Problem):
        return tracking_error(view, *checked)
    return await answer(view, checked)


def checked_request(request: web.Request, body: bytes, call: str | None) -> Checked | Problem:
    """The request's messages checked, or why the whole request is refused."""
    if len(body) > settings.max_batch_bytes:
        reason = f"the request is over the {settings.max_batch_bytes}-byte limit"
        return Problem(400, "batch_too_large", reason)
    try:
        posted = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Problem(400, "invalid_json", f"not valid UTF-8 JSON ({exc.msg})")
    source = source_of(given_write_key(request, posted))
    if source is None:
        metrics.ingest_refused.labels("write_key").inc()
        return Problem(
            401,
            "unauthorized",
            "missing or unknown write key (HTTP Basic auth, the key as user name)"
            if settings.write_key_sources()
            else "this worker has no write keys: set SEGSTREAM_WRITE_KEYS",
        )
    if call is None:
        batch = posted.get("batch") if isinstance(posted, dict) else None
        if not isinstance(batch, list) or not batch:
            return Problem(400, "invalid_batch", 'expected {"batch": [messages]}')
        if len(batch) > MAX_BATCH_MESSAGES:
            return Problem(
                400, "batch_too_large", f"a batch holds at most {MAX_BATCH_MESSAGES} messages"
            )
        return check_messages(batch, source)
    if not isinstance(posted, dict):
        return Problem(400, "invalid_message", "expected a message object")
    return check_messages([{"type": call, **posted}], source)


async def take(view: web.View, messages: list[Any], source: str) -> Any:
    """Map, check and produce the messages; answer each one's outcome."""
    return await answer(view, check_messages(messages, source))


def check_messages(messages: list[Any], source: str) -> Checked:
    """Map and check each message (by the live decoder)."""
    now = int(time.time() * 1000)
    max_bytes = settings.max_event_bytes
    checked = Checked(source)
    results = checked.results
    for index, message in enumerate(messages):
        raw = orjson.dumps(message)
        try:
            if len(raw) > max_bytes:
                raise InvalidEvent(f"message over the {max_bytes}-byte limit")
            mapped = segment_spec.to_contract(message, now, source)
            if isinstance(mapped, segment_spec.Ignored):
                results.append({"index": index, "outcome": "ignored", "reason": mapped.reason})
                continue
            topic, value = mapped
            accepted = [check_event(topic, None, value, max_bytes, now)]
            link = segment_spec.link_of(message, now)
            if link is not None:  # an identify with both ids also links them
                accepted.append(check_event(link[0], None, link[1], max_bytes, now))
            checked.accepted += accepted
            results.append({"index": index, "outcome": "accepted", "topic": topic})
        except InvalidEvent as exc:
            checked.refused.append((raw, exc.reason))
            results.append({"index": index, "outcome": "rejected", "reason": exc.reason})
    return checked


async def answer(view: web.View, checked: Checked) -> Any:
    """Produce the accepted events; answer each message's outcome once Kafka has them."""
    try:
        await intake.produce(checked.accepted)
    except Refused as exc:
        return tracking_error(
            view,
            exc.status,
            "rate_limited" if exc.status == 429 else "unavailable",
            f"{exc.reason}; retry",
            **{"Retry-After": str(exc.retry_after)},
        )
    for raw, reason in checked.refused:
        await dead_letter(raw, checked.source, reason)
    results = checked.results
    counts = {outcome: 0 for outcome in ("accepted", "ignored", "rejected")}
    for result in results:
        counts[result["outcome"]] += 1
    for outcome, count in counts.items():
        if count:
            metrics.tracking_messages.labels(checked.source, outcome).inc(count)
    taken = counts["accepted"] + counts["ignored"]
    body = {"success": bool(taken), **counts, "results": results}
    if not taken:
        return view.json(
            {"code": "invalid_messages", "message": results[0]["reason"], **body}, status=400
        )
    return view.json(body, status=200)


@app.page("/v1/batch")
class Batch(web.View):
    async def post(self, request: web.Request) -> Any:
        return await tracking_call(self, request, None)


def _single(call: str) -> type[web.View]:
    class Single(web.View):
        async def post(self, request: web.Request) -> Any:
            return await tracking_call(self, request, call)

    Single.__name__ = Single.__qualname__ = call.capitalize()
    return Single


for _call in segment_spec.CALLS:
    app.page(f"/v1/{_call}")(_single(_call))
