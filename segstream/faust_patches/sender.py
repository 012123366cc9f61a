"""The Kafka producer Faust's transactions run on, made to outlast a broker restart.

aiokafka's sender looks up the transaction and group coordinators before it begins a
transaction or adds consumed offsets to one. It retries that look-up when the broker answers
"not available" or does not answer in time, but a connection that closes while the request is
out (the broker stopping) ends its background task for good: every later send and commit fails
with "Unexpected error during batch delivery", Faust's consumer crashes on it and the
exactly-once worker exits instead of reconnecting (seen in the broker-stop fault test).
``CoordinatorRetryingSender`` retries every error aiokafka marks retriable, as the Java client does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiokafka
from aiokafka.errors import KafkaError
from aiokafka.producer.sender import Sender

log = logging.getLogger(__name__)


class CoordinatorRetryingSender(Sender):
    """aiokafka's sender whose coordinator look-up retries every retriable error."""

    async def _find_coordinator(self, coordinator_type: Any, coordinator_key: str) -> Any:
        while True:
            try:
                return await super()._find_coordinator(coordinator_type, coordinator_key)
            except KafkaError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, KafkaError) and cause.retriable):
                    raise
                log.warning("Coordinator look-up failed, retrying: %r", cause)
                await asyncio.sleep(self._retry_backoff)


class CoordinatorRetryingKafkaProducer(aiokafka.AIOKafkaProducer):
    """aiokafka's producer with a ``CoordinatorRetryingSender``. aiokafka builds its sender in
    ``__init__`` and offers no hook: a retrying sender is built there with the settings of the
    one aiokafka built, in its place, before anything has used it (``start`` starts it)."""

    _sender: Sender

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        built = self._sender
        self._sender = CoordinatorRetryingSender(
            self.client,
            acks=built._acks,
            txn_manager=built._txn_manager,
            message_accumulator=built._message_accumulator,
            retry_backoff_ms=built._retry_backoff * 1000,
            request_timeout_ms=built._request_timeout_ms,
        )
