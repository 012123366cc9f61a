"""Every topic segstream reads or writes, declared once on the app."""

from __future__ import annotations

import faust

from config import names
from segstream.app import app, settings


def _declare(name: str) -> faust.TopicT:
    return app.topic(
        settings.topic(name),
        partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )


# All input topics feed one stream, so one agent sees a customer's events in partition order.
customer_events = app.topic(
    *(settings.topic(name) for name in names.INPUT_TOPICS),
    partitions=settings.partitions,
    key_serializer="raw",
    value_serializer="raw",
)
segment_changes = _declare(names.SEGMENT_CHANGES)
dead_letters = _declare(names.DEAD_LETTERS)


def base_name(full_name: str) -> str:
    """The contract name of a topic (without the deployment's prefix)."""
    return full_name.removeprefix(settings.topic_prefix)
