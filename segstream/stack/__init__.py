"""The local stack: a real Kafka broker (KRaft) and a real Redis, run as child processes."""

from segstream.stack.kafka import LocalKafka
from segstream.stack.local import LocalStack
from segstream.stack.redis import LocalRedis

__all__ = ["LocalKafka", "LocalRedis", "LocalStack"]
