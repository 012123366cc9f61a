"""Webhook subscriptions followed from their keyed log, and this worker's deliveries kept in
step with them (``serving.webhooks`` says how a delivery works)."""

from __future__ import annotations

import logging

from config import names
from engine.webhooks import Subscription
from segstream.app import app, settings
from serving import metrics
from serving.webhooks import Deliveries, Followed, backlog, stored
from streams import codec, keyed_log
from streams.kafka_clients import committed_reader
from streams.timestamps import wall_clock_ms

log = logging.getLogger(__name__)

BACKLOG_INTERVAL_S = 10.0

followed = Followed()


async def publish(subscription: Subscription) -> None:
    """Write a subscription (new, paused, resumed) to the log every worker follows."""
    record = codec.dumps(subscription.to_record())
    await keyed_log.publish(settings, names.WEBHOOK_SUBSCRIPTIONS, [(subscription.id, record)])


async def pause(subscription: Subscription, reason: str) -> None:
    """Pause a subscription whose deliveries keep failing, unless it changed meanwhile (deleted,
    paused or resumed by someone, edited): the newer record stands."""
    if (await stored(settings)).get(subscription.id) != subscription:
        log.info("Webhook subscription %s changed meanwhile; not paused", subscription.id)
        return
    await publish(subscription.paused_by(reason, wall_clock_ms()))


deliveries = Deliveries(settings, pause)


@app.task
async def follow_subscriptions() -> None:
    """Follow the subscriptions for as long as the worker runs."""
    try:
        await keyed_log.follow_forever("webhook subscriptions", _follow)
    finally:
        await deliveries.stop()


async def _follow() -> None:
    partition = keyed_log.log_partition(settings, names.WEBHOOK_SUBSCRIPTIONS)
    consumer = committed_reader(settings)
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, followed.offset)
        while True:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            records = batches.get(partition, [])
            if records:
                followed.after(keyed_log.as_read(records))
            deliveries.sync(followed.by_id)
    finally:
        await consumer.stop()


@app.timer(interval=BACKLOG_INTERVAL_S)
async def measure_backlog() -> None:
    for subscription in list(followed.by_id.values()):
        try:
            waiting = await backlog(settings, subscription)
        except Exception as exc:  # Kafka out of reach: the gauge keeps its last value
            log.debug("Could not measure a webhook backlog: %r", exc)
            continue
        metrics.webhook_backlog.labels(subscription.id).set(waiting)
