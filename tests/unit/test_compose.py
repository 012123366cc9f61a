"""docker-compose.yml cannot run here; check that it agrees with what the settings object reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    pairs = (str(p).split(":") for p in service.get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def listener_ports(kafka: dict[str, Any], name: str) -> dict[str, int]:
    listeners = kafka["environment"][name].split(",")
    return {item.split("://")[0]: int(item.rpartition(":")[2]) for item in listeners}


def test_services_are_kafka_redis_and_the_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "worker"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["redis"]["image"] == "redis:7"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert (ROOT / services["worker"]["build"] / "Dockerfile").exists()


def test_worker_environment_is_valid_settings(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}
    assert all(name.startswith("SEGSTREAM_") for name in env)
    settings = load_settings(env)  # raises ConfigError on an unknown or bad variable
    assert settings.web_port in published(compose["services"]["worker"])


def test_worker_reaches_kafka_on_an_advertised_listener(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    settings = load_settings(
        {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}
    )
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    addresses = {item.split("://")[1] for item in advertised}
    assert settings.kafka_bootstrap in addresses
    host_port = listener_ports(kafka, "KAFKA_ADVERTISED_LISTENERS")["EXTERNAL"]
    assert host_port in published(kafka).values()
    default_port = load_settings({}).kafka_port
    assert published(kafka)[listener_ports(kafka, "KAFKA_LISTENERS")["EXTERNAL"]] == default_port


def test_worker_reaches_redis(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}
    url = urlsplit(load_settings(env).redis_url.get_secret_value())
    assert url.hostname == "redis"
    assert url.port in published(compose["services"]["redis"])
    assert published(compose["services"]["redis"])[url.port] == load_settings({}).redis_port
