"""config.settings.load_settings: SEGSTREAM_* variables in, one Settings or one ConfigError out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config import names
from config.errors import ConfigError
from config.settings import Settings, load_settings

SECRET = "hunter2-s3cret"


@pytest.fixture(autouse=True)
def no_segstream_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process environment must not leak into a test's settings."""
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return str(caught.value)


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert settings.app_id == "segstream"
    assert settings.topic_prefix == ""
    assert settings.partitions == 4
    assert settings.replication_factor == 1
    assert settings.processing_guarantee == "at_least_once"
    assert settings.store == "memory://"
    assert settings.data_dir == Path("var/worker")
    assert settings.web_host == "127.0.0.1"
    assert settings.web_port == 6066
    assert settings.log_level == "info"
    assert settings.stack_dir == Path(".stack")
    assert (settings.kafka_port, settings.redis_port) == (9092, 6379)
    assert settings.segments_file == ""
    assert settings.cart_quiet_minutes == 60
    assert settings.redis_stream_maxlen == 100_000
    assert settings.size_sample_seconds == 10
    assert settings.size_samples_kept == 8640


def test_other_variables_are_ignored() -> None:
    environ = {"PATH": "/bin", "KAFKA_BOOTSTRAP": "x", "segstream_partitions": "9", "HOME": "/"}
    assert load_settings(environ) == load_settings({})


READ_FROM_ENVIRONMENT = [
    ("kafka_bootstrap", "k1:19092,k2:19093", "k1:19092,k2:19093"),
    ("redis_url", "rediss://cache:6380/2", "rediss://cache:6380/2"),
    ("kafka_security_protocol", "SSL", "SSL"),
    ("kafka_sasl_mechanism", "SCRAM-SHA-256", "SCRAM-SHA-256"),
    ("kafka_sasl_username", "segstream", "segstream"),
    ("kafka_sasl_password", "pw-123", "pw-123"),
    ("kafka_ssl_cafile", "/etc/passwd", "/etc/passwd"),
    ("app_id", "shop-seg", "shop-seg"),
    ("topic_prefix", "staging.", "staging."),
    ("partitions", "12", 12),
    ("replication_factor", "3", 3),
    ("processing_guarantee", "exactly_once", "exactly_once"),
    ("store", "rocksdb://", "rocksdb://"),
    ("session_timeout_seconds", "10", 10),
    ("data_dir", "/srv/segstream", Path("/srv/segstream")),
    ("web_host", "127.0.0.2", "127.0.0.2"),
    ("web_port", "8080", 8080),
    ("log_level", "debug", "debug"),
    ("on_internal_error", "stop", "stop"),
    ("stack_dir", "/opt/stack", Path("/opt/stack")),
    ("segments_file", "/etc/segstream/segments.yaml", "/etc/segstream/segments.yaml"),
    ("cart_quiet_minutes", "15", 15),
    ("redis_stream_maxlen", "5000", 5000),
    ("size_sample_seconds", "30", 30),
    ("size_samples_kept", "100", 100),
    ("max_event_bytes", "4096", 4096),
    ("max_batch_bytes", "65536", 65536),
    ("ingest_max_pending_bytes", "2097152", 2097152),
    ("ingest_ack_timeout_seconds", "2.5", 2.5),
    ("webhook_timeout_seconds", "3.5", 3.5),
    ("webhook_retry_base_seconds", "0.5", 0.5),
    ("webhook_retry_max_seconds", "60", 60.0),
    ("webhook_max_attempts", "3", 3),
    ("webhook_batch", "20", 20),
    ("webhook_allow_private", "true", True),
    ("weekly_email_cap", "2", 2),
    ("quiet_hours", "22-7", "22-7"),
    ("attribution_window_days", "7", 7),
    ("attribution_by", "open", "open"),
]


