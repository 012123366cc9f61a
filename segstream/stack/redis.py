"""A real Redis server on loopback (nothing persisted, unless asked: the fault tests restart it)."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.settings import env_name
from segstream.stack.process import ServerProcess, require, require_free

REDIS_HINT = "install Debian's redis-server (apt-get install redis-server)"


class LocalRedis:
    """One redis-server with its log under ``home``."""

    def __init__(self, home: Path, port: int, persist: bool = False) -> None:
        self.home = home
        self.port = port
        self.persist = persist
        self.process = ServerProcess("redis", home)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def ping(self) -> bool:
        client = aioredis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    def check_tools(self) -> None:
        require("redis-server", REDIS_HINT)

    def check_port(self) -> None:
        """Unless this stack's Redis runs, fail if another process has its port."""
        if self.process.pid is None:
            require_free(self.port, "Redis", env_name("redis_url"))

    async def start(self, timeout: float = 30.0) -> bool:
        """Start redis-server unless it runs already; False if it was running."""
        if self.process.pid is not None and await self.ping():
            return False
        server = require("redis-server", REDIS_HINT)
        self.check_port()
        argv = [
            server,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.home),
        ]
        self.process.launch(argv)
        await self.process.wait_ready(self.ping, timeout)
        return True

    def stop(self) -> bool:
        return self.process.stop()
