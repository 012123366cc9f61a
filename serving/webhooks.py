"""Webhook deliveries. Each active subscription reads the output topics it takes in a Kafka
consumer group of its own (``<app id>-webhook-<subscription id>``, read committed), so its
position is Kafka's committed offsets: a receiver that is down holds back only its own
subscription, never the worker's streams, and nothing is lost across restarts and rebalances
(a batch's offsets are committed only once the receiver took it: at least once). Every worker
runs a member of every active subscription's group; Kafka spreads the partitions.

One batch at a time per subscription and worker, in partition order, so one customer's
records reach the receiver in the order they were published. A failed try is retried after
an exponential, jittered wait (or the receiver's Retry-After); after the last allowed try, or
at once when the receiver refuses the records (a 4xx other than 408, 425 and 429), the
subscription is paused with the reason, and its backlog waits in Kafka until it is resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from config import Settings, names
from config.settings import LOOPBACK
from engine import webhooks
from engine.webhooks import Subscription
from serving import metrics
from serving.store import store
from streams import codec, keyed_log
from streams.connections import kafka_options
from streams.layout import partition_ids
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)

USER_AGENT = "segstream-webhooks/1"
Pause = Callable[[Subscription, str], Awaitable[None]]


def group_id(settings: Settings, subscription_id: str) -> str:
    return f"{settings.group_id}{names.WEBHOOK_GROUP}{subscription_id}"


def private_allowed(settings: Settings) -> bool:
    """A worker on loopback serves only its own machine; beyond it, a setting must say so."""
    return settings.webhook_allow_private or settings.web_host.startswith(LOOPBACK)


class GuardedResolver(AbstractResolver):
    """Resolves a receiver's host and refuses private, loopback and reserved addresses (unless
    allowed) at every connection, so a name that later resolves elsewhere is refused too."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.resolver.resolve(host, port, family)
        problem = webhooks.url_problem(
            f"http://{host}/", [entry["host"] for entry in found], self.allow_private
        )
        if problem is not None:
            raise OSError(problem.removeprefix("url: "))
        return found

    async def close(self) -> None:
        await self.resolver.close()


def literal_problem(url: str, allow_private: bool) -> str | None:
    """Why a URL whose host is an IP address may not be called (aiohttp connects to an address
    without asking the resolver, so ``GuardedResolver`` never sees it); None otherwise."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: the resolver checks what it resolves to
    return webhooks.url_problem(url, [host], allow_private)


async def addresses_of(url: str) -> list[str]:
    """What a receiver URL's host resolves to (empty when it has none)."""
    host = urlsplit(url).hostname
    if not host:
        return []
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(entry[4][0]) for entry in found})


class Receiver:
    """POSTs signed deliveries to one subscription's URL."""

    def __init__(
        self, session: aiohttp.ClientSession, subscription: Subscription, allow_private: bool
    ) -> None:
        self.session = session
        self.subscription = subscription
        self.allow_private = allow_private

    async def post(self, body: bytes, delivery_id: str) -> tuple[int | None, str | None, str]:
        """One try: (status or None, Retry-After, error text)."""
        signed = webhooks.signature(self.subscription.secret, int(time.time()), body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhooks.SIGNATURE_HEADER: signed,
            webhooks.DELIVERY_HEADER: delivery_id,
        }
        problem = literal_problem(self.subscription.url, self.allow_private)
        if problem is not None:
            return None, None, problem
        try:
            async with self.session.post(
                self.subscription.url, data=body, headers=headers, allow_redirects=False
            ) as got:
                await got.read()
                return got.status, got.headers.get("Retry-After"), ""
        except TimeoutError:
            return None, None, "timed out"
        except (aiohttp.ClientError, OSError) as exc:
            return None, None, str(exc) or type(exc).__name__


