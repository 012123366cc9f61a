"""Create segstream's topics explicitly, and refuse a layout that breaks co-partitioning."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from config import Settings, names
from config.errors import StackError, TopicLayoutError
from streams.connections import kafka_options

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
COMPACTED = {"cleanup.policy": "compact"}
# Ticks matter only until processed; a day covers any restart.
SHORT_LIVED = {"retention.ms": str(24 * 3600 * 1000)}


def unreachable(settings: Settings, exc: Exception) -> StackError:
    return StackError(
        f"Cannot reach Kafka at {settings.kafka_bootstrap} (SEGSTREAM_KAFKA_BOOTSTRAP): {exc}."
    )


def changelog_topic(settings: Settings, table: str) -> str:
    """The name Faust gives a table's changelog topic."""
    return f"{settings.group_id}-{table}-changelog"


def wanted_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic segstream needs, with its topic-level configuration."""
    topics: dict[str, dict[str, str]] = {
        settings.topic(name): {}
        for name in (*names.INPUT_TOPICS, *names.INTERNAL_TOPICS, *names.OUTPUT_TOPICS)
    }
    topics[changelog_topic(settings, names.CUSTOMERS_TABLE)] = COMPACTED
    topics[settings.topic(names.CUSTOMER_TICKS)] = SHORT_LIVED
    for name in (names.SEGMENT_DEFINITIONS, names.WEBHOOK_SUBSCRIPTIONS):
        topics[settings.topic(name)] = COMPACTED
    return topics


def single_partition(settings: Settings) -> set[str]:
    """Topics of one partition, outside co-partitioning: every worker reads all of them."""
    return {settings.topic(names.SEGMENT_DEFINITIONS), settings.topic(names.WEBHOOK_SUBSCRIPTIONS)}


async def ensure_topics(settings: Settings, extra: tuple[str, ...] = ()) -> list[str]:
    """Create the missing topics (segstream's and the ``extra`` ones, named without prefix);
    return their names. Existing ones must match in partitions."""
    admin = AIOKafkaAdminClient(**kafka_options(settings), client_id=f"{settings.group_id}-admin")
    try:
        await admin.start()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    try:
        wanted = wanted_topics(settings) | {settings.topic(name): {} for name in extra}
        single = single_partition(settings)
        existing = set(await admin.list_topics())
        for described in await admin.describe_topics(sorted(existing & set(wanted) - single)):
            count = len(described["partitions"])
            if count != settings.partitions:
                raise TopicLayoutError(
                    f"Topic {described['topic']!r} has {count} partitions but "
                    f"SEGSTREAM_PARTITIONS is {settings.partitions}; co-partitioned topics "
                    "must agree (add partitions to the topic or change the setting)."
                )
        missing = [name for name in wanted if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=1 if name in single else settings.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=wanted[name],
                    )
                    for name in missing
                ]
            )
            failed = [
                f"{topic}: {message or code}"
                for topic, code, message in response.topic_errors
                if code not in (0, TOPIC_ALREADY_EXISTS)
            ]
            if failed:
                raise StackError(f"Kafka refused to create topics: {'; '.join(failed)}.")
            log.info("Created topics: %s", ", ".join(missing))
            await _wait_for_leaders(admin, missing)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    """New topics take a moment to get partition leaders; producing before that fails."""
    for _ in range(100):
        described = await admin.describe_topics(topics)
        if all(
            not topic["error_code"]
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)
    raise StackError(f"Kafka created {', '.join(topics)} but elected no leaders within 10s.")


async def partition_ids(settings: Settings, topic: str) -> list[int]:
    """The partitions of a (full-named) topic, from a fresh metadata request."""
    client = AIOKafkaClient(**kafka_options(settings))
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    except KafkaError as exc:
        raise unreachable(settings, exc) from None
    finally:
        await client.close()
    ids = metadata.partitions_for_topic(topic)
    if not ids:
        raise StackError(f"Topic {topic!r} does not exist.")
    return sorted(ids)
