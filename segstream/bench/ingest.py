"""Ingest: the Tracking API's rate against producing the same events straight to Kafka.

1. The synthetic shop's events become the messages Segment's SDK sends (identify, "Order
   Completed", "Product Added", "Email Opened", "Email Link Clicked", "Product Viewed", page:
   the inverse of ``streams.segment_spec``; support contacts have no Segment event and are left
   out), in the SDK's batches of 100: ``{"batch": [...], "sentAt": ..., "writeKey": ...}``.
2. Direct: the contract events those messages map to (an identify with both ids: its profile
   update and its link), produced by a plain aiokafka producer
   with the settings of Faust's (acks from every in-sync replica, 5 ms linger, 1 MB batches),
   first send to last ack.
3. Ingest: the batches posted to a ready worker's ``/v1/batch`` by a few concurrent clients
   (an SDK's upload threads), first send to last 200; every answer must be 200 with every
   message accepted. 429 and 503 answers are retried after their Retry-After, as the SDKs do,
   and counted. The worker has a deployment of its own and has caught up before each round,
   so it has no backlog; it does consume what it takes while it takes it, as a live worker
   does.

The two take turns in rounds, so that a change in the machine's load meets both. The bodies
and the direct values are encoded before the clock starts: the clients' JSON work is the
SDK's, not the worker's. One batch warms each path up and is not counted.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from config import Settings, names
from config.errors import SegstreamError
from segstream.bench.processes import Contender, WorkerMetrics, cpu_seconds
from segstream.offline.simulator import SyntheticShop
from streams import codec, segment_spec
from streams.connections import kafka_options
from streams.events import record_key
from streams.layout import ensure_topics
from streams.records import Record

BATCH = 100  # messages per request, as the SDKs send them (their upload_size)
CLIENTS = 6  # requests in flight at a time
WRITE_KEY = "wk-bench-ingest-0123456789"
SOURCE = "bench"
LIBRARY = {"name": "analytics-python", "version": "2.4.0"}
# Faust's producer as segstream configures it (faust_options, and Faust's acks=-1).
PRODUCER = {"acks": "all", "linger_ms": 5, "max_batch_size": 1024 * 1024}
RETRY_STATUSES = (429, 503)
# The share of web messages (page, "Product Viewed", "Product Added") sent before login.
ANONYMOUS_SHARE = 0.3
WEB_MESSAGES = ("page", "Product Viewed", "Product Added")


@dataclass(frozen=True)
class Ingest:
    messages: int  # messages accepted through /v1/batch (warm-up not counted)
    anonymous: int  # of them, messages under an anonymous id only
    events: int  # contract events they made (an identify with both ids makes two)
    batches: int
    clients: int
    rounds: int  # direct and ingest take turns this many times
    seconds: float  # first batch sent to last 200, summed over the rounds
    messages_per_second: float
    events_per_second: float
    direct_events: int  # the same contract events produced straight to Kafka
    direct_seconds: float  # first send to last ack
    direct_events_per_second: float
    worker_cpu_seconds: float  # the worker's CPU while it took the batches
    worker_cpu_us_per_message: float
    direct_cpu_us_per_event: float  # the direct producer's process
    processed_meanwhile: float  # events the worker applied in that time
    retried: int  # 429 or 503 answers, retried

    @property
    def ratio(self) -> float:
        """Contract events into Kafka per second, through the Tracking API against straight."""
        return (
            self.events_per_second / self.direct_events_per_second
            if self.direct_events_per_second
            else 0.0
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _sdk_message(kind: str, value: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A message as segment-analytics-python builds it (its ``_enqueue``)."""
    return {
        "integrations": {},
        "anonymousId": None,
        "timestamp": _iso(value["ts"]),
        "context": {"library": LIBRARY},
        "userId": value["customer_id"],
        "type": kind,
        "messageId": value["event_id"],
        **fields,
    }


