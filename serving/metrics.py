"""Prometheus metrics of a worker (served at /metrics). Counters are cheap per event: a cached
label look-up and an add."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series only add noise here

registry = CollectorRegistry(auto_describe=True)

events_in = Counter(
    "segstream_events_in", "Input records read, per topic", ["topic"], registry=registry
)
events_applied = Counter(
    "segstream_events_applied",
    "Input records applied to a customer's state",
    ["topic"],
    registry=registry,
)
events_dead_lettered = Counter(
    "segstream_events_dead_lettered",
    "Input records refused and sent to dead-letters",
    ["topic"],
    registry=registry,
)
internal_errors = Counter(
    "segstream_internal_errors",
    "Records that failed on a bug, not bad input (also dead-lettered unless the worker stops)",
    ["topic", "error"],
    registry=registry,
)
events_late = Counter(
    "segstream_events_late",
    "Applied input records part of which came too late to count (see late-events), per topic",
    ["topic"],
    registry=registry,
)
identity_links = Counter(
    "segstream_identity_links",
    "Links of an anonymous id to a customer, by outcome: merge (the visitor's events go to the "
    "customer), repeat (linked to that customer already), conflict (another customer has it)",
    ["outcome"],
    registry=registry,
)
events_rejected = Counter(
    "segstream_events_rejected",
    "Events refused at the HTTP door (never produced), per topic",
    ["topic"],
    registry=registry,
)
tracking_messages = Counter(
    "segstream_tracking_messages",
    "Tracking API messages (Segment/RudderStack SDKs) per source and outcome: accepted, "
    "ignored (valid, not segmented on) or rejected (dead-lettered)",
    ["source", "outcome"],
    registry=registry,
)
ingest_refused = Counter(
    "segstream_ingest_refused",
    "HTTP requests refused because Kafka could not take their events (answered 429 or 503), "
    "per reason",
    ["reason"],
    registry=registry,
)
ingest_pending_bytes = Gauge(
    "segstream_ingest_pending_bytes",
    "Bytes of HTTP events sent to Kafka and not acknowledged yet",
    registry=registry,
)
transitions = Counter(
    "segstream_transitions", "Segment changes published", ["segment", "change"], registry=registry
)
triggers = Counter("segstream_triggers", "Triggers published", ["trigger"], registry=registry)
change_latency = Histogram(
    "segstream_change_latency_seconds",
    "From the causing record's Kafka timestamp (or the deadline) to the change being published",
    ["cause"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=registry,
)
consumer_lag = Gauge(
    "segstream_consumer_lag",
    "Records not yet processed, per input topic",
    ["topic"],
    registry=registry,
)
deadlines_scheduled = Gauge(
    "segstream_deadlines_scheduled",
    "Customers with a pending time-driven deadline",
    registry=registry,
)
deadlines_overdue = Gauge(
    "segstream_deadlines_overdue",
    "Deadlines past due and not yet fired (the timer backlog)",
    registry=registry,
)
changelog_restored = Counter(
    "segstream_changelog_restored",
    "Customers table changelog records restored at start-up or on rebalance",
    registry=registry,
)
redis_writes = Counter(
    "segstream_redis_changes_applied",
    "Segment changes applied to the Redis store",
    registry=registry,
)
redis_errors = Counter("segstream_redis_errors", "Failed Redis writes (retried)", registry=registry)
store_customers_checked = Counter(
    "segstream_store_customers_checked",
    "Customers checked against the serving store by its catch-up (restart, flush)",
    registry=registry,
)
store_customers_repaired = Counter(
    "segstream_store_customers_repaired",
    "Customers the catch-up rewrote in the serving store (it held an older version or none)",
    registry=registry,
)
catalog_reevaluation_total = Gauge(
    "segstream_catalog_reevaluation_customers",
    "Stored customers to re-evaluate against changed segment definitions (this worker)",
    registry=registry,
)
catalog_reevaluation_done = Gauge(
    "segstream_catalog_reevaluation_done",
    "Of those, the customers re-evaluated so far",
    registry=registry,
)
definitions_offset = Gauge(
    "segstream_definitions_offset",
    "The segment-definitions offset this worker has read (its definitions version)",
    registry=registry,
)
definitions_refused = Counter(
    "segstream_definitions_refused",
    "Definition changes that made no valid catalog (the worker kept the one it runs)",
    registry=registry,
)

webhook_deliveries = Counter(
    "segstream_webhook_deliveries",
    "Webhook delivery tries per subscription, by outcome: delivered, failed",
    ["subscription", "outcome"],
    registry=registry,
)
webhook_records = Counter(
    "segstream_webhook_records",
    "Changes and triggers delivered to webhook receivers, per subscription",
    ["subscription"],
    registry=registry,
)
webhook_latency = Histogram(
    "segstream_webhook_delivery_seconds",
    "How long a webhook receiver took to answer a delivery try, per subscription",
    ["subscription"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)
webhook_backlog = Gauge(
    "segstream_webhook_backlog",
    "Records published and not yet delivered, per webhook subscription (all workers)",
    ["subscription"],
    registry=registry,
)
webhook_skipped = Counter(
    "segstream_webhook_skipped",
    "Output records that were not JSON, passed over by a webhook subscription",
    ["subscription"],
    registry=registry,
)


def labelled(metric: Counter | Gauge | Histogram) -> Callable[..., Any]:
    """``metric.labels``, remembered per label values: the per-event path skips its lock and
    look-up (label values here come from small fixed sets: topics, segments, triggers)."""
    return cache(metric.labels)


def render() -> bytes:
    return generate_latest(registry)
