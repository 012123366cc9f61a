"""Kafka SASL/SSL and Redis AUTH/TLS settings reach the clients that use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio.connection import SSLConnection

from config import load_settings
from serving.redis_store import RedisStore
from streams.connections import kafka_options

ROOT = Path(__file__).resolve().parents[2]
SASL = {
    "SEGSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "SEGSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "SEGSTREAM_KAFKA_SASL_USERNAME": "segstream",
    "SEGSTREAM_KAFKA_SASL_PASSWORD": "s3cret-pass",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"security_protocol": "PLAINTEXT"}),
        ({"SEGSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"}, {"security_protocol": "SSL"}),
        (
            SASL,
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "segstream",
                "sasl_plain_password": "s3cret-pass",
            },
        ),
        (
            SASL | {"SEGSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            {"security_protocol": "SASL_PLAINTEXT", "ssl_context": None},
        ),
    ],
    ids=["plaintext", "ssl", "sasl-ssl", "sasl-plaintext"],
)
def test_kafka_security_settings_reach_aiokafka_clients(
    env: dict[str, str], expected: dict[str, object]
) -> None:
    options = kafka_options(load_settings(env | {"SEGSTREAM_KAFKA_BOOTSTRAP": "k1:9093"}))
    assert options["bootstrap_servers"] == "k1:9093"
    assert {name: options.get(name) for name in expected} == expected
    if expected["security_protocol"] in ("SSL", "SASL_SSL"):
        assert options["ssl_context"] is not None


def test_kafka_security_settings_reach_the_faust_app() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from segstream.app import app; c = app.conf.broker_credentials; "
            "print(type(c).__name__, c.username, c.mechanism.value, c.protocol.value)",
        ],
        env={"PATH": "/usr/bin:/bin", **SASL},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.stdout.split() == ["SASLCredentials", "segstream", "SCRAM-SHA-512", "SASL_SSL"]


def test_sasl_without_a_password_stops_with_one_sentence() -> None:
    env = {k: v for k, v in SASL.items() if k != "SEGSTREAM_KAFKA_SASL_PASSWORD"}
    with pytest.raises(
        Exception, match="needs SEGSTREAM_KAFKA_SASL_USERNAME and SEGSTREAM_KAFKA_SASL_PASSWORD"
    ):
        load_settings(env)


def test_every_kafka_client_connects_through_kafka_options() -> None:
    """Only the local stack's own health probe builds a client from a bare address."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("agents", "config", "segstream", "serving", "streams")
        for path in (ROOT / folder).rglob("*.py")
        if "bootstrap_servers=" in path.read_text()
        and path.name not in ("connections.py", "kafka.py")
    ]
    assert offenders == []


async def test_redis_auth_and_tls_reach_the_store_client() -> None:
    settings = load_settings({"SEGSTREAM_REDIS_URL": "rediss://:hunter2-pw@cache.internal:6380/3"})
    store = RedisStore.connect(settings)
    try:
        pool = store.client.connection_pool
        assert pool.connection_class is SSLConnection
        assert pool.connection_kwargs["password"] == "hunter2-pw"
        assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == (
            "cache.internal",
            6380,
        )
    finally:
        await store.close()
