"""The README's "Send your first event" commands, run as written against a real worker."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deployment import Deployment, WorkerProcess
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README_ADDRESS = "127.0.0.1:6066"


def first_event_blocks() -> list[str]:
    """The shell blocks of the README's "Send your first event" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Send your first event", 1)[1].split("\n#", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def run_block(block: str, address: str) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.replace(README_ADDRESS, address)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def answer(block: str, address: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(run_block(block, address).strip().splitlines()[-1])
    return found


def until_answer(
    block: str, address: str, holds: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def shown() -> bool:
        nonlocal found
        found = answer(block, address)
        return holds(found)

    wait_until(shown, "the README's lookup showing it", 60, detail=lambda: found)
    return found


def test_the_first_event_moves_a_customer_into_segments_and_consent_is_explained(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[[Deployment], WorkerProcess],
) -> None:
    send, look = first_event_blocks()[:2]
    deployment = deployment_factory()
    address = f"127.0.0.1:{deployment.settings.web_port}"
    asyncio.run(worker_factory(deployment).until_ready())

    sent = answer(send, address)
    assert sent["accepted"] == 2, sent
    said = {"first_time_buyers", "bulk_buyers", "high_spenders", "purchased_last_year"}
    found = until_answer(look, address, lambda c: said <= set(c.get("served_segments", [])))
    assert said <= set(found["segments"]), found
    assert found["email_consent"] is True and "note" not in found

    # The same events for a customer who refused consent: no segment, and the answer says why.
    no_consent = send.replace('"ana"', '"cy"').replace("ana-", "cy-")
    no_consent = no_consent.replace('"email_consent": true', '"email_consent": false')
    run_block(no_consent, address)
    cy = until_answer(
        look.replace("/ana", "/cy"), address, lambda c: c.get("purchases", {}).get("count") == 1
    )
    assert cy["segments"] == [] and cy["email_consent"] is False, cy
    assert "email_consent" in cy["note"], cy
