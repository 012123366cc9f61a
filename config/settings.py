"""The one settings object, read from SEGSTREAM_* environment variables."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config import names
from config.errors import ConfigError

ENV_PREFIX = "SEGSTREAM_"
SECRET_FIELDS = frozenset(
    {"redis_url", "api_token", "api_tokens", "kafka_sasl_password", "write_keys"}
)
LOOPBACK = ("127.", "localhost", "::1")
MIN_TOKEN = 16
SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Settings(BaseSettings):
    """Everything an operator can set; each field is read from SEGSTREAM_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"
    )
    kafka_sasl_username: str = Field("", description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret)")
    kafka_ssl_cafile: str = Field(
        "", description="CA bundle that signs the brokers' certificates (empty: the system's)"
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL of the serving store"
    )
    redis_stream_maxlen: int = Field(
        100_000, ge=100, description="Length cap of the Redis Stream of segment changes"
    )
    size_sample_seconds: int = Field(
        10, ge=1, le=3600, description="How often segment sizes are sampled for the dashboard"
    )
    size_samples_kept: int = Field(
        8640, ge=10, le=1_000_000, description="Size samples kept per segment (bounded history)"
    )
    app_id: str = Field(
        "segstream", description="Faust application id (consumer group, changelog names)"
    )
    topic_prefix: str = Field(
        "", description="Prefix of every topic and of the app id, to share a broker"
    )
    partitions: int = Field(
        4, ge=1, le=1024, description="Partitions of every topic segstream creates"
    )
    replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics segstream creates"
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="Faust processing guarantee"
    )
    segments_file: str = Field(
        "", description="Segment catalog file (empty: the shipped config/segments.yaml)"
    )
    cart_quiet_minutes: int = Field(
        60, ge=1, le=10_080, description="Quiet period after cart activity before cart_abandoners"
    )
    session_timeout_seconds: int = Field(
        60,
        ge=6,
        le=1800,
        description="How long a worker that died without leaving keeps its partitions",
    )
    store: str = Field(
        "memory://",
        description="Faust table store: memory:// or rocksdb:// (needs the rocksdb extra)",
    )
    data_dir: Path = Field(
        Path("var/worker"), description="Directory for the worker's local table state"
    )
    web_host: str = Field("127.0.0.1", description="Address the worker's web server binds")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's web server")
    api_token: SecretStr | None = Field(
        None, description="Bearer token for every HTTP route but /health (a secret)"
    )
    api_tokens: SecretStr | None = Field(
        None,
        description="More bearer tokens, each named, with a role (read, edit or admin): "
        "token=name:role[,token=name:role] (a secret)",
    )
    write_keys: SecretStr | None = Field(
        None,
        description="Write keys of the tracking API: key=source[,key=source] (a secret)",
    )
    ingest_max_pending_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024 * 1024,
        description="Events the HTTP API may have sent Kafka without its ack yet (bytes)",
    )
    ingest_ack_timeout_seconds: float = Field(
        8.0, gt=0, le=60, description="How long an HTTP request waits for Kafka's ack"
    )
    max_event_bytes: int = Field(
        32 * 1024, ge=1024, le=1024 * 1024, description="Largest accepted event (bytes)"
    )
    max_batch_bytes: int = Field(
        500 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest accepted HTTP batch (bytes)"
    )
    weekly_email_cap: int = Field(
        5,
        ge=0,
        le=1000,
        description="Emails a customer may get per 7 days, any campaign (0: no cap)",
    )
    quiet_hours: str = Field(
        "21-8",
        description="Local hours start-end in which no customer with a timezone trait is mailed "
        "(empty: none)",
    )
    attribution_window_days: int = Field(
        5, ge=1, le=30, description="How long after a click a purchase is the campaign's"
    )
    attribution_by: Literal["click", "open"] = Field(
        "click", description="What attributes a purchase to a campaign: the last click, or open"
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="How long a webhook receiver has to answer a delivery"
    )
    webhook_retry_base_seconds: float = Field(
        1.0, gt=0, le=600, description="First wait before a failed webhook delivery is retried"
    )
    webhook_retry_max_seconds: float = Field(
        300.0, gt=0, le=3600, description="Longest wait between webhook delivery retries"
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="Failed tries of one delivery before its subscription pauses"
    )
    webhook_batch: int = Field(
        100, ge=1, le=1000, description="Most records in one webhook delivery"
    )
    webhook_allow_private: bool = Field(
        False,
        description="Let webhooks call private and loopback addresses when the worker listens "
        "beyond loopback (on loopback they always may)",
    )
    on_internal_error: Literal["dead_letter", "stop"] = Field(
        "dead_letter",
        description="A bug on a record: dead-letter it and go on, or stop the worker",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Worker log level"
    )
    stack_dir: Path = Field(
        Path(".stack"), description="Where `segstream stack` keeps Kafka and Redis"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() reads the environment itself, so that it alone decides what is read.
        return (init_settings,)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _hour_range(cls, value: str) -> str:
        if value:
            start, sep, end = value.partition("-")
            if not (sep and start.isdigit() and end.isdigit()):
                raise ValueError("expected start-end in whole hours, such as 21-8 (empty: none)")
            if not (int(start) <= 24 and int(end) <= 24 and int(start) != int(end)):
                raise ValueError("hours run from 0 to 24, and start and end differ")
        return value

    @property
    def quiet_hour_range(self) -> tuple[int, int] | None:
        """The quiet hours as (start, end), local time; None for none."""
        if not self.quiet_hours:
            return None
        start, _, end = self.quiet_hours.partition("-")
        return int(start), int(end)

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value not in ("memory://", "rocksdb://"):
            raise ValueError(f"expected memory:// or rocksdb://, got {value!r}")
        if value == "rocksdb://" and importlib.util.find_spec("rocksdict") is None:
            raise ValueError("rocksdb:// needs rocksdict: pip install 'segstream[rocksdb]'")
        return value

    @field_validator("topic_prefix", "app_id")
    @classmethod
    def _legal_topic_chars(cls, value: str) -> str:
        if any(not (ch.isalnum() or ch in "._-") for ch in value):
            raise ValueError(f"only letters, digits, '.', '_' and '-' are allowed, got {value!r}")
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _token_long_enough(cls, value: object) -> object:
        if value in ("", None):
            return None  # an empty token is no token
        if isinstance(value, str) and len(value) < MIN_TOKEN:
            raise ValueError(f"use at least {MIN_TOKEN} characters")
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens_name_roles(cls, value: object) -> object:
        if value in ("", None):
            return None
        if isinstance(value, str):
            parse_api_tokens(value)  # the reason never quotes a token
        return value

    @field_validator("write_keys", mode="before")
    @classmethod
    def _write_keys_name_sources(cls, value: object) -> object:
        if value in ("", None):
            return None
        if isinstance(value, str):
            parse_write_keys(value)  # the reason never quotes a key
        return value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _cafile_exists(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"SEGSTREAM_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "SEGSTREAM_KAFKA_SASL_USERNAME and SEGSTREAM_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _open_only_with_a_token(self) -> Settings:
        tokens = self.api_token is not None or self.api_tokens is not None
        if not tokens and not self.web_host.startswith(LOOPBACK):
            raise ValueError(
                f"SEGSTREAM_WEB_HOST={self.web_host!r} opens the HTTP API beyond loopback, "
                "which needs SEGSTREAM_API_TOKEN or SEGSTREAM_API_TOKENS"
            )
        return self

    def topic(self, name: str) -> str:
        """The full name of a topic on the broker."""
        return f"{self.topic_prefix}{name}"

    def write_key_sources(self) -> dict[str, str]:
        """Write key -> the name of its source (empty: no keys configured)."""
        return (
            {} if self.write_keys is None else parse_write_keys(self.write_keys.get_secret_value())
        )

    def token_roles(self) -> dict[str, tuple[str, str]]:
        """Bearer token -> (its name, its role); SEGSTREAM_API_TOKEN is the admin's."""
        tokens = (
            {} if self.api_tokens is None else parse_api_tokens(self.api_tokens.get_secret_value())
        )
        if self.api_token is not None:
            tokens[self.api_token.get_secret_value()] = ("admin", "admin")
        return tokens

    @property
    def redis_prefix(self) -> str:
        """Prefix of every Redis key of this deployment."""
        return f"{self.topic_prefix}{names.REDIS_ROOT}"

    @property
    def group_id(self) -> str:
        """Faust app id: the consumer group and the stem of changelog topic names."""
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rpartition(":")[2])

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url.get_secret_value()).port or 6379


