"""How every Kafka client segstream makes connects: plaintext, TLS or SASL, from the settings.

The Faust app gets ``broker_credentials``; every plain aiokafka client (CLI, rebuild, topic
creation, benchmark) gets ``kafka_options``, derived from the same credentials by Faust's own
conversion, so the two cannot disagree.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from config import Settings


def broker_credentials(settings: Settings) -> CredentialsT | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client of this deployment."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **credentials_to_aiokafka_auth(broker_credentials(settings)),
    }
