"""The quix peer's segment logic (what runs inside its Quix Streams step), without Kafka: it ends
in the buyer segments segstream's engine ends in, and says each move once."""

from __future__ import annotations

from typing import Any

from config import load_settings, names
from engine.catalog import catalog_for
from segstream.bench import quix, restore
from segstream.bench.workload import Workload
from streams import codec

Records = list[tuple[str, bytes, bytes]]


def run_peer(records: Records) -> tuple[set[tuple[str, str]], list[dict[str, Any]]]:
    """(customer, segment) memberships at the end, and every change record, in order."""
    customers: dict[str, dict[str, Any]] = {}
    sent: list[dict[str, Any]] = []
    for topic, key, value in records:
        customer = customers.setdefault(key.decode(), quix.new_customer())
        before = quix.segments_of(customer)
        quix.fold(customer, topic, codec.loads(value))
        sent += quix.changes(before, quix.segments_of(customer), codec.loads(value))
    members = {(c, s) for c, customer in customers.items() for s in quix.segments_of(customer)}
    return members, sent


def engine_members(records: Records) -> set[tuple[str, str]]:
    settings = load_settings({})
    catalog = catalog_for(settings.segments_file, settings.cart_quiet_minutes)
    return {
        (state.customer_id, segment)
        for state in restore.fold(records, catalog)
        for segment in state.segments & set(quix.SEGMENTS)
    }


def test_the_workload_ends_in_the_engines_buyer_segments() -> None:
    records = Workload(2_000, 8_000, seed=7).encoded()
    members, sent = run_peer(records)
    assert members == engine_members(records)
    assert {segment for _, segment in members} == set(quix.SEGMENTS)
    # Going from first_time_buyers to repeat_buyers is two records: an exit and an enter.
    moved = {(c["customer_id"], c["segment"], c["change"]) for c in sent}
    repeat = [c for c, s in members if s == "repeat_buyers"]
    assert any((c, "first_time_buyers", "exit") in moved for c in repeat)


def event(topic: str, ts: int, **fields: Any) -> tuple[str, bytes, bytes]:
    value = {"event_id": f"e{ts}", "customer_id": "c1", "ts": ts, **fields}
    if topic == names.PURCHASES:
        item = {"sku": "s1", "category": "shoes", "quantity": 1, "unit_price": 10.0}
        value |= {"order_id": f"o{ts}", "total": 10.0, "currency": "EUR", "items": [item]}
    return topic, b"c1", codec.dumps(value)


def test_consent_as_the_catalog_requires_it() -> None:
    """No consent, no member; a suppression ends membership, a profile update does not give
    it back, an opt-in does."""
    base = 1_767_225_600_000
    steps = [
        (event(names.PURCHASES, base), set()),
        (event(names.PROFILE_UPDATES, base + 1, traits={"email_consent": True}), {"first"}),
        (event(names.PURCHASES, base + 2), {"repeat"}),
        (event(names.PROFILE_UPDATES, base + 3, suppression="unsubscribed"), set()),
        (event(names.PROFILE_UPDATES, base + 4, traits={"email_consent": True}), set()),
        (event(names.PROFILE_UPDATES, base + 5, opt_in=True), {"repeat"}),
    ]
    short = {"first": "first_time_buyers", "repeat": "repeat_buyers"}
    records: Records = []
    for record, wanted in steps:
        records.append(record)
        members, _ = run_peer(records)
        assert {s for _, s in members} == {short[w] for w in wanted}, record
        assert members == engine_members(records), record
    _, sent = run_peer(records)
    assert [(c["segment"], c["change"]) for c in sent] == [
        ("first_time_buyers", "enter"),
        ("first_time_buyers", "exit"),
        ("repeat_buyers", "enter"),
        ("repeat_buyers", "exit"),
        ("repeat_buyers", "enter"),
    ]
    assert sent[0]["cause_event_id"] == f"e{base + 1}"


def test_last_event_time_per_kind_and_spend() -> None:
    customer = quix.new_customer()
    for topic, _, value in [
        event(names.EMAIL_OPENS, 20, campaign_id="x"),
        event(names.EMAIL_OPENS, 10, campaign_id="x"),
        event(names.PURCHASES, 15),
        event(names.PURCHASES, 16),
    ]:
        quix.fold(customer, topic, codec.loads(value))
    assert customer["last"] == {names.EMAIL_OPENS: 20, names.PURCHASES: 16}
    assert (customer["orders"], customer["spend"]) == (2, 20.0)


def test_the_connection_carries_the_deployments_credentials() -> None:
    settings = load_settings(
        {
            "SEGSTREAM_KAFKA_BOOTSTRAP": "broker:9093",
            "SEGSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SEGSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SEGSTREAM_KAFKA_SASL_USERNAME": "bench",
            "SEGSTREAM_KAFKA_SASL_PASSWORD": "secret",
        }
    )
    config = quix.connection(settings).as_librdkafka_dict()
    assert config["bootstrap.servers"] == "broker:9093"
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("bench", "secret")
