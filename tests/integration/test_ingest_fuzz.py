"""Generated payloads against the live HTTP ingest endpoints: every request gets an answer with
a reason (never a server error), and every valid event is accepted."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import names
from tests.integration.deployment import Deployment, WorkerProcess
from tests.payloads import json_values, valid_events

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def post(base: str, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(base + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read() or b"null")


# What each ingest route may answer to anything at all (never a 5xx).
ANSWERS = {
    "/v1/events": (202, 400, 413),
    "/v1/segment": (200, 400, 413),
    "/v1/batch": (200, 400, 413),
    "/v1/track": (200, 400, 413),
}


def test_ingest_answers_every_payload_and_accepts_every_valid_event(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    deployment = deployment_factory()
    worker = worker_factory(deployment)
    base = f"http://127.0.0.1:{deployment.settings.web_port}"
    asyncio.run(worker.until_ready())

    @FUZZ
    @given(body=st.binary(max_size=400) | json_values.map(orjson.dumps))
    def anything(body: bytes) -> None:
        for path, answered in ANSWERS.items():
            status, answer = post(base, path, body)
            assert status in answered, (path, status, answer)

    @FUZZ
    @given(data=st.data())
    def valid(data: st.DataObject) -> None:
        topic = data.draw(st.sampled_from(names.EVENT_TOPICS))
        value = data.draw(valid_events(topic))
        value["ts"] = int(time.time() * 1000)  # live ingest refuses far-future, not the past
        status, answer = post(base, "/v1/events", orjson.dumps({"topic": topic, "value": value}))
        assert (status, answer["accepted"]) == (202, 1), answer

    anything()
    valid()
    worker.assert_running()
