"""The faust app factory: broker, table store, topics (with the prefix) and the agents.

Every worker, test and benchmark builds its app here, so the Kafka settings, the serialisation
(raw bytes on the wire; pydantic models parsed inside the agents so bad records reach the
dead-letter topic instead of crashing a stream) and the topic names are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import faust
from faust.types.auth import CredentialsT

from byflyt.kafka import ssl_context
from byflyt.settings import Settings
from byflyt.streams.consumer import App
from byflyt.topics import TABLE_RECORD_MAX_BYTES, TopicSpec

BATCH_RECORDS = 25_000
"""Records one poll of the consumer returns at most, and one sink batch takes at most."""

AgentRegistrar = Callable[[faust.App, Settings], "Callable[[], Awaitable[None]] | None"]


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    drain: bool = False,
    web_port: int | None = None,
    web_enabled: bool = True,
) -> faust.App:
    """Build a faust app for ``settings``.

    ``drain`` tunes commits for one-shot runs (``byflyt worker --drain``): offsets are committed
    every half second so the drain check sees progress promptly.
    """
    app_name = app_id or settings.app_id
    datadir = settings.data_dir / "faust" / app_name
    datadir.parent.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server}" for server in settings.bootstrap_servers.split(",")]
    conf: dict[str, Any] = {
        "broker": brokers,
        "store": "memory://",
        "datadir": str(datadir),
        "topic_partitions": settings.topic_partitions,
        "topic_allow_declare": True,
        "web_enabled": web_enabled,
        "web_host": settings.web_host,
        "web_port": web_port or settings.web_port,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
        "broker_commit_interval": timedelta(seconds=0.5 if drain else 2.8),
        "broker_commit_every": 2000 if drain else 10_000,
        "stream_buffer_maxsize": 8192,
        # One poll hands over at most one sink batch: bounds what a batch-delivered topic
        # holds in memory (a fetch queued, one in process).
        "broker_max_poll_records": BATCH_RECORDS,
        # A partition's fetch of up to 8 MiB (faust's default is 1): about 110,000 counts, so
        # a sink batch is not left waiting for the fetcher's next round trip, which its thread
        # makes slowly beside a busy event loop (measured at 1M counts: the cycling sink
        # waited 5.3 s for fetches at 1 MiB; at 4 MiB, once the sink itself got faster, 3.5 s
        # of 9; at 8 MiB the drain went from 103k to 127-134k counts/s, peak RSS +20 MB).
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "producer_acks": -1,
        "producer_max_request_size": TABLE_RECORD_MAX_BYTES,
        "producer_linger_ms": 5,
        # A sink sends a flush's results as one record batch per partition (send_batched):
        # batches of up to 512 KiB (faust's default is 16 KiB), under Kafka's 1 MB per batch.
        "producer_max_batch_size": 512 * 1024,
        "stream_wait_empty": True,
        "table_cleanup_interval": 3600.0,
    }
    credentials = _credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return App(app_name, **conf)


def _credentials(settings: Settings) -> CredentialsT | None:
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if protocol == "SSL" and context is not None:
        return faust.SSLCredentials(context)
    return None


def topic(app: faust.App, settings: Settings, spec: TopicSpec) -> faust.TopicT:
    """The faust topic for ``spec``: raw bytes in and out, partitions and compaction declared."""
    return app.topic(
        settings.topic(spec.name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions or settings.topic_partitions,
        compacting=spec.compacted,
        deleting=not spec.compacted,
        allow_empty=True,
    )
