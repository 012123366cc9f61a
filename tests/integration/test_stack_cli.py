"""The local stack and the CLI, run as a user runs them: `segstream stack ...`, `segstream demo`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from config import names
from segstream.stack import LocalStack
from segstream.stack.process import free_port
from tests.integration.deployment import run_segstream
from tests.integration.kafka_io import records_until_quiet

pytestmark = pytest.mark.integration


segstream = run_segstream


def stack_env(home: Path, kafka_port: int, redis_port: int) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    return base | {
        "SEGSTREAM_STACK_DIR": str(home),
        "SEGSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "SEGSTREAM_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SEGSTREAM_DATA_DIR": str(home / "worker"),
        "SEGSTREAM_WEB_PORT": str(free_port()),
    }


def test_stack_start_status_stop_are_idempotent(stack: LocalStack, tmp_path: Path) -> None:
    env = stack_env(tmp_path / "stack", free_port(), free_port())

    first = segstream(env, "stack", "start")
    pid_files = sorted(p.name for p in (tmp_path / "stack").rglob("*.pid"))
    second = segstream(env, "stack", "start")
    status = segstream(env, "stack", "status", "--json")
    stop = segstream(env, "stack", "stop")
    stop_again = segstream(env, "stack", "stop")
    status_after = segstream(env, "stack", "status", "--json")

    assert first.returncode == 0, first.stderr
    assert first.stdout.split("\n")[:2] == ["kafka: started", "redis: started"]
    assert pid_files == ["kafka.pid", "redis.pid"]
    assert second.stdout.split("\n")[:2] == ["kafka: already running", "redis: already running"]
    assert status.returncode == 0
    assert {name: info["ready"] for name, info in json.loads(status.stdout).items()} == {
        "kafka": True,
        "redis": True,
    }
    assert stop.stdout.split("\n")[:2] == ["redis: stopped", "kafka: stopped"]
    assert stop_again.stdout.split("\n")[:2] == ["redis: was not running", "kafka: was not running"]
    assert status_after.returncode == 1
    assert not any(info["ready"] for info in json.loads(status_after.stdout).values())
    assert not list((tmp_path / "stack").rglob("*.pid"))


def test_status_reports_the_running_session_stack(stack: LocalStack) -> None:
    env = stack_env(stack.kafka.home.parent, stack.kafka.port, stack.redis.port)

    result = segstream(env, "stack", "status", "--json")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["kafka"]["pid"] == stack.kafka.process.pid
    assert status["redis"]["pid"] == stack.redis.process.pid


def test_missing_redis_server_is_one_sentence_and_starts_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = subprocess.run(["which", "java"], capture_output=True, text=True, check=True)
    (bin_dir / "java").symlink_to(java.stdout.strip())
    env = stack_env(tmp_path / "stack", free_port(), free_port()) | {"PATH": str(bin_dir)}

    result = segstream(env, "stack", "start")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "segstream: redis-server is not installed: "
        "install Debian's redis-server (apt-get install redis-server)."
    ]
    assert not list(tmp_path.rglob("*.pid"))


@pytest.mark.parametrize(
    ("server", "stale_pid_file"), [("Redis", False), ("Kafka", False), ("Redis", True)]
)
def test_a_port_another_server_holds_is_one_sentence_and_starts_nothing(
    server: str, stale_pid_file: bool, tmp_path: Path
) -> None:
    """A developer's own Redis (or another Kafka) on the port: segstream would otherwise talk to
    it in place of the server it failed to start. A stale pid file whose number another process
    has now (after a reboot, say) does not make it look like the stack's own."""
    kafka_port, redis_port = free_port(), free_port()
    taken = redis_port if server == "Redis" else kafka_port
    setting = "SEGSTREAM_REDIS_URL" if server == "Redis" else "SEGSTREAM_KAFKA_BOOTSTRAP"
    if stale_pid_file:
        (tmp_path / "stack" / "redis").mkdir(parents=True)
        (tmp_path / "stack" / "redis" / "redis.pid").write_text(str(os.getpid()))
    with socket.socket() as other:
        other.bind(("127.0.0.1", taken))
        other.listen()
        result = segstream(stack_env(tmp_path / "stack", kafka_port, redis_port), "stack", "start")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"segstream: port {taken}, where {server} should start, is taken by another process: "
        f"stop it, or set {setting} to a free port."
    ]
    assert len(list(tmp_path.rglob("*.pid"))) == stale_pid_file


def test_bad_setting_stops_the_worker_with_one_sentence(stack: LocalStack, tmp_path: Path) -> None:
    env = stack_env(tmp_path, stack.kafka.port, stack.redis.port) | {"SEGSTREAM_PARTITIONS": "four"}

    result = segstream(env, "worker")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "segstream: Bad setting in the environment: SEGSTREAM_PARTITIONS='four'"
    )


def test_bad_catalog_stops_the_worker_before_it_consumes(stack: LocalStack, tmp_path: Path) -> None:
    catalog = tmp_path / "segments.yaml"
    catalog.write_text("segments:\n  a:\n    description: A\n    when: {segment: b}\n")
    env = stack_env(tmp_path, stack.kafka.port, stack.redis.port) | {
        "SEGSTREAM_SEGMENTS_FILE": str(catalog)
    }

    result = segstream(env, "worker")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"segstream: {catalog}: segment 'a', field 'when': refers to unknown segment 'b'."
    ]


def test_demo_shows_segment_changes_and_stops_what_it_started(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "stack", free_port(), free_port())

    result = segstream(env, "demo", "--rate", "30", "--duration", "45", timeout=170)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "→ enter  first_time_buyers" in result.stdout
    assert result.stdout.rstrip().endswith("Stopped: worker, Redis, Kafka.")
    assert not list((tmp_path / "stack").rglob("*.pid"))


def test_simulate_sends_the_shop_mix(stack: LocalStack, tmp_path: Path) -> None:
    env = stack_env(tmp_path, stack.kafka.port, stack.redis.port) | {
        "SEGSTREAM_TOPIC_PREFIX": "sim."
    }

    result = segstream(env, "simulate", "--count", "200", "--rate", "0", "--customers", "20")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 200 events"
    counts = asyncio.run(count_records(env, "sim."))
    assert sum(counts.values()) == 200
    assert set(counts) == set(names.EVENT_TOPICS)  # every kind of event in the shop's mix


async def count_records(env: dict[str, str], prefix: str) -> dict[str, int]:
    topics = [prefix + name for name in names.EVENT_TOPICS]
    counts: dict[str, int] = {}
    for record in await records_until_quiet(env["SEGSTREAM_KAFKA_BOOTSTRAP"], topics):
        name = record.topic.removeprefix(prefix)
        counts[name] = counts.get(name, 0) + 1
    return counts
