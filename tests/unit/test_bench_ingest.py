"""The bench's ingest messages: what Segment's SDK sends for the synthetic shop's events, and
mapped back by the Tracking API to the very events the shop made."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from segment.analytics.client import Client as SegmentClient

from config import load_settings, names
from engine.catalog import catalog_for
from segstream.bench import ingest
from segstream.offline.simulator import SyntheticShop
from streams import codec, segment_spec
from streams.events import decode
from streams.records import Record

START_MS = 1_767_225_600_000


def shop_records(count: int) -> list[Record]:
    shop = SyntheticShop(customers=300, seed=5, start_ms=START_MS, step_ms=1000)
    return list(itertools.islice(shop.events(), count))


def test_each_message_maps_back_to_the_event_it_was_made_from() -> None:
    settings = load_settings({})
    traits = catalog_for(settings.segments_file, settings.cart_quiet_minutes).traits
    seen: set[str] = set()
    for record in shop_records(3000):
        message = ingest.segment_message(record)
        if record.topic == names.SUPPORT_CONTACTS:
            assert message is None  # Segment's spec has no support event
            continue
        assert message is not None
        mapped = segment_spec.to_contract(message, START_MS, ingest.SOURCE)
        assert not isinstance(mapped, segment_spec.Ignored), mapped
        topic, value = mapped
        key = record.key.encode()
        assert topic == record.topic
        assert decode(topic, key, codec.dumps(value), traits=traits) == decode(
            topic, key, codec.dumps(record.value), traits=traits
        )
        seen.add(topic)
    assert seen == set(names.EVENT_TOPICS) - {names.SUPPORT_CONTACTS}


def sdk_call(client: SegmentClient, message: dict[str, Any]) -> dict[str, Any]:
    """The message Segment's SDK builds for the same call (it sends nothing with send=False)."""
    common = {
        "timestamp": datetime.fromisoformat(message["timestamp"]).astimezone(UTC),
        "message_id": message["messageId"],
        "anonymous_id": message["anonymousId"],
    }
    user = message["userId"]
    if message["type"] == "identify":
        _, built = client.identify(user, message["traits"], **common)
    elif message["type"] == "page":
        _, built = client.page(
            user, message["category"], message["name"], message["properties"], **common
        )
    else:
        _, built = client.track(user, message["event"], message["properties"], **common)
    return dict(built)


def test_messages_are_shaped_as_segments_sdk_builds_them() -> None:
    client = SegmentClient("wk-bench", send=False, sync_mode=True)
    kinds = set()
    for message in ingest.messages(300, 400, 5, START_MS + 3_600_000):
        assert message == sdk_call(client, message)
        kinds.add(message.get("event", message["type"]))
    assert kinds >= {"identify", "page", "Order Completed", "Product Added", "Email Opened"}


@pytest.mark.parametrize("count", [1, 250])
def test_bodies_are_the_sdks_batches(count: int) -> None:
    sent = ingest.messages(300, count, 5, START_MS + 3_600_000)
    [(body, size)] = ingest.bodies([sent])
    posted = codec.loads(body)
    assert size == count == len(posted["batch"])
    assert posted["batch"] == sent
    assert posted["writeKey"] == ingest.WRITE_KEY
    assert datetime.fromisoformat(posted["sentAt"]).tzinfo is not None


def test_a_share_of_web_messages_is_anonymous_and_every_identify_links() -> None:
    """Visitors not logged in send page and product views and cart adds under their anonymous
    id only; an identify names both ids, so the Tracking API also sends its link."""
    settings = load_settings({})
    sent = ingest.messages(300, 2000, 5, START_MS + 3_600_000)
    web = [m for m in sent if m.get("event", m["type"]) in ingest.WEB_MESSAGES]
    anonymous = [m for m in sent if m["userId"] is None]
    assert set(map(id, anonymous)) <= set(map(id, web))
    assert 0.2 < len(anonymous) / len(web) < 0.4  # ANONYMOUS_SHARE, drawn
    identifies = [m for m in sent if m["type"] == "identify"]
    assert identifies and all(m["anonymousId"] == f"v-{m['userId']}" for m in identifies)
    events = ingest.contract_events(settings, sent)
    assert len(events) == len(sent) + len(identifies)
    links = [(key, codec.loads(value)) for topic, key, value in events if "identity-links" in topic]
    assert [(key, link["customer_id"]) for key, link in links] == [
        (f"anon:v-{m['userId']}".encode(), m["userId"]) for m in identifies
    ]
    keys = {key for topic, key, _ in events if "identity-links" not in topic}
    assert {f"anon:{m['anonymousId']}".encode() for m in anonymous} <= keys
