"""The one faust.App; its settings come from config.Settings."""

from __future__ import annotations

from config import load_settings
from engine.catalog import catalog_for
from segstream.app.catalog import LiveCatalog
from segstream.faust_patches.app import SegstreamApp, faust_options
from streams.connections import broker_credentials

settings = load_settings()
# A bad catalog file stops the worker here, before it consumes anything. The worker runs the
# live definitions (the file seeds them): agents.definitions reads them at start-up.
live = LiveCatalog(catalog_for(settings.segments_file, settings.cart_quiet_minutes))


app = SegstreamApp(
    settings.group_id,
    broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
    broker_credentials=broker_credentials(settings),
    store=settings.store,
    datadir=str(settings.data_dir),
    processing_guarantee=settings.processing_guarantee,
    broker_session_timeout=settings.session_timeout_seconds,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    key_serializer="raw",
    value_serializer="raw",
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    **faust_options(),
)