def test_the_table_covers_every_setting() -> None:
    # The tokens and write keys have tests of their own below (they are secrets).
    secrets = {"api_token", "api_tokens", "write_keys"}
    covered = {field for field, _, _ in READ_FROM_ENVIRONMENT} | secrets
    assert covered == set(Settings.model_fields)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [pytest.param(*row, id=row[0]) for row in READ_FROM_ENVIRONMENT],
)
def test_each_setting_is_read_from_its_variable(field: str, value: str, expected: object) -> None:
    settings = load_settings({f"SEGSTREAM_{field.upper()}": value})
    read = getattr(settings, field)
    if field in ("redis_url", "kafka_sasl_password"):
        read = read.get_secret_value()
    assert read == expected
    if field not in ("redis_url", "store", "kafka_sasl_password"):
        assert read != Settings.model_fields[field].default


def test_ports_follow_the_urls() -> None:
    settings = load_settings(
        {"SEGSTREAM_KAFKA_BOOTSTRAP": "a:29092,b:39092", "SEGSTREAM_REDIS_URL": "redis://r:7000/1"}
    )
    assert (settings.kafka_port, settings.redis_port) == (29092, 7000)


BAD_VALUES = [
    pytest.param("SEGSTREAM_PARTITIONS", "abc", "valid integer", id="partitions-abc"),
    pytest.param("SEGSTREAM_PARTITIONS", "0", "greater than or equal to 1", id="partitions-0"),
    pytest.param(
        "SEGSTREAM_PARTITIONS", "1025", "less than or equal to 1024", id="partitions-1025"
    ),
    pytest.param("SEGSTREAM_REPLICATION_FACTOR", "0", "greater than or equal to 1", id="rf-0"),
    pytest.param("SEGSTREAM_WEB_PORT", "65536", "less than or equal to 65535", id="port-65536"),
    pytest.param("SEGSTREAM_CART_QUIET_MINUTES", "0", "greater than or equal to 1", id="quiet-0"),
    pytest.param(
        "SEGSTREAM_WEBHOOK_MAX_ATTEMPTS", "0", "greater than or equal to 1", id="webhook-tries-0"
    ),
    pytest.param("SEGSTREAM_WEBHOOK_TIMEOUT_SECONDS", "0", "greater than 0", id="webhook-wait-0"),
    pytest.param("SEGSTREAM_QUIET_HOURS", "9pm-8am", "such as 21-8", id="quiet-words"),
    pytest.param("SEGSTREAM_QUIET_HOURS", "8-8", "start and end differ", id="quiet-empty"),
    pytest.param("SEGSTREAM_QUIET_HOURS", "21-25", "from 0 to 24", id="quiet-25"),
    pytest.param(
        "SEGSTREAM_CART_QUIET_MINUTES", "10081", "less than or equal to 10080", id="quiet-week"
    ),
    pytest.param(
        "SEGSTREAM_STORE", "foo://", "expected memory:// or rocksdb://, got 'foo://'", id="store"
    ),
    pytest.param(
        "SEGSTREAM_KAFKA_BOOTSTRAP",
        "nohost",
        "expected host:port[,host:port], got 'nohost'",
        id="bootstrap-no-port",
    ),
    pytest.param(
        "SEGSTREAM_KAFKA_BOOTSTRAP",
        "k1:9092,k2",
        "expected host:port[,host:port], got 'k1:9092,k2'",
        id="bootstrap-second-no-port",
    ),
    pytest.param(
        "SEGSTREAM_KAFKA_BOOTSTRAP",
        "k1:port",
        "expected host:port[,host:port], got 'k1:port'",
        id="bootstrap-port-not-digits",
    ),
    pytest.param(
        "SEGSTREAM_PROCESSING_GUARANTEE", "maybe", "'at_least_once' or 'exactly_once'", id="pg"
    ),
    pytest.param(
        "SEGSTREAM_LOG_LEVEL", "verbose", "'debug', 'info', 'warning' or 'error'", id="log"
    ),
    pytest.param(
        "SEGSTREAM_REDIS_URL",
        "http://cache:6379/0",
        "expected a redis://, rediss:// or unix:// URL",
        id="redis-scheme",
    ),
    pytest.param(
        "SEGSTREAM_TOPIC_PREFIX",
        "team a/",
        "only letters, digits, '.', '_' and '-' are allowed, got 'team a/'",
        id="prefix-chars",
    ),
    pytest.param(
        "SEGSTREAM_APP_ID",
        "seg*stream",
        "only letters, digits, '.', '_' and '-' are allowed, got 'seg*stream'",
        id="app-id-chars",
    ),
]


