"""Kafka client configuration and topic administration, derived from :class:`Settings`.

One place turns the settings into keyword arguments for kafka-python, aiokafka and faust, so
SASL/TLS work the same for connectors, workers and admin commands.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from byflyt.errors import BrokerError
from byflyt.models.topics import ALL_TOPICS, TopicSpec
from byflyt.settings import Settings

log = logging.getLogger(__name__)

BROKER_WAIT_S = 120.0
"""How long a starting worker waits for Kafka before it gives up (a restart, a failover)."""


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments for bootstrap servers and security."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "client_id": f"{settings.app_id}-client",
    }
    if settings.kafka_sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile is not None:
        kwargs["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for aiokafka/faust when the protocol uses SSL."""
    if "SSL" not in settings.kafka_security_protocol:
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def producer(settings: Settings, **extra: Any) -> KafkaProducer:
    """A kafka-python producer that waits for the broker's acknowledgement of every record."""
    conf: dict[str, Any] = {"acks": "all", "linger_ms": 20, "retries": 10}
    conf.update(extra)
    try:
        return KafkaProducer(**client_kwargs(settings), **conf)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc


def consumer(settings: Settings, *topics: str, **extra: Any) -> KafkaConsumer:
    """A kafka-python consumer (no group unless ``group_id`` is given)."""
    conf: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
    conf.update(extra)
    return KafkaConsumer(*topics, **client_kwargs(settings), **conf)


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client; raises :class:`BrokerError` when Kafka does not answer."""
    try:
        return KafkaAdminClient(**client_kwargs(settings), request_timeout_ms=15000)
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}; "
            "start the local one with `byflyt broker start` or set BYFLYT_KAFKA_BOOTSTRAP"
        ) from exc


def create_topics(settings: Settings, specs: Iterable[TopicSpec] = ALL_TOPICS) -> dict[str, str]:
    """Create the topics that are missing; existing ones keep their data. Idempotent.

    Returns what happened per topic name: ``created`` or ``exists``.
    """
    result: dict[str, str] = {}
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        for spec in specs:
            name = settings.topic(spec.name)
            if name in existing:
                result[name] = "exists"
                continue
            topic = NewTopic(
                name=name,
                num_partitions=spec.partitions or settings.topic_partitions,
                replication_factor=_replication_factor(client),
                topic_configs=spec.kafka_config(),
            )
            try:
                client.create_topics([topic])
                result[name] = "created"
            except TopicAlreadyExistsError:
                result[name] = "exists"
    finally:
        client.close()
    return result


def create_topics_waiting(
    settings: Settings, timeout: float = BROKER_WAIT_S, first_delay: float = 0.5
) -> dict[str, str]:
    """:func:`create_topics`, retried with capped exponential back-off while Kafka is away.

    A process that starts while the broker restarts waits for it instead of exiting; after
    ``timeout`` seconds without an answer the last :class:`BrokerError` is raised.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return create_topics(settings)
        except BrokerError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _replication_factor(client: KafkaAdminClient) -> int:
    brokers = client.describe_cluster().get("brokers", [])
    return min(3, max(1, len(brokers)))


def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of ``topics`` (missing topics are skipped)."""
    cons = consumer(settings)
    try:
        parts: list[TopicPartition] = []
        for topic in topics:
            for p in cons.partitions_for_topic(topic) or ():
                parts.append(TopicPartition(topic, p))
        return dict(cons.end_offsets(parts)) if parts else {}
    finally:
        cons.close()
