"""Webhook subscriptions as data: what a subscription takes, how a delivery is signed, which
receivers may be called, and when a failed delivery is tried again. Pure: the clock, the
random source and resolved addresses are passed in (``serving.webhooks`` does the I/O)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from config import names
from config.errors import InvalidEvent

SIGNATURE_HEADER = "X-Segstream-Signature"
DELIVERY_HEADER = "X-Segstream-Delivery"
# How old a signed timestamp a receiver should still accept (as Stripe's libraries do).
TOLERANCE_S = 300
MIN_SECRET = 16
MAX_URL = 2048
MAX_NAMES = 200
EVERY = "*"
# Answers worth trying again: the receiver is busy or down, not refusing the records.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Subscription:
    """Which records go to one receiver. ``segments`` / ``triggers``: the names taken, or None
    for every one; an empty tuple takes none of that topic."""

    id: str
    url: str
    segments: tuple[str, ...] | None
    triggers: tuple[str, ...] | None
    secret: str
    created_at: int
    created_by: str
    paused: bool = False
    reason: str | None = None  # why it is paused: a person's pause, or the last failure
    changed_at: int = 0

    def topics(self) -> tuple[str, ...]:
        """The output topics this subscription reads."""
        wanted = ((names.SEGMENT_CHANGES, self.segments), (names.TRIGGERS, self.triggers))
        return tuple(topic for topic, taken in wanted if taken != ())

    def takes(self, topic: str, record: Mapping[str, Any]) -> bool:
        """Whether a record of ``topic`` goes to this receiver."""
        if topic == names.SEGMENT_CHANGES:
            return _among(record.get("segment"), self.segments)
        if topic == names.TRIGGERS:
            return _among(record.get("trigger"), self.triggers)
        return False

    def paused_by(self, reason: str, at: int) -> Subscription:
        return replace(self, paused=True, reason=reason, changed_at=at)

    def resumed(self, at: int) -> Subscription:
        return replace(self, paused=False, reason=None, changed_at=at)

    def to_record(self) -> dict[str, Any]:
        """The value kept on the subscriptions topic (the secret included)."""
        return self.public() | {"secret": self.secret}

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "segments": EVERY if self.segments is None else list(self.segments),
            "triggers": EVERY if self.triggers is None else list(self.triggers),
            "state": "paused" if self.paused else "active",
            "reason": self.reason,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "changed_at": self.changed_at or self.created_at,
        }

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> Subscription:
        return cls(
            id=value["id"],
            url=value["url"],
            segments=_names_or_every(value["segments"]),
            triggers=_names_or_every(value["triggers"]),
            secret=value["secret"],
            created_at=value["created_at"],
            created_by=value["created_by"],
            paused=value.get("state") == "paused",
            reason=value.get("reason"),
            changed_at=value.get("changed_at", 0),
        )


def _among(name: Any, taken: tuple[str, ...] | None) -> bool:
    return taken is None or name in taken


def _names_or_every(value: Any) -> tuple[str, ...] | None:
    return None if value == EVERY else tuple(value)


def checked_subscription(
    body: Any,
    *,
    segments: Iterable[str],
    triggers: Iterable[str],
    id: str,
    at: int,
    by: str,
) -> Subscription:
    """The subscription a posted ``{url, segments, triggers, secret?}`` asks for; InvalidEvent
    says which field is wrong. Without a secret one is made (and shown once, on creation)."""
    if not isinstance(body, dict):
        raise InvalidEvent("expected an object {url, segments, triggers, secret}")
    unknown = set(body) - {"url", "segments", "triggers", "secret"}
    if unknown:
        raise InvalidEvent(f"unknown fields: {', '.join(sorted(unknown))}")
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidEvent("url: expected the receiver's http(s) URL")
    taken_segments = _chosen(body.get("segments", EVERY), "segments", segments)
    taken_triggers = _chosen(body.get("triggers", []), "triggers", triggers)
    if taken_segments == () and taken_triggers == ():
        raise InvalidEvent("segments and triggers: the subscription takes nothing")
    secret = body.get("secret")
    if secret is None:
        secret = "whsec_" + secrets.token_urlsafe(24)
    elif not isinstance(secret, str) or len(secret) < MIN_SECRET:
        raise InvalidEvent(f"secret: expected at least {MIN_SECRET} characters")
    return Subscription(
        id=id,
        url=url,
        segments=taken_segments,
        triggers=taken_triggers,
        secret=secret,
        created_at=at,
        created_by=by,
        changed_at=at,
    )


def _chosen(value: Any, field: str, known: Iterable[str]) -> tuple[str, ...] | None:
    if value == EVERY:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise InvalidEvent(f'{field}: expected a list of names, or "*" for every one')
    if len(value) > MAX_NAMES:
        raise InvalidEvent(f"{field}: at most {MAX_NAMES} names")
    known = sorted(set(known))
    strangers = sorted(set(value) - set(known))
    if strangers:
        raise InvalidEvent(
            f"{field}: unknown {', '.join(map(repr, strangers))}; known: {', '.join(known)}"
        )
    return tuple(dict.fromkeys(value))


def url_problem(url: str, addresses: Iterable[str], allow_private: bool) -> str | None:
    """Why a receiver URL may not be called (None: it may). ``addresses``: what its host
    resolves to. Private, loopback and link-local receivers need ``allow_private`` (a worker
    that listens beyond loopback must not be turned on its own network)."""
    if len(url) > MAX_URL:
        return f"url: longer than {MAX_URL} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "url: only http and https receivers"
    if not parts.hostname:
        return "url: no host"
    if parts.username is not None or parts.password is not None:
        return "url: credentials in the URL; the receiver checks the signature instead"
    if allow_private:
        return None
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            return (
                f"url: {parts.hostname} is a private, loopback or reserved address "
                "(SEGSTREAM_WEBHOOK_ALLOW_PRIVATE allows them)"
            )
    return None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``,
    as Stripe signs (a receiver checks the HMAC and refuses an old ``t``: no replays)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verified(secret: str, header: str, body: bytes, now_s: int) -> bool:
    """What a receiver does with the header: the HMAC matches and ``t`` is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > TOLERANCE_S:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, f"t={fields['t']},v1={fields.get('v1', '')}")


def idempotency_key(topic: str, record: Mapping[str, Any]) -> str:
    """The same for every redelivery of a record: the customer, the version of its state that
    published it, and the segment or trigger."""
    what = record.get("segment") if topic == names.SEGMENT_CHANGES else record.get("trigger")
    return f"{record.get('customer_id')}:{record.get('version')}:{what}"


def delivery_body(
    subscription_id: str, delivery_id: str, records: Iterable[tuple[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """One POST: each record as it is on its topic, with its idempotency key."""
    return {
        "delivery_id": delivery_id,
        "subscription_id": subscription_id,
        "records": [
            {"topic": topic, "idempotency_key": idempotency_key(topic, record), "record": record}
            for topic, record in records
        ],
    }


def retry_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter before try ``attempt + 1`` (``attempt`` from 1)."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))


def retry_after(header: str | None, now_s: float) -> float | None:
    """Seconds a Retry-After header asks for (delta seconds or an HTTP date), at most an
    hour; None if absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    if header.isascii() and header.isdigit():
        return min(float(header), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(when - now_s, 0.0), MAX_RETRY_AFTER_S)


def failure(status: int | None, error: str | None) -> tuple[str, bool]:
    """Why a try failed, and whether trying again can help (timeouts, refused connections,
    5xx and 429 can; another 4xx is the receiver refusing the records)."""
    if status is None:
        return f"no answer: {error}", True
    return f"answered {status}", status in RETRY_STATUSES
