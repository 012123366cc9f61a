"""The webhook subscriptions API: list, create, read, pause, resume and delete. Changes go to
the subscriptions' keyed log, which every worker follows (``agents.webhooks``); a secret is
shown once, in the answer that creates it, and never again."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, ClassVar

from aiokafka.errors import KafkaError
from faust import web
from redis.exceptions import RedisError

from config import names
from config.errors import InvalidEvent, SegstreamError
from engine import webhooks
from engine.catalog import TRIGGERS
from engine.webhooks import Subscription
from segstream.app import app, live, settings
from serving.access import Role
from serving.api import BadBody, Protected, _by, _error, _posted
from serving.store import store
from serving.webhooks import addresses_of, backlog, private_allowed, start_at_end, stored
from streams import codec, keyed_log
from streams.timestamps import wall_clock_ms

KAFKA_WAIT_S = 10.0


async def described(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: no secret; its counts and backlog."""
    try:
        waiting: int | None = await asyncio.wait_for(backlog(settings, subscription), KAFKA_WAIT_S)
    except (SegstreamError, KafkaError, OSError, TimeoutError):
        waiting = None  # Kafka out of reach: unknown, not zero
    try:
        counts = await store.delivery_counts(subscription.id)
    except (RedisError, OSError):
        counts = {}
    return subscription.public() | {"backlog": waiting, "deliveries": counts}


async def _publish(subscription: Subscription | None, key: str) -> None:
    value = None if subscription is None else codec.dumps(subscription.to_record())
    await keyed_log.publish(settings, names.WEBHOOK_SUBSCRIPTIONS, [(key, value)])


async def _current(key: str) -> Subscription | None:
    """The subscription as the log holds it now (not as this worker last read it)."""
    return (await stored(settings)).get(key)


async def _all() -> list[Subscription]:
    return sorted((await stored(settings)).values(), key=lambda s: s.created_at)


async def url_problem(url: str) -> str | None:
    """Why the receiver may not be called: its URL's shape, then the addresses it resolves to."""
    problem = webhooks.url_problem(url, (), allow_private=True)
    if problem is not None:
        return problem
    try:
        addresses = await addresses_of(url)
    except OSError as exc:
        return f"url: its host does not resolve ({exc.strerror or exc})"
    return webhooks.url_problem(url, addresses, private_allowed(settings))


def _unreachable(view: web.View, exc: Exception) -> web.Response:
    return _error(view, 503, f"Kafka is out of reach; nothing changed ({exc})")


@app.page("/v1/subscriptions")
class Subscriptions(Protected):
    """Webhook subscriptions: GET lists them, POST creates one."""

    roles: ClassVar[dict[str, Role]] = {"GET": "read", "POST": "edit"}

    async def get(self, request: web.Request) -> web.Response:
        try:
            subscriptions = await _all()
        except (SegstreamError, KafkaError, OSError) as exc:
            return _unreachable(self, exc)
        return self.json({"subscriptions": [await described(s) for s in subscriptions]})

    async def post(self, request: web.Request) -> web.Response:
        posted = await _posted(request)
        if isinstance(posted, BadBody):
            return _error(self, 400, posted.reason)
        try:
            subscription = webhooks.checked_subscription(
                posted,
                segments=live.catalog.names(),
                triggers=TRIGGERS,
                id=uuid.uuid4().hex[:16],
                at=wall_clock_ms(),
                by=_by(request),
            )
        except InvalidEvent as exc:
            return _error(self, 422, exc.reason)
        problem = await url_problem(subscription.url)
        if problem is not None:
            return _error(self, 422, problem)
        try:
            await start_at_end(settings, subscription)
            await _publish(subscription, subscription.id)
        except (SegstreamError, KafkaError, OSError) as exc:
            return _unreachable(self, exc)
        # The secret, this once: the receiver needs it to check signatures.
        body = subscription.public() | {"secret": subscription.secret}
        return self.json(
            body, status=201, headers={"Location": f"/v1/subscriptions/{subscription.id}"}
        )


@app.page("/v1/subscriptions/{subscription_id}")
class OneSubscription(Protected):
    roles: ClassVar[dict[str, Role]] = {"GET": "read", "DELETE": "edit"}

    async def get(self, request: web.Request, subscription_id: str) -> web.Response:
        try:
            subscription = await _current(subscription_id)
        except (SegstreamError, KafkaError, OSError) as exc:
            return _unreachable(self, exc)
        if subscription is None:
            return _error(self, 404, f"no subscription {subscription_id!r}")
        return self.json(await described(subscription))

    async def delete(self, request: web.Request, subscription_id: str) -> web.Response:
        try:
            subscription = await _current(subscription_id)
            if subscription is None:
                return _error(self, 404, f"no subscription {subscription_id!r}")
            await _publish(None, subscription_id)
        except (SegstreamError, KafkaError, OSError) as exc:
            return _unreachable(self, exc)
        with contextlib.suppress(RedisError, OSError):  # its counts are shown nowhere now
            await store.forget_deliveries(subscription_id)
        return self.json({"deleted": subscription_id})


async def _set_state(view: web.View, subscription_id: str, paused: bool, by: str) -> web.Response:
    try:
        subscription = await _current(subscription_id)
        if subscription is None:
            return _error(view, 404, f"no subscription {subscription_id!r}")
        at = wall_clock_ms()
        changed = (
            subscription.paused_by(f"paused by {by}", at) if paused else subscription.resumed(at)
        )
        await _publish(changed, subscription_id)
    except (SegstreamError, KafkaError, OSError) as exc:
        return _unreachable(view, exc)
    return view.json(changed.public())


@app.page("/v1/subscriptions/{subscription_id}/pause")
class PauseSubscription(Protected):
    roles: ClassVar[dict[str, Role]] = {"POST": "edit"}

    async def post(self, request: web.Request, subscription_id: str) -> web.Response:
        return await _set_state(self, subscription_id, True, _by(request))


@app.page("/v1/subscriptions/{subscription_id}/resume")
class ResumeSubscription(Protected):
    roles: ClassVar[dict[str, Role]] = {"POST": "edit"}

    async def post(self, request: web.Request, subscription_id: str) -> web.Response:
        return await _set_state(self, subscription_id, False, _by(request))
