"""Every topic segstream reads or writes, declared once on the app."""

from __future__ import annotations

import faust

from config import names
from segstream.app import app, settings


def _declare(*topic_names: str) -> faust.TopicT:
    return app.topic(
        *(settings.topic(name) for name in topic_names),
        partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )


# All input topics and the timer's ticks feed one stream, so one agent sees each customer's
# records in partition order, co-partitioned with the customers table.
customer_events = _declare(*names.INPUT_TOPICS, *names.INTERNAL_TOPICS)
customer_ticks = _declare(names.CUSTOMER_TICKS)
identity_merges = _declare(names.IDENTITY_MERGES)
# Each input topic on its own, for producing to it (the HTTP ingest endpoint).
input_topics = {name: _declare(name) for name in names.INPUT_TOPICS}
segment_changes = _declare(names.SEGMENT_CHANGES)
campaign_facts = _declare(names.CAMPAIGN_FACTS)
triggers = _declare(names.TRIGGERS)
dead_letters = _declare(names.DEAD_LETTERS)
late_events = _declare(names.LATE_EVENTS)


def base_name(full_name: str) -> str:
    """The contract name of a topic (without the deployment's prefix)."""
    return full_name.removeprefix(settings.topic_prefix)
