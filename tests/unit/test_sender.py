"""A coordinator look-up cut off by a broker restart is retried, not fatal to the producer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.client import CoordinationType
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    StaleMetadata,
    UnsupportedVersionError,
)
from aiokafka.producer.sender import Sender

from segstream.faust_patches.app import SegstreamProducer
from segstream.faust_patches.sender import (
    CoordinatorRetryingKafkaProducer,
    CoordinatorRetryingSender,
)

COORDINATOR = 7


class FlakyBroker:
    """A client whose coordinator look-ups fail with ``failures`` in turn, then answer."""

    def __init__(self, *failures: KafkaError) -> None:
        self.failures = list(failures)
        self.lookups = 0

    async def coordinator_lookup(self, coordinator_type: Any, key: str) -> int:
        self.lookups += 1
        if self.failures:
            raise self.failures.pop(0)
        return COORDINATOR

    async def ready(self, node_id: int, group: Any = None) -> bool:
        return True

    async def force_metadata_update(self) -> bool:
        return True


def sender(kind: type[Sender], client: FlakyBroker) -> Sender:
    return kind(
        client,
        acks=-1,
        txn_manager=SimpleNamespace(transactional_id="segstream-0-0"),
        message_accumulator=None,
        retry_backoff_ms=1,
        request_timeout_ms=1000,
    )


async def find(s: Sender) -> int:
    return await s._find_coordinator(CoordinationType.GROUP, "segstream")


async def test_aiokafka_gives_up_when_the_connection_closes_mid_lookup() -> None:
    # The defect CoordinatorRetryingSender is for; if aiokafka fixes it, it can go.
    client = FlakyBroker(KafkaConnectionError("Connection at 127.0.0.1:9092 closed"))
    with pytest.raises(KafkaError):
        await find(sender(Sender, client))


@pytest.mark.parametrize(
    "failures",
    [
        [KafkaConnectionError("closed")],
        [KafkaConnectionError("closed"), StaleMetadata("broker 1 not in metadata")],
        [KafkaConnectionError("closed")] * 5,
    ],
)
async def test_retriable_failures_are_retried_until_the_coordinator_answers(
    failures: list[KafkaError],
) -> None:
    client = FlakyBroker(*failures)
    assert await find(sender(CoordinatorRetryingSender, client)) == COORDINATOR
    assert client.lookups == len(failures) + 1


async def test_an_error_retrying_cannot_fix_still_raises() -> None:
    client = FlakyBroker(UnsupportedVersionError())
    with pytest.raises(KafkaError):
        await find(sender(CoordinatorRetryingSender, client))
    assert client.lookups == 1


async def test_faust_producers_get_the_coordinator_retrying_sender() -> None:
    assert SegstreamProducer._producer_type.fget(None) is CoordinatorRetryingKafkaProducer  # type: ignore[attr-defined]
    producer = CoordinatorRetryingKafkaProducer(
        bootstrap_servers="127.0.0.1:9", transactional_id="t", retry_backoff_ms=250
    )
    sender = producer._sender
    assert isinstance(sender, CoordinatorRetryingSender)
    # The settings of the sender aiokafka built, and the producer's own parts.
    assert sender._acks == -1 and sender._retry_backoff == 0.25
    assert sender._message_accumulator is producer._message_accumulator
    assert sender._txn_manager is producer._txn_manager and sender.client is producer.client
    await producer.stop()
