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
from typing import Any

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


async def tracking_call(view: web.View, request: web.Request, call: str | None) -> Any:
    """One request of the Tracking API: ``call`` is the single call the route takes, or None
    for a batch."""
    try:
        body = await request.read()
    except aiohttp.web.HTTPException:
        raise  # aiohttp's own answer (a body beyond its size limit: 413)
    except Exception:  # a body that is not what its Content-Encoding says (bad gzip)
        return tracking_error(view, 400, "bad_request", "the body could not be decoded")
    if len(body) > settings.max_batch_bytes:
        reason = f"the request is over the {settings.max_batch_bytes}-byte limit"
        return tracking_error(view, 400, "batch_too_large", reason)
    try:
        posted = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return tracking_error(view, 400, "invalid_json", f"not valid UTF-8 JSON ({exc.msg})")
    source = source_of(given_write_key(request, posted))
    if source is None:
        metrics.ingest_refused.labels("write_key").inc()
        return tracking_error(
            view,
            401,
            "unauthorized",
            "missing or unknown write key (HTTP Basic auth, the key as user name)"
            if settings.write_key_sources()
            else "this worker has no write keys: set SEGSTREAM_WRITE_KEYS",
        )
    if call is None:
        batch = posted.get("batch") if isinstance(posted, dict) else None
        if not isinstance(batch, list) or not batch:
            return tracking_error(view, 400, "invalid_batch", 'expected {"batch": [messages]}')
        if len(batch) > MAX_BATCH_MESSAGES:
            reason = f"a batch holds at most {MAX_BATCH_MESSAGES} messages"
            return tracking_error(view, 400, "batch_too_large", reason)
        messages: list[Any] = batch
    else:
        if not isinstance(posted, dict):
            return tracking_error(view, 400, "invalid_message", "expected a message object")
        messages = [{"type": call, **posted}]
    return await take(view, messages, source)


async def take(view: web.View, messages: list[Any], source: str) -> Any:
    """Map, check and produce the messages; answer each one's outcome."""
    now = int(time.time() * 1000)
    results: list[dict[str, Any]] = []
    accepted: list[Accepted] = []
    refused: list[tuple[bytes, str]] = []
    for index, message in enumerate(messages):
        raw = orjson.dumps(message)
        try:
            if len(raw) > settings.max_event_bytes:
                raise InvalidEvent(f"message over the {settings.max_event_bytes}-byte limit")
            mapped = segment_spec.to_contract(message, now, source)
            if isinstance(mapped, segment_spec.Ignored):
                results.append({"index": index, "outcome": "ignored", "reason": mapped.reason})
                continue
            topic, value = mapped
            accepted.append(check_event(topic, None, value, settings.max_event_bytes))
            results.append({"index": index, "outcome": "accepted", "topic": topic})
        except InvalidEvent as exc:
            refused.append((raw, exc.reason))
            results.append({"index": index, "outcome": "rejected", "reason": exc.reason})
    try:
        await intake.produce(accepted)
    except Refused as exc:
        return tracking_error(
            view,
            exc.status,
            "rate_limited" if exc.status == 429 else "unavailable",
            f"{exc.reason}; retry",
            **{"Retry-After": str(exc.retry_after)},
        )
    for raw, reason in refused:
        await dead_letter(raw, source, reason)
    counts = {outcome: 0 for outcome in ("accepted", "ignored", "rejected")}
    for result in results:
        counts[result["outcome"]] += 1
    for outcome, count in counts.items():
        if count:
            metrics.tracking_messages.labels(source, outcome).inc(count)
    taken = counts["accepted"] + counts["ignored"]
    answer = {"success": bool(taken), **counts, "results": results}
    if not taken:
        return view.json(
            {"code": "invalid_messages", "message": results[0]["reason"], **answer}, status=400
        )
    return view.json(answer, status=200)


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