def _track(event: str, value: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return _sdk_message("track", value, event=event, properties=properties)


def segment_message(record: Record) -> dict[str, Any] | None:
    """The Segment message a shop's SDK sends for a contract event; None for one that Segment's
    spec has no event for (support contacts)."""
    value = record.value
    if record.topic == names.PURCHASES:
        products = [
            {
                "sku": item["sku"],
                "category": item["category"],
                "quantity": item["quantity"],
                "price": item["unit_price"],
            }
            for item in value["items"]
        ]
        properties = {
            "order_id": value["order_id"],
            "total": value["total"],
            "currency": value["currency"],
            "products": products,
        }
        return _track("Order Completed", value, properties)
    if record.topic == names.CART_EVENTS:
        properties = {
            "sku": value["sku"],
            "category": value["category"],
            "quantity": value["quantity"],
            "price": value["unit_price"],
        }
        return _track("Product Added", value, properties)
    if record.topic == names.EMAIL_OPENS:
        return _track("Email Opened", value, {"campaign_id": value["campaign_id"]})
    if record.topic == names.EMAIL_CLICKS:
        properties = {"campaign_id": value["campaign_id"], "link_url": value["url"]}
        return _track("Email Link Clicked", value, properties)
    if record.topic == names.PAGE_VIEWS:
        page = {"url": value["url"], "category": value["category"]}
        if "sku" in value:
            return _track("Product Viewed", value, page | {"sku": value["sku"]})
        category = value["category"]
        return _sdk_message("page", value, name=category, category=category, properties=page)
    if record.topic == names.PROFILE_UPDATES:
        return _sdk_message("identify", value, traits=_sdk_traits(value["traits"]))
    return None


def _sdk_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Segment's identify traits (camelCase, an address, a birthday) for the contract's."""
    given = dict(traits)
    out: dict[str, Any] = {}
    for ours, theirs in (("first_name", "firstName"), ("email_consent", "emailConsent")):
        if ours in given:
            out[theirs] = given.pop(ours)
    if "birth_year" in given:
        out["birthday"] = f"{given.pop('birth_year')}-06-15"
    address = {field: given.pop(field) for field in ("city", "country") if field in given}
    if address:
        out["address"] = address
    for ours, value in given.items():
        head, *rest = ours.split("_")
        out[head + "".join(part.capitalize() for part in rest)] = value
    return out


def messages(customers: int, count: int, seed: int, end_ms: int) -> list[dict[str, Any]]:
    """``count`` Segment messages from a synthetic shop whose events end at ``end_ms``, a share
    of its web messages from visitors not logged in (``ANONYMOUS_SHARE``)."""
    shop = SyntheticShop(
        customers=customers,
        seed=seed,
        run_id=f"ingest{seed}",
        start_ms=end_ms - count * 12,
        step_ms=10,
    )
    logged_out = random.Random(seed)
    mapped = (segment_message(record) for record in shop.events())
    sent = (
        with_visitor(message, logged_out.random() < ANONYMOUS_SHARE)
        for message in mapped
        if message is not None
    )
    return list(itertools.islice(sent, count))


def with_visitor(message: dict[str, Any], logged_out: bool) -> dict[str, Any]:
    """The message as a shop's site sends it: an identify names the customer's visitor id too;
    a web message of a visitor not logged in names only that id."""
    visitor = f"v-{message['userId']}"
    if message["type"] == "identify":
        return message | {"anonymousId": visitor}
    if logged_out and message.get("event", message["type"]) in WEB_MESSAGES:
        return message | {"anonymousId": visitor, "userId": None}
    return message


def bodies(batched: list[list[dict[str, Any]]]) -> list[tuple[bytes, int]]:
    """Each batch as the SDK posts it, and how many messages it holds."""
    sent_at = _iso(int(time.time() * 1000))
    return [
        (codec.dumps({"batch": batch, "sentAt": sent_at, "writeKey": WRITE_KEY}), len(batch))
        for batch in batched
    ]


def contract_events(
    settings: Settings, batch: list[dict[str, Any]]
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of what the Tracking API produces for these messages."""
    out = []
    now = int(time.time() * 1000)
    for message in batch:
        mapped = segment_spec.to_contract(message, now, SOURCE)
        if isinstance(mapped, segment_spec.Ignored):
            raise SegstreamError(f"the bench's message was ignored: {mapped.reason}")
        link = segment_spec.link_of(message, now)
        for topic, value in (mapped,) if link is None else (mapped, link):
            key = record_key(topic, value).encode()
            out.append((settings.topic(topic), key, codec.dumps(value)))
    return out


class Direct:
    """A plain aiokafka producer with Faust's producer settings."""

    def __init__(self, settings: Settings) -> None:
        self.producer = AIOKafkaProducer(**kafka_options(settings), **PRODUCER)

    async def produce(self, events: list[tuple[str, bytes, bytes]]) -> None:
        """Send every event; return once Kafka has acknowledged them all."""
        pending = []
        for topic, key, value in events:
            pending.append(await self.producer.send(topic, value=value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)


class Clients:
    """SDK-like clients posting batches to one worker, a few requests in flight."""

    def __init__(self, session: aiohttp.ClientSession, port: int, clients: int) -> None:
        self.session = session
        self.url = f"http://127.0.0.1:{port}/v1/batch"
        self.clients = clients
        auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        self.headers = {"Content-Type": "application/json", "Authorization": f"Basic {auth}"}
        self.accepted = self.retried = 0

    async def post_all(self, bodies: list[tuple[bytes, int]]) -> None:
        """Post every (body, messages in it); each must come back 200 with all accepted."""
        queue = iter(bodies)

        async def client() -> None:
            for body, size in queue:
                await self._post(body, size)

        await asyncio.gather(*(client() for _ in range(self.clients)))

    async def _post(self, body: bytes, size: int) -> None:
        while True:
            async with self.session.post(self.url, data=body, headers=self.headers) as response:
                if response.status in RETRY_STATUSES:
                    self.retried += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                text = await response.read()
            try:
                answer = codec.loads(text)
            except ValueError:
                answer = {"message": text[:200].decode(errors="replace")}
            if response.status != 200 or answer.get("accepted") != size:
                refused = [r for r in answer.get("results", []) if r["outcome"] != "accepted"]
                raise SegstreamError(
                    f"/v1/batch answered {response.status} with {answer.get('accepted')} of "
                    f"{size} messages accepted: {(refused or [answer])[0]}"
                )
            self.accepted += size
            return


@dataclass
class Totals:
    """What the rounds add up to."""

    messages: int = 0
    anonymous: int = 0
    events: int = 0
    seconds: float = 0.0
    worker_cpu: float = 0.0
    processed: float = 0.0
    direct_events: int = 0
    direct_seconds: float = 0.0
    direct_cpu: float = 0.0


async def measure(
    settings: Settings,
    direct: Settings,
    worker: Contender,
    metrics: WorkerMetrics,
    shop: tuple[int, int],
    count: int,
    rounds: int,
    timeout: float,
    clients: int = CLIENTS,
) -> Ingest:
    """Direct to Kafka (under ``direct``'s prefix, which nothing reads), then through the ready
    worker's Tracking API (under ``settings``'s), in ``rounds`` that take turns, so that a
    change in the machine's load meets both; before each round the worker has caught up.
    ``shop``: the synthetic shop's customers and seed."""
    customers, seed = shop
    sent = messages(customers, count + BATCH, seed, int(time.time() * 1000))
    batched = [sent[start : start + BATCH] for start in range(0, len(sent), BATCH)]
    warm, rest = batched[0], batched[1:]
    per_round = -(-len(rest) // rounds)
    turns = [rest[start : start + per_round] for start in range(0, len(rest), per_round)]
    await ensure_topics(direct)
    sender = Direct(direct)
    totals = Totals()
    retried = 0
    await sender.producer.start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    try:
        await sender.produce(contract_events(direct, warm))
        await Clients(session, settings.web_port, clients).post_all(bodies([warm]))
        for turn in turns:
            await metrics.until_idle(worker, timeout)
            events = [event for batch in turn for event in contract_events(direct, batch)]
            totals.events += len(events)
            totals.anonymous += sum(m["userId"] is None for batch in turn for m in batch)
            started, cpu = time.perf_counter(), time.process_time()
            await sender.produce(events)
            totals.direct_seconds += time.perf_counter() - started
            totals.direct_cpu += time.process_time() - cpu
            totals.direct_events += len(events)

            posting = Clients(session, settings.web_port, clients)
            payloads = bodies(turn)
            before, cpu = await metrics.processed(), cpu_seconds(worker.process.pid)
            started = time.perf_counter()
            await posting.post_all(payloads)
            totals.seconds += time.perf_counter() - started
            totals.worker_cpu += cpu_seconds(worker.process.pid) - cpu
            totals.processed += await metrics.processed() - before
            totals.messages += posting.accepted
            retried += posting.retried
    finally:
        await session.close()
        await sender.producer.stop()
    worker.check_alive()
    return Ingest(
        messages=totals.messages,
        anonymous=totals.anonymous,
        events=totals.events,
        batches=len(rest),
        clients=clients,
        rounds=len(turns),
        seconds=totals.seconds,
        messages_per_second=_rate(totals.messages, totals.seconds),
        events_per_second=_rate(totals.events, totals.seconds),
        direct_events=totals.direct_events,
        direct_seconds=totals.direct_seconds,
        direct_events_per_second=_rate(totals.direct_events, totals.direct_seconds),
        worker_cpu_seconds=totals.worker_cpu,
        worker_cpu_us_per_message=_rate(totals.worker_cpu * 1e6, totals.messages),
        direct_cpu_us_per_event=_rate(totals.direct_cpu * 1e6, totals.direct_events),
        processed_meanwhile=totals.processed,
        retried=retried,
    )


def _rate(amount: float, per: float) -> float:
    return amount / per if per else 0.0