@pytest.mark.parametrize(("variable", "value", "detail"), BAD_VALUES)
def test_bad_value_is_one_sentence_naming_the_variable(
    variable: str, value: str, detail: str
) -> None:
    message = config_error({variable: value, "SEGSTREAM_WEB_HOST": "0.0.0.0"})
    shown = variable if variable == "SEGSTREAM_REDIS_URL" else f"{variable}={value!r}"
    assert message.startswith(f"Bad setting in the environment: {shown}: ")
    assert detail in message
    assert message.endswith(".")
    assert not message.endswith("..")
    assert "\n" not in message
    assert "SEGSTREAM_WEB_HOST" not in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        pytest.param(
            "SEGSTREAM_STORE",
            "foo://",
            "Bad setting in the environment: SEGSTREAM_STORE='foo://': "
            "expected memory:// or rocksdb://, got 'foo://'.",
            id="store",
        ),
        pytest.param(
            "SEGSTREAM_KAFKA_BOOTSTRAP",
            "nohost",
            "Bad setting in the environment: SEGSTREAM_KAFKA_BOOTSTRAP='nohost': "
            "expected host:port[,host:port], got 'nohost'.",
            id="bootstrap",
        ),
    ],
)
def test_bad_value_message_exactly(variable: str, value: str, expected: str) -> None:
    assert config_error({variable: value}) == expected


@pytest.mark.parametrize(
    "variable",
    ["SEGSTREAM_PARTITION", "SEGSTREAM_KAFKA", "SEGSTREAM_REDIS_PASSWORD", "SEGSTREAM_"],
)
def test_unknown_variable_is_named(variable: str) -> None:
    assert config_error({variable: "1"}) == f"Unknown setting in the environment: {variable}."


def test_unknown_variable_is_reported_even_beside_good_ones() -> None:
    message = config_error({"SEGSTREAM_PARTITIONS": "8", "SEGSTREAM_PARTITONS": "8"})
    assert message == "Unknown setting in the environment: SEGSTREAM_PARTITONS."


def test_config_error_is_not_chained_to_pydantic() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGSTREAM_PARTITIONS": "abc"})
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_redis_url_secret_is_not_shown() -> None:
    settings = load_settings({"SEGSTREAM_REDIS_URL": f"redis://:{SECRET}@cache:6379/0"})
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings.model_dump())
    assert settings.redis_url.get_secret_value() == f"redis://:{SECRET}@cache:6379/0"


def test_a_rejected_redis_url_does_not_show_its_password() -> None:
    assert SECRET not in config_error({"SEGSTREAM_REDIS_URL": f"http://admin:{SECRET}@cache/0"})


@pytest.mark.parametrize(
    ("prefix", "app_id", "topic", "group_id"),
    [
        pytest.param("", "segstream", "purchases", "segstream", id="no-prefix"),
        pytest.param(
            "staging-", "segstream", "staging-purchases", "staging-segstream", id="prefix"
        ),
        pytest.param("t1.", "shop", "t1.purchases", "t1.shop", id="prefix-and-app-id"),
    ],
)
def test_topic_and_group_id_apply_the_prefix(
    prefix: str, app_id: str, topic: str, group_id: str
) -> None:
    settings = load_settings({"SEGSTREAM_TOPIC_PREFIX": prefix, "SEGSTREAM_APP_ID": app_id})
    assert settings.topic(names.PURCHASES) == topic
    assert settings.group_id == group_id


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        settings.partitions = 8


def test_only_the_given_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "9")
    assert load_settings({}).partitions == 4


def test_api_token_is_read_and_hidden() -> None:
    settings = load_settings({"SEGSTREAM_API_TOKEN": "s3cret-token-0123456"})
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "s3cret-token-0123456"
    assert "s3cret-token" not in repr(settings)


