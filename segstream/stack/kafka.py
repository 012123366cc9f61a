"""A real Apache Kafka 4 broker in KRaft mode (combined broker and controller), on loopback."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from config.errors import StackError
from config.settings import env_name
from segstream.stack.process import ServerProcess, require, require_free

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.0.2"
JAVA_HINT = "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "install Apache Maven to fetch the Kafka jars (Debian: apt-get install maven)"


def jar_cache() -> Path:
    """Where the Kafka jars are kept between runs (shared by every stack on the machine)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "segstream" / f"kafka-{KAFKA_VERSION}"


def fetch_jars() -> Path:
    """The directory of the Kafka broker's jars, fetched with Maven the first time."""
    libs = jar_cache() / "libs"
    done = jar_cache() / ".complete"
    if done.exists():
        return libs
    mvn = require("mvn", MAVEN_HINT)
    libs.mkdir(parents=True, exist_ok=True)
    log.info("Fetching Apache Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
    with resources.as_file(resources.files("segstream.stack") / "pom.xml") as pom:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"Maven could not fetch the Kafka jars: {' / '.join(tail)}")
    done.write_text(KAFKA_VERSION)
    return libs


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LocalKafka:
    """One Kafka broker with its data, config and log under ``home``."""

    def __init__(self, home: Path, port: int, controller_port: int | None = None) -> None:
        self.home = home
        self.port = port
        self.controller_port = controller_port or port + 1
        self.process = ServerProcess("kafka", home)
        self.data_dir = home / "data"
        self.config_file = home / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One node: internal topics can only have one replica, so transactions work.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # segstream creates its topics explicitly, with co-partitioned counts.
            "auto.create.topics.enable": "false",
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def _java(self, libs: Path, *args: str, heap: str = "256m") -> list[str]:
        java = require("java", JAVA_HINT)
        with resources.as_file(resources.files("segstream.stack") / "log4j2.xml") as log_config:
            return [
                java,
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log_config}",
                "-cp",
                f"{libs}/*",
                *args,
            ]

    def _format(self, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            # One argument: an id may start with "-", which a separate argument would turn
            # into an unknown option (one format in 64 failed that way).
            f"--cluster-id={_cluster_id()}",
            "-c",
            str(self.config_file),
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"Formatting Kafka storage failed: {result.stdout}{result.stderr}")

    async def ping(self) -> bool:
        """A real metadata request: True when the broker answers and lists itself."""
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        # aiokafka logs every refused connection as an error; here a refusal is an answer.
        aiokafka_log = logging.getLogger("aiokafka")
        level = aiokafka_log.level
        aiokafka_log.setLevel(logging.CRITICAL)
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            return bool(metadata.brokers())
        except (KafkaError, OSError):
            return False
        finally:
            await client.close()
            aiokafka_log.setLevel(level)

    def check_tools(self) -> None:
        """Fail before anything starts if Java is missing (or Maven, while no jars are cached)."""
        require("java", JAVA_HINT)
        if not (jar_cache() / ".complete").exists():
            require("mvn", MAVEN_HINT)

    def check_port(self) -> None:
        """Unless this stack's broker runs, fail if another process has one of its ports."""
        if self.process.pid is None:
            setting = env_name("kafka_bootstrap")
            require_free(self.port, "Kafka", setting)
            require_free(
                self.controller_port,
                "Kafka's controller",
                setting,
                " (the controller takes the port after it)",
            )

    async def start(self, timeout: float = 90.0) -> bool:
        """Start the broker unless it runs already; False if it was running."""
        if self.process.pid is not None and await self.ping():
            return False
        self.check_port()
        libs = fetch_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format(libs)
        argv = self._java(libs, "kafka.Kafka", str(self.config_file), heap="768m")
        self.process.launch(argv)
        await self.process.wait_ready(self.ping, timeout)
        return True

    def stop(self) -> bool:
        return self.process.stop()
