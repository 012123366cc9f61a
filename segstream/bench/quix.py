"""The ``quix`` contender: the workload's buyer segments written with Quix Streams, the library a
Python developer would pick instead of Faust.

One Quix ``Application`` (its own consumer group, from the earliest offset, Quix's defaults
otherwise: at-least-once, a checkpoint every 5 s, RocksDB state with a changelog topic) reads
the seven event topics, concatenated into one ``StreamingDataFrame`` so that one state store
holds each customer (the topics are keyed by customer id). Per customer the state keeps the
order count and spend, the last event time of each kind, and consent; each event that moves
the customer into or out of ``first_time_buyers`` (exactly one order) or ``repeat_buyers``
(two or more) sends a change record, keyed by customer, to ``bench-quix-changes``.

Simplified against segstream's engine (``config/segments.yaml``): the two segments are these
counts hard-coded, with the catalog's default consent rule (``email_consent`` true; a
suppression withdraws it, an opt-in gives it back, and a profile update does not re-consent a
suppressed address), but consent events are taken in arrival order, not by their time; an
order redelivered (Quix's at-least-once, or a producer's retry) counts again; no rolling
windows, time-driven exits or deadlines (neither segment has any).

Its time runs from the first event seen to the end of the app's run: Quix's final checkpoint
(the changes and the changelog flushed, the offsets committed) and its shutdown. Concatenated
topics make Quix align them by timestamp, and each refill of its buffer waits up to the 1 s
poll timeout for a full batch: at the end of the backlog that adds a few seconds, counted.

quixstreams is imported when the contender runs, so that the worker's install needs it not.
"""

from __future__ import annotations

from typing import Any

from config import Settings, names
from config.errors import SegstreamError
from engine.changes import ENTER, EXIT
from segstream.bench.contenders import Finish, input_topics
from streams.timestamps import format_ts

CHANGES = "bench-quix-changes"
# Order counts of the two segments (min, max; None: no upper bound), from config/segments.yaml.
SEGMENTS: dict[str, tuple[int, int | None]] = {
    "first_time_buyers": (1, 1),
    "repeat_buyers": (2, None),
}


def new_customer() -> dict[str, Any]:
    return {"orders": 0, "spend": 0.0, "last": {}, "consent": False, "suppressed": False}


def segments_of(customer: dict[str, Any]) -> set[str]:
    if not customer["consent"]:
        return set()
    orders = customer["orders"]
    return {
        name
        for name, (low, high) in SEGMENTS.items()
        if orders >= low and (high is None or orders <= high)
    }


def fold(customer: dict[str, Any], kind: str, event: dict[str, Any]) -> None:
    """One event of the topic named ``kind`` (without the deployment's prefix)."""
    last = customer["last"]
    last[kind] = max(last.get(kind, event["ts"]), event["ts"])
    if kind == names.PURCHASES:
        customer["orders"] += 1
        customer["spend"] += event["total"]
    elif kind == names.PROFILE_UPDATES:
        if event.get("suppression"):
            customer["consent"], customer["suppressed"] = False, True
        elif event.get("opt_in"):
            customer["consent"], customer["suppressed"] = True, False
        else:
            consent = (event.get("traits") or {}).get("email_consent")
            if consent is False or (consent is True and not customer["suppressed"]):
                customer["consent"] = consent


def changes(before: set[str], after: set[str], event: dict[str, Any]) -> list[dict[str, Any]]:
    """The change records of one event, as segstream's changes name their fields."""
    return [
        {
            "customer_id": event["customer_id"],
            "segment": segment,
            "change": ENTER if segment in after else EXIT,
            "at": format_ts(event["ts"]),
            "cause_event_id": event["event_id"],
        }
        for segment in sorted(before ^ after)
    ]


def connection(settings: Settings) -> Any:
    """Quix's (librdkafka's) connection settings for this deployment's broker."""
    from quixstreams.kafka.configuration import ConnectionConfig

    password = settings.kafka_sasl_password
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = password.get_secret_value() if password else ""
    if settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = settings.kafka_ssl_cafile
    return ConnectionConfig.from_librdkafka_dict(config)


def run_quix(settings: Settings, group: str, expected: int) -> None:
    """Process the workload, stop at the last event; report once Quix's final checkpoint has
    flushed the changes and the changelog and committed the offsets."""
    try:
        from quixstreams import Application, State, message_context
    except ImportError:
        raise SegstreamError(
            "the quix contender needs quixstreams: pip install 'segstream[bench]'"
        ) from None

    app = Application(
        broker_address=connection(settings),
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=settings.data_dir / "quix-state",
    )
    prefix = len(settings.topic_prefix)
    finish = Finish(expected)

    def step(event: dict[str, Any], state: State) -> list[dict[str, Any]]:
        customer = state.get("customer") or new_customer()
        before = segments_of(customer)
        fold(customer, message_context().topic[prefix:], event)
        state.set("customer", customer)
        if finish.counted():
            app.stop()
        return changes(before, segments_of(customer), event)

    first, *others = [app.dataframe(app.topic(name)) for name in input_topics(settings)]
    for other in others:
        first = first.concat(other)
    first.apply(step, stateful=True, expand=True).to_topic(app.topic(settings.topic(CHANGES)))
    app.run()
    finish.report()
