"""Send eligibility through the real worker, Kafka and Redis: emails sent (on email-sends, and
as Segment's "Email Delivered" through the Tracking API) are counted against a campaign, the
weekly cap and quiet hours, and the audience of a segment pages through who may be mailed now,
saying how many were held back and why."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config import names
from engine import buckets
from engine.eligibility import ALREADY_SENT, CADENCE, HOLDOUT, NO_CONSENT, QUIET_HOURS, WEEKLY_CAP
from tests.integration.api_client import TOKEN, Api, consent, purchase
from tests.integration.deployment import Deployment, WorkerProcess, run_segstream
from tests.integration.oracle import HOUR, now_ms
from tests.integration.waiting import poll_until

pytestmark = pytest.mark.integration


def sent(customer: str, n: int, ts: int, campaign: str) -> dict[str, Any]:
    value = {"event_id": f"{customer}-s{n}", "customer_id": customer, "ts": ts}
    return {"topic": names.EMAIL_SENDS, "value": value | {"campaign_id": campaign}}


async def test_the_audience_leaves_out_whom_a_campaign_reached_the_cap_and_quiet_hours(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # Quiet all day wherever a customer's time zone is known; two emails a week at most.
    deployment = deployment_factory(api_token=TOKEN, weekly_email_cap="2", quiet_hours="0-24")
    worker = worker_factory(deployment)
    await worker.until_ready()
    start = now_ms() - 2 * HOUR
    base = f"http://127.0.0.1:{deployment.settings.web_port}"
    async with aiohttp.ClientSession() as session:
        api = Api(session, base, deployment)
        events = []
        for n, customer in enumerate(("a0", "a1", "a2", "a3")):
            events += [consent(customer, start), purchase(customer, n, start + 1_000)]
        events += [sent("a2", 1, start + 2_000, "welcome"), sent("a2", 2, start + 3_000, "news")]
        zone = {"event_id": "a3-tz", "customer_id": "a3", "ts": start + 4_000}
        zone |= {"traits": {"email_consent": True, "timezone": "Europe/Berlin"}}
        events.append({"topic": names.PROFILE_UPDATES, "value": zone})
        status, answer = await api.call("POST", "/v1/events", events)
        assert status == 202 and answer["accepted"] == len(events), answer
        # a1's send comes as an email tool reports it to Segment.
        delivered = {
            "type": "track",
            "userId": "a1",
            "event": "Email Delivered",
            "messageId": "m-a1",
            "properties": {"campaign_id": "spring", "segment": "first_time_buyers"},
        }
        status, answer = await api.call("POST", "/v1/segment", delivered)
        assert status == 200 and answer["accepted"] == 1, answer

        path = "/v1/segments/first_time_buyers/audience?campaign=spring&count=1000"
        found: dict[str, Any] = {}

        async def settled() -> bool:
            nonlocal found
            _, found = await api.call("GET", path)
            held = found["held_back"]
            return found["checked"] == 4 and sum(held.values()) == 3 and NO_CONSENT not in held

        await poll_until(settled, "the audience of four members", 60, 0.5)
        assert found["members"] == ["a0"]
        assert found["held_back"] == {ALREADY_SENT: 1, WEEKLY_CAP: 1, QUIET_HOURS: 1}
        assert found["next_cursor"] == 0 and found["campaign"] == "spring"
        # Without the campaign, a1 may be mailed (one email this week, under the cap).
        _, other = await api.call("GET", "/v1/segments/first_time_buyers/audience?count=1000")
        assert sorted(other["members"]) == ["a0", "a1"]
        status, _ = await api.call("GET", "/v1/segments/nope/audience")
        assert status == 404
        status, _ = await api.call("GET", "/v1/segments/first_time_buyers/audience", token=None)
        assert status == 401

        # The same, as CSV for an email tool, and with `segstream export` as a user runs it.
        status, text = await api.call("GET", "/v1/segments/first_time_buyers/members.csv")
        assert status == 200
        header, *rows = text.strip().split("\r\n")
        assert header == "customer_id,email_consent,timezone,sent_last_7_days,last_sent_at"
        by_id = {row.split(",")[0]: row.split(",") for row in rows}
        assert sorted(by_id) == ["a0", "a1", "a2", "a3"]
        assert by_id["a2"][3] == "2" and by_id["a3"][2] == "Europe/Berlin"
        _, text = await api.call(
            "GET", "/v1/segments/first_time_buyers/members.csv?audience=spring"
        )
        assert [row.split(",")[0] for row in text.strip().split("\r\n")[1:]] == ["a0"]
    out = tmp_path / "spring.csv"
    done = await asyncio.to_thread(
        run_segstream,
        deployment.env,
        "export",
        "first_time_buyers",
        str(out),
        "--audience",
        "spring",
    )
    assert done.returncode == 0, done.stderr
    assert "Exported 1 members who may be mailed now" in done.stdout
    assert out.read_text().splitlines()[1].startswith("a0,true,")
    missing = await asyncio.to_thread(
        run_segstream, deployment.env, "export", "nope", str(tmp_path / "x.csv")
    )
    assert missing.returncode == 2 and "no segment named 'nope'" in missing.stderr
    assert not (tmp_path / "x.csv").exists()
    worker.assert_running()


async def test_a_segments_holdout_stays_in_the_segment_and_out_of_its_audience(
    deployment_factory: Callable[..., Deployment],
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    """A segment made live with `holdout: 30%` and `frequency`: its held-out members are its
    members still, and the audience leaves exactly them out (the engine's own split)."""
    deployment = deployment_factory(api_token=TOKEN, quiet_hours="")
    worker = worker_factory(deployment)
    await worker.until_ready()
    start = now_ms() - 2 * HOUR
    customers = [f"h{n}" for n in range(40)]
    base = f"http://127.0.0.1:{deployment.settings.web_port}"
    async with aiohttp.ClientSession() as session:
        api = Api(session, base, deployment)
        body = {
            "description": "Bought once or more, a tenth held out",
            "when": {"count": {"of": "orders", "min": 1}},
            "holdout": "30%",
            "frequency": {"max": 1, "per": "14d"},
        }
        status, answer = await api.call("PUT", "/v1/segments/buyers_test", body)
        assert status == 201, answer
        events = []
        for n, customer in enumerate(customers):
            events += [consent(customer, start), purchase(customer, n, start + 1_000)]
        events.append(sent("h0", 1, start + 2_000, "welcome"))
        status, answer = await api.call("POST", "/v1/events", events)
        assert status == 202 and answer["accepted"] == len(events), answer
        held = {
            c for c in customers if buckets.held_out(buckets.DEFAULT_SALT, "buyers_test", c, 30)
        }
        assert 0 < len(held) < len(customers)
        found: dict[str, Any] = {}

        async def settled() -> bool:
            nonlocal found
            _, found = await api.call("GET", "/v1/segments/buyers_test/audience?count=1000")
            settled = found.get("checked") == len(customers) and "h0" not in found["members"]
            return settled and NO_CONSENT not in found["held_back"]  # the store has them all

        await poll_until(settled, "the audience of every buyer", 60, 0.5)
        expected = sorted(set(customers) - held - {"h0"})
        assert sorted(found["members"]) == expected
        assert found["held_back"].get(HOLDOUT, 0) == len(held)
        assert found["held_back"].get(CADENCE, 0) == (0 if "h0" in held else 1)
    worker.assert_running()
