"""Kafka client configuration and topic administration, derived from :class:`Settings`.

One place turns the settings into keyword arguments for kafka-python, aiokafka and faust, so
SASL/TLS work the same for connectors, workers and admin commands.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from byflyt.errors import BrokerError, ConfigError
from byflyt.settings import Settings
from byflyt.topics import ALL_TOPICS, TopicSpec

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


PROBE_TIMEOUT_S = 10.0
_checked: set[str] = set()
_checked_lock = threading.Lock()


def check_access(settings: Settings) -> None:
    """Fail with one :class:`ConfigError` line when Kafka rejects the TLS or SASL settings.

    kafka-python and aiokafka retry a refused handshake until they time out with "unable to
    bootstrap"; one direct connection to each bootstrap server tells a wrong password, an
    unknown CA and a wrong protocol apart. Checked once per process for the same settings;
    a server that does not answer at all is left to the clients' own retries.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    key = _access_key(settings)
    with _checked_lock:
        if key in _checked:
            return
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        _run(_probe(settings, host.strip("[]"), int(port)))
    with _checked_lock:
        _checked.add(key)


def _access_key(settings: Settings) -> str:
    password = settings.kafka_sasl_password
    parts = [
        settings.bootstrap_servers,
        settings.kafka_security_protocol,
        str(settings.kafka_sasl_mechanism),
        str(settings.kafka_sasl_username),
        password.get_secret_value() if password else "",
        str(settings.kafka_ssl_cafile),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _run(probe: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(probe)
        return
    # Called from inside an event loop: probe on a thread of its own.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(probe)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="byflyt-kafka-probe")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _probe(settings: Settings, host: str, port: int) -> None:
    where = f"Kafka at {host}:{port}"
    password = settings.kafka_sasl_password
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host,
                port,
                client_id=f"{settings.app_id}-probe",
                request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                ssl_context=ssl_context(settings),
                security_protocol=settings.kafka_security_protocol,
                sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                sasl_plain_username=settings.kafka_sasl_username,
                sasl_plain_password=password.get_secret_value() if password else None,
            ),
            PROBE_TIMEOUT_S,
        )
    except ssl.SSLCertVerificationError as exc:
        raise _tls_error(settings, where, exc) from None
    except ssl.SSLError as exc:
        raise ConfigError(
            "BYFLYT_KAFKA_SECURITY_PROTOCOL",
            f"the TLS handshake with {where} failed ({exc.reason or exc})",
            "use the protocol of that listener (PLAINTEXT or SASL_PLAINTEXT if it has no TLS)",
        ) from None
    except SaslAuthenticationFailed:
        raise ConfigError(
            "BYFLYT_KAFKA_SASL_PASSWORD",
            f"{where} refused user {settings.kafka_sasl_username!r} "
            f"({settings.kafka_sasl_mechanism}): wrong password or unknown user",
            "set the password of that user (and BYFLYT_KAFKA_SASL_USERNAME)",
        ) from None
    except UnsupportedSaslMechanismError:
        raise ConfigError(
            "BYFLYT_KAFKA_SASL_MECHANISM",
            f"{where} does not offer {settings.kafka_sasl_mechanism}",
            "use a mechanism the listener enables (e.g. SCRAM-SHA-512)",
        ) from None
    except (AioKafkaError, OSError, TimeoutError):
        return  # not answering is not a configuration error: the clients retry
    conn.close()


def _tls_error(settings: Settings, where: str, exc: ssl.SSLCertVerificationError) -> ConfigError:
    reason = exc.verify_message or exc.reason or "verify failed"
    if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return ConfigError(
            "BYFLYT_KAFKA_BOOTSTRAP",
            f"the certificate of {where} is not valid for that host name ({reason})",
            "connect by a name the certificate lists (the local broker's: 127.0.0.1, localhost)",
        )
    trusted = settings.kafka_ssl_cafile or "the system's CA store"
    return ConfigError(
        "BYFLYT_KAFKA_SSL_CAFILE",
        f"the certificate of {where} is not signed by a CA in {trusted} ({reason})",
        "point it at the CA that signed the broker's certificate "
        "(the local broker's is <data dir>/broker/tls/ca.crt)",
    )


def producer(settings: Settings, **extra: Any) -> KafkaProducer:
    """A kafka-python producer that waits for the broker's acknowledgement of every record."""
    conf: dict[str, Any] = {"acks": "all", "linger_ms": 20, "retries": 10}
    conf.update(extra)
    check_access(settings)
    try:
        return KafkaProducer(**client_kwargs(settings), **conf)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc


def consumer(settings: Settings, *topics: str, **extra: Any) -> KafkaConsumer:
    """A kafka-python consumer (no group unless ``group_id`` is given)."""
    conf: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
    conf.update(extra)
    check_access(settings)
    return KafkaConsumer(*topics, **client_kwargs(settings), **conf)


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client; raises :class:`BrokerError` when Kafka does not answer."""
    check_access(settings)
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
        _create_missing(settings, client, specs, result)
    except KafkaError as exc:
        if not exc.retriable:
            raise
        # The broker went away after the client connected: as unreachable as before it.
        raise BrokerError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        client.close()
    return result


def _create_missing(
    settings: Settings,
    client: KafkaAdminClient,
    specs: Iterable[TopicSpec],
    result: dict[str, str],
) -> None:
    """Create each of ``specs`` that ``client`` does not list, noting what happened."""
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