def parse_write_keys(value: str) -> dict[str, str]:
    """``key=source[,key=source]`` as a dict; ValueError (quoting no key) if malformed."""
    keys: dict[str, str] = {}
    for number, pair in enumerate(value.split(","), 1):
        key, sep, source = (part.strip() for part in pair.partition("="))
        if not sep or not key or not source:
            raise ValueError(f"entry {number}: expected key=source")
        if len(key) < MIN_TOKEN:
            raise ValueError(f"entry {number}: use at least {MIN_TOKEN} characters for a key")
        if not SOURCE_NAME.fullmatch(source):
            raise ValueError(
                f"entry {number}: a source name is 1 to 64 letters, digits, '_' or '-'"
            )
        if key in keys:
            raise ValueError(f"entry {number}: the same key twice")
        keys[key] = source
    return keys


TOKEN_ROLES = ("read", "edit", "admin")


def parse_api_tokens(value: str) -> dict[str, tuple[str, str]]:
    """``token=name:role[,...]`` as token -> (name, role); ValueError (quoting no token)."""
    tokens: dict[str, tuple[str, str]] = {}
    for number, entry in enumerate(value.split(","), 1):
        token, sep, named = (part.strip() for part in entry.partition("="))
        name, _, role = named.partition(":")
        if not sep or not token or not name or not role:
            raise ValueError(f"entry {number}: expected token=name:role")
        if len(token) < MIN_TOKEN:
            raise ValueError(f"entry {number}: use at least {MIN_TOKEN} characters for a token")
        if not SOURCE_NAME.fullmatch(name):
            raise ValueError(f"entry {number}: a name is 1 to 64 letters, digits, '_' or '-'")
        if role not in TOKEN_ROLES:
            raise ValueError(f"entry {number}: the role is one of {', '.join(TOKEN_ROLES)}")
        if token in tokens:
            raise ValueError(f"entry {number}: the same token twice")
        tokens[token] = (name, role)
    return tokens


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings, turning a bad value into one sentence naming the variable."""
    env = os.environ if environ is None else environ
    values = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"Unknown setting in the environment: {env_name(unknown[0])}.")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a rule across fields names them itself
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"Bad settings in the environment: {message}.") from None
        field = str(error["loc"][0])
        message = str(error["msg"]).removeprefix("Value error, ")
        if field in SECRET_FIELDS:  # never echo a secret, not even a wrong one
            shown = env_name(field)
        else:
            shown = f"{env_name(field)}={values.get(field, error.get('input'))!r}"
        raise ConfigError(f"Bad setting in the environment: {shown}: {message}.") from None
