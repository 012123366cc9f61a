"""Webhook subscriptions as data: what a subscription takes, the signature a receiver checks,
the retry waits, and which receivers may be called (tables of cases, an injected clock and
random source)."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from config import names
from config.errors import InvalidEvent
from engine import webhooks
from engine.webhooks import Subscription

SEGMENTS = ("cart_abandoners", "lapsed", "vip")
TRIGGERS = ("cart_abandoned", "browse_abandoned")


def made(**body: Any) -> Subscription:
    return webhooks.checked_subscription(
        {"url": "https://hooks.example.com/x", **body},
        segments=SEGMENTS,
        triggers=TRIGGERS,
        id="s1",
        at=1_000,
        by="ana",
    )


CHANGE = names.SEGMENT_CHANGES
TRIGGER = names.TRIGGERS


@pytest.mark.parametrize(
    ("body", "topic", "record", "taken"),
    [
        ({}, CHANGE, {"segment": "vip"}, True),  # segments default to every one
        ({}, TRIGGER, {"trigger": "cart_abandoned"}, False),  # triggers to none
        ({"segments": ["lapsed"]}, CHANGE, {"segment": "lapsed"}, True),
        ({"segments": ["lapsed"]}, CHANGE, {"segment": "vip"}, False),
        ({"segments": [], "triggers": "*"}, TRIGGER, {"trigger": "browse_abandoned"}, True),
        ({"segments": [], "triggers": "*"}, CHANGE, {"segment": "vip"}, False),
        ({"triggers": ["cart_abandoned"]}, TRIGGER, {"trigger": "cart_abandoned"}, True),
        ({"triggers": ["cart_abandoned"]}, TRIGGER, {"trigger": "browse_abandoned"}, False),
        ({}, names.DEAD_LETTERS, {"segment": "vip"}, False),
    ],
)
def test_what_a_subscription_takes(
    body: dict[str, Any], topic: str, record: dict[str, Any], taken: bool
) -> None:
    assert made(**body).takes(topic, record) is taken


@pytest.mark.parametrize(
    ("body", "topics"),
    [
        ({}, (CHANGE,)),
        ({"triggers": "*"}, (CHANGE, TRIGGER)),
        ({"segments": [], "triggers": ["cart_abandoned"]}, (TRIGGER,)),
    ],
)
def test_a_subscription_reads_only_the_topics_it_takes_from(
    body: dict[str, Any], topics: tuple[str, ...]
) -> None:
    assert made(**body).topics() == topics


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"segments": ["nope"]}, "segments: unknown 'nope'; known: cart_abandoners, lapsed, vip"),
        ({"triggers": ["nope"]}, "triggers: unknown 'nope'"),
        ({"segments": "vip"}, 'segments: expected a list of names, or "*"'),
        ({"segments": [], "triggers": []}, "the subscription takes nothing"),
        ({"secret": "short"}, "secret: expected at least 16 characters"),
        ({"url": 5}, "url: expected"),
        ({"colour": "red"}, "unknown fields: colour"),
    ],
)
def test_a_wrong_subscription_is_refused_with_the_field(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        made(**body)
    assert reason in refused.value.reason


def test_a_secret_is_made_when_none_is_given_and_never_shown_after() -> None:
    subscription = made()
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) >= 30
    assert made().secret != subscription.secret
    assert "secret" not in subscription.public()
    kept = subscription.to_record()
    assert Subscription.from_record(kept) == subscription


def test_pausing_and_resuming_keep_everything_else() -> None:
    subscription = made(segments=["vip"], secret="s" * 16)
    paused = subscription.paused_by("answered 500", 2_000)
    assert paused.public()["state"] == "paused" and paused.reason == "answered 500"
    assert Subscription.from_record(paused.to_record()) == paused
    resumed = paused.resumed(3_000)
    assert (resumed.paused, resumed.reason, resumed.changed_at) == (False, None, 3_000)
    assert resumed.segments == ("vip",) and resumed.secret == "s" * 16


def test_the_signature_is_hmac_sha256_over_the_timestamp_and_the_body() -> None:
    body = b'{"records": []}'
    header = webhooks.signature("sekrit-0123456789", 1_700_000_000, body)
    expected = hmac.new(b"sekrit-0123456789", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "now", "accepted"),
    [
        ("sekrit-0123456789", b"{}", 1_700_000_000, True),
        ("sekrit-0123456789", b"{}", 1_700_000_300, True),  # at the tolerance
        ("sekrit-0123456789", b"{}", 1_700_000_301, False),  # a replay, too late
        ("sekrit-0123456789", b"{}", 1_699_999_699, False),
        ("another-secret-0000", b"{}", 1_700_000_000, False),
        ("sekrit-0123456789", b"{ }", 1_700_000_000, False),  # the body changed
    ],
)
def test_what_a_receiver_accepts(secret: str, body: bytes, now: int, accepted: bool) -> None:
    header = webhooks.signature("sekrit-0123456789", 1_700_000_000, b"{}")
    assert webhooks.verified(secret, header, body, now) is accepted


@pytest.mark.parametrize("header", ["", "v1=abc", "t=x,v1=abc", "t=1700000000"])
def test_a_malformed_signature_is_refused(header: str) -> None:
    assert not webhooks.verified("sekrit-0123456789", header, b"{}", 1_700_000_000)


def test_the_idempotency_key_names_the_customer_version_and_what_changed() -> None:
    change = {"customer_id": "c1", "segment": "vip", "change": "enter", "version": 7}
    trigger = {"customer_id": "c1", "trigger": "cart_abandoned", "version": 7}
    assert webhooks.idempotency_key(CHANGE, change) == "c1:7:vip"
    assert webhooks.idempotency_key(TRIGGER, trigger) == "c1:7:cart_abandoned"
    body = webhooks.delivery_body("s1", "d1", [(CHANGE, change), (TRIGGER, trigger)])
    assert [r["record"] for r in body["records"]] == [change, trigger]
    assert (body["delivery_id"], body["subscription_id"]) == ("d1", "s1")


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (9, 30.0), (40, 30.0)],
)
def test_retry_waits_double_up_to_the_cap_with_full_jitter(attempt: int, ceiling: float) -> None:
    rng = random.Random(attempt)
    waits = [webhooks.retry_delay(attempt, 1.0, 30.0, rng) for _ in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling * 0.8 and min(waits) < ceiling * 0.2  # spread, not fixed


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("99999", 3600.0),  # at most an hour
        (format_datetime(datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        (format_datetime(datetime(2026, 12, 7, 11, 0, tzinfo=UTC), usegmt=True), 0.0),
        ("soon", None),
        ("\u00b2", None),  # a digit to str.isdigit, not to float()
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header: str | None, seconds: float | None) -> None:
    assert webhooks.retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (None, "timed out", True),
        (500, None, True),
        (503, None, True),
        (429, None, True),
        (408, None, True),
        (400, None, False),
        (401, None, False),
        (410, None, False),
    ],
)
def test_which_failures_are_tried_again(
    status: int | None, error: str | None, retryable: bool
) -> None:
    reason, again = webhooks.failure(status, error)
    assert again is retryable
    assert (error or str(status)) in reason


@pytest.mark.parametrize(
    ("url", "addresses", "allow_private", "problem"),
    [
        ("https://hooks.example.com/x", ["93.184.216.34"], False, None),
        ("http://hooks.example.com/x", ["2606:2800:220:1::1"], False, None),
        ("ftp://hooks.example.com/x", ["93.184.216.34"], False, "only http and https"),
        ("https:///x", [], False, "no host"),
        ("https://u:p@hooks.example.com/x", ["93.184.216.34"], True, "credentials"),
        ("http://127.0.0.1:8080/x", ["127.0.0.1"], False, "SEGSTREAM_WEBHOOK_ALLOW_PRIVATE"),
        ("http://127.0.0.1:8080/x", ["127.0.0.1"], True, None),
        ("http://intranet/x", ["10.1.2.3"], False, "private"),
        ("http://metadata/x", ["169.254.169.254"], False, "private"),
        ("http://v6/x", ["::1"], False, "private"),
        ("http://v6/x", ["fe80::1%eth0"], False, "private"),
        ("http://mixed/x", ["93.184.216.34", "192.168.0.2"], False, "private"),
        ("https://hooks.example.com/" + "x" * 2100, [], True, "longer than"),
    ],
)
def test_which_receivers_may_be_called(
    url: str, addresses: list[str], allow_private: bool, problem: str | None
) -> None:
    found = webhooks.url_problem(url, addresses, allow_private)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
