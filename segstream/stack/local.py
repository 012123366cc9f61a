"""The local stack as one thing: start, status and stop Kafka and Redis together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from segstream.stack.kafka import LocalKafka
from segstream.stack.redis import LocalRedis


@dataclass
class LocalStack:
    kafka: LocalKafka
    redis: LocalRedis

    @classmethod
    def create(
        cls, home: Path, kafka_port: int, redis_port: int, controller_port: int | None = None
    ) -> LocalStack:
        return cls(
            LocalKafka(home / "kafka", kafka_port, controller_port),
            LocalRedis(home / "redis", redis_port),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStack:
        return cls.create(settings.stack_dir.resolve(), settings.kafka_port, settings.redis_port)

    async def start(self) -> dict[str, bool]:
        """Start what is not running; say which of the two this call started."""
        self.kafka.check_tools()
        self.redis.check_tools()
        self.kafka.check_port()
        self.redis.check_port()
        return {"kafka": await self.kafka.start(), "redis": await self.redis.start()}

    async def status(self) -> dict[str, dict[str, Any]]:
        return {
            "kafka": {
                "pid": self.kafka.process.pid,
                "address": self.kafka.bootstrap,
                "ready": await self.kafka.ping(),
                "log": str(self.kafka.process.log_file),
            },
            "redis": {
                "pid": self.redis.process.pid,
                "address": self.redis.url,
                "ready": await self.redis.ping(),
                "log": str(self.redis.process.log_file),
            },
        }

    def stop(self, kafka: bool = True, redis: bool = True) -> dict[str, bool]:
        """Stop the servers; say which of the two were running."""
        return {
            "redis": self.redis.stop() if redis else False,
            "kafka": self.kafka.stop() if kafka else False,
        }