class Handover(ConsumerRebalanceListener):
    """Partitions leave this member only between batches: the batch in flight is delivered and
    committed (or its subscription paused) first, so the next owner starts after it and one
    customer's records never reach the receiver out of order."""

    def __init__(self, idle: asyncio.Event) -> None:
        self.idle = idle

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.idle.wait()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class Delivery:
    """One subscription's deliveries on this worker: a member of its consumer group."""

    def __init__(
        self,
        settings: Settings,
        subscription: Subscription,
        session: aiohttp.ClientSession,
        pause: Pause,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.subscription = subscription
        self.receiver = Receiver(session, subscription, private_allowed(settings))
        self.pause = pause
        self.rng = rng or random.Random()

    async def run(self) -> None:
        subscription, settings = self.subscription, self.settings
        # A batch may be tried for this long; the group waits that long for a member that is
        # finishing one before it hands its partitions over (``Handover``).
        longest = settings.webhook_max_attempts * (
            settings.webhook_timeout_seconds + settings.webhook_retry_max_seconds
        )
        patience_ms = int((longest + 60) * 1000)
        consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=group_id(settings, subscription.id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # offsets are set at creation; this is a fallback
            isolation_level="read_committed",
            max_poll_records=settings.webhook_batch,
            max_poll_interval_ms=patience_ms,
            rebalance_timeout_ms=patience_ms,
        )
        idle = asyncio.Event()
        idle.set()
        consumer.subscribe(
            [settings.topic(topic) for topic in subscription.topics()], listener=Handover(idle)
        )
        try:
            await consumer.start()
            while True:
                fetched = await consumer.getmany(
                    timeout_ms=1000, max_records=settings.webhook_batch
                )
                if not fetched:
                    continue
                taken = [
                    record
                    for tp, messages in fetched.items()
                    for record in self._taken(tp.topic, messages)
                ]
                idle.clear()
                try:
                    if taken and not await self._deliver(taken):
                        return  # paused: the batch stays uncommitted, for the resume
                    # A failed commit (a rebalance): the next owner delivers the batch again.
                    with contextlib.suppress(KafkaError):
                        await consumer.commit()
                finally:
                    idle.set()
        finally:
            await consumer.stop()

    def _taken(self, topic: str, messages: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        name = topic.removeprefix(self.settings.topic_prefix)
        taken = []
        for message in messages:
            try:
                record = codec.loads(message.value)
            except ValueError:
                metrics.webhook_skipped.labels(self.subscription.id).inc()
                log.warning(
                    "Skipped a record that is not JSON on %s partition %d offset %d",
                    topic,
                    message.partition,
                    message.offset,
                )
                continue
            if isinstance(record, dict) and self.subscription.takes(name, record):
                taken.append((name, record))
        return taken

    async def _deliver(self, records: list[tuple[str, dict[str, Any]]]) -> bool:
        """Deliver one batch, trying again until the receiver takes it; False if the
        subscription was paused instead."""
        subscription, settings = self.subscription, self.settings
        delivery_id = uuid.uuid4().hex
        body = codec.dumps(webhooks.delivery_body(subscription.id, delivery_id, records))
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            status, wait_header, error = await self.receiver.post(body, delivery_id)
            metrics.webhook_latency.labels(subscription.id).observe(time.perf_counter() - started)
            if status is not None and 200 <= status < 300:
                metrics.webhook_deliveries.labels(subscription.id, "delivered").inc()
                metrics.webhook_records.labels(subscription.id).inc(len(records))
                await self._count(len(records), 0, None)
                return True
            reason, retryable = webhooks.failure(status, error)
            metrics.webhook_deliveries.labels(subscription.id, "failed").inc()
            await self._count(0, 1, reason)
            if not retryable or attempt >= settings.webhook_max_attempts:
                why = (
                    f"the receiver refused delivery {delivery_id}: {reason}"
                    if not retryable
                    else f"{attempt} tries of delivery {delivery_id} failed; the last {reason}"
                )
                log.warning("Webhook subscription %s paused: %s", subscription.id, why)
                await self.pause(subscription, why)
                return False
            wait = webhooks.retry_delay(
                attempt,
                settings.webhook_retry_base_seconds,
                settings.webhook_retry_max_seconds,
                self.rng,
            )
            asked = webhooks.retry_after(wait_header, time.time())
            await asyncio.sleep(wait if asked is None else max(asked, wait))

    async def _count(self, delivered: int, failed: int, error: str | None) -> None:
        try:
            await store.count_deliveries(
                self.subscription.id, delivered, failed, error, wall_clock_ms()
            )
        except (
            RedisError,
            OSError,
        ) as exc:  # the counts are for people; the deliveries go on without them
            log.warning("Could not record webhook delivery counts: %s", exc)


class Followed:
    """The subscriptions as this worker last read them from their keyed log."""

    def __init__(self) -> None:
        self.by_id: dict[str, Subscription] = {}
        self.offset = 0  # the next offset to read

    def after(self, records: list[tuple[str | None, bytes | None, int]]) -> None:
        for key, value, offset in records:
            self.offset = offset + 1
            if key is None:
                continue
            if value is None:
                self.by_id.pop(key, None)
                continue
            try:
                self.by_id[key] = Subscription.from_record(codec.loads(value))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("Skipped a webhook-subscriptions record at offset %d: %r", offset, exc)


async def stored(settings: Settings) -> dict[str, Subscription]:
    """The subscriptions as their log holds them now (not as this worker last read them)."""
    found = Followed()
    found.after(await keyed_log.read_records(settings, names.WEBHOOK_SUBSCRIPTIONS))
    return found.by_id


class Deliveries:
    """This worker's deliveries: one task per active subscription, started, restarted and
    stopped as the subscriptions change."""

    def __init__(self, settings: Settings, pause: Pause) -> None:
        self.settings = settings
        self.pause = pause
        self.running: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        self.session: aiohttp.ClientSession | None = None

    def sync(self, subscriptions: Mapping[str, Subscription]) -> None:
        for key, (running, task) in list(self.running.items()):
            # A task that ended paused its subscription: it starts again on a newer record only.
            if subscriptions.get(key) != running:
                task.cancel()
                del self.running[key]
        for key, subscription in subscriptions.items():
            if not subscription.paused and key not in self.running:
                task = asyncio.create_task(self._keep_delivering(subscription))
                self.running[key] = (subscription, task)

    async def _keep_delivering(self, subscription: Subscription) -> None:
        """Deliver until paused or stopped; a broker outage is waited out."""
        while True:
            try:
                await Delivery(self.settings, subscription, self._session(), self.pause).run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "Webhook subscription %s: delivering failed (%r); retrying",
                    subscription.id,
                    exc,
                )
                await asyncio.sleep(2.0)

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(private_allowed(self.settings))
            )
            timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
            self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self.session

    async def stop(self) -> None:
        tasks = [task for _, task in self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None


@contextlib.asynccontextmanager
async def _group(
    settings: Settings, subscription: Subscription
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer of the subscription's group that joins nothing, and the partitions the
    subscription reads, to look at and set the group's offsets."""
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=group_id(settings, subscription.id),
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        yield consumer, await _partitions(settings, subscription)
    finally:
        await consumer.stop()


async def start_at_end(settings: Settings, subscription: Subscription) -> None:
    """Commit a new subscription's group offsets at the current ends: it delivers what is
    published from now on, not the topics' history."""
    async with _group(settings, subscription) as (consumer, partitions):
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: ends[tp] for tp in partitions})


async def backlog(settings: Settings, subscription: Subscription) -> int:
    """Records published and not yet delivered (or passed over), over all partitions."""
    async with _group(settings, subscription) as (consumer, partitions):
        ends = await consumer.end_offsets(partitions)
        waiting = 0
        for tp in partitions:
            committed = await consumer.committed(tp)
            waiting += max(ends[tp] - (committed or 0), 0)
        return waiting


async def _partitions(settings: Settings, subscription: Subscription) -> list[TopicPartition]:
    found = []
    for topic in subscription.topics():
        name = settings.topic(topic)
        found += [TopicPartition(name, p) for p in await partition_ids(settings, name)]
    return found