def test_an_empty_token_is_no_token_and_a_short_one_is_refused() -> None:
    assert load_settings({"SEGSTREAM_API_TOKEN": ""}).api_token is None
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGSTREAM_API_TOKEN": "short"})
    assert str(caught.value) == (
        "Bad setting in the environment: SEGSTREAM_API_TOKEN: use at least 16 characters."
    )
    with pytest.raises(ConfigError):
        load_settings({"SEGSTREAM_WEB_HOST": "0.0.0.0", "SEGSTREAM_API_TOKEN": ""})


def test_open_web_host_needs_a_token() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGSTREAM_WEB_HOST": "0.0.0.0"})
    assert str(caught.value) == (
        "Bad settings in the environment: SEGSTREAM_WEB_HOST='0.0.0.0' opens the HTTP API "
        "beyond loopback, which needs SEGSTREAM_API_TOKEN or SEGSTREAM_API_TOKENS."
    )
    opened = load_settings({"SEGSTREAM_WEB_HOST": "0.0.0.0", "SEGSTREAM_API_TOKEN": "t" * 16})
    assert opened.web_host == "0.0.0.0"
    named = load_settings({"SEGSTREAM_WEB_HOST": "0.0.0.0", "SEGSTREAM_API_TOKENS": READ_TOKENS})
    assert named.web_host == "0.0.0.0"


READ_TOKEN = "rt-0123456789abcdef"
READ_TOKENS = f"{READ_TOKEN}=sender:read"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nonsense", "entry 1: expected token=name:role"),
        (f"{READ_TOKEN}=sender", "entry 1: expected token=name:role"),
        ("short=sender:read", "entry 1: use at least 16 characters for a token"),
        (f"{READ_TOKEN}=send er:read", "entry 1: a name is 1 to 64 letters, digits, '_' or '-'"),
        (f"{READ_TOKEN}=sender:root", "entry 1: the role is one of read, edit, admin"),
        (f"{READ_TOKENS},{READ_TOKEN}=other:edit", "entry 2: the same token twice"),
    ],
)
def test_bad_api_tokens_are_refused_without_quoting_them(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGSTREAM_API_TOKENS": value})
    assert str(caught.value) == f"Bad setting in the environment: SEGSTREAM_API_TOKENS: {reason}."
    assert READ_TOKEN not in str(caught.value)


def test_api_tokens_name_their_roles_beside_the_admin_token() -> None:
    settings = load_settings(
        {
            "SEGSTREAM_API_TOKENS": f"{READ_TOKENS}, {READ_TOKEN}x=maria:edit",
            "SEGSTREAM_API_TOKEN": "a" * 16,
        }
    )
    assert settings.token_roles() == {
        READ_TOKEN: ("sender", "read"),
        f"{READ_TOKEN}x": ("maria", "edit"),
        "a" * 16: ("admin", "admin"),
    }
    assert READ_TOKEN not in repr(settings)


WRITE_KEY = "wk-0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nokey", "entry 1: expected key=source"),
        (f"{WRITE_KEY}=", "entry 1: expected key=source"),
        ("short=web", "entry 1: use at least 16 characters for a key"),
        (f"{WRITE_KEY}=web site", "entry 1: a source name is 1 to 64 letters, digits, '_' or '-'"),
        (f"{WRITE_KEY}=web,{WRITE_KEY}=app", "entry 2: the same key twice"),
    ],
)
def test_a_bad_write_key_list_is_named_without_quoting_a_key(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGSTREAM_WRITE_KEYS": value})
    assert str(caught.value) == f"Bad setting in the environment: SEGSTREAM_WRITE_KEYS: {reason}."
    assert WRITE_KEY not in str(caught.value)


def test_write_keys_name_their_sources_and_stay_secret() -> None:
    settings = load_settings({"SEGSTREAM_WRITE_KEYS": f" {WRITE_KEY}=web , {WRITE_KEY}x=backend"})
    assert settings.write_key_sources() == {WRITE_KEY: "web", f"{WRITE_KEY}x": "backend"}
    assert WRITE_KEY not in repr(settings)
    assert load_settings({"SEGSTREAM_WRITE_KEYS": ""}).write_key_sources() == {}
