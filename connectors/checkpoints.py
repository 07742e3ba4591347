"""Connector checkpoints in the compacted Kafka topic ``connector.checkpoints``.

Each checkpoint is keyed ``connector:source:item`` and holds an opaque position (for
Trafikkdata, the end of the last hour received for a point). They live in Kafka, not in a local
file, so a connector restarted on another machine resumes where the last one stopped. The topic
is read from the beginning to its end offsets at start; checkpoints are written only after the
records they cover are acknowledged by the broker (see :func:`send_and_wait`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pydantic import ValidationError

from byflyt.errors import BrokerError
from byflyt.kafka import consumer
from byflyt.models.envelope import Checkpoint
from byflyt.settings import Settings
from byflyt.topics import CHECKPOINTS

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 60.0


def send_and_wait(
    producer: KafkaProducer,
    records: Iterable[tuple[str, bytes, bytes]],
    timeout: float = SEND_TIMEOUT_S,
) -> int:
    """Send ``(topic, key, value)`` records and wait until the broker acknowledged every one.

    Returns how many were sent; raises :class:`BrokerError` when any was not acknowledged, so
    nothing that depends on them (a checkpoint) is written.
    """
    futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
    if not futures:
        return 0
    try:
        producer.flush(timeout=timeout)
    except KafkaError as exc:
        raise BrokerError(f"Kafka did not acknowledge {len(futures)} records: {exc}") from exc
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:
        raise BrokerError(f"Kafka refused {len(failed)} of {len(futures)} records: {failed[0]}")
    return len(futures)


class CheckpointStore:
    """The checkpoints of one connector and source, loaded from and saved to Kafka."""

    def __init__(self, settings: Settings, connector: str, source: str) -> None:
        self.settings = settings
        self.connector = connector
        self.source = source
        self.topic = settings.topic(CHECKPOINTS.name)
        self._positions: dict[str, str] = {}

    @property
    def positions(self) -> dict[str, str]:
        """Item → position, as loaded and saved so far (a copy)."""
        return dict(self._positions)

    def position(self, item: str) -> str | None:
        """The saved position of ``item``, or None when it has none."""
        return self._positions.get(item)

    def load(self, timeout: float = LOAD_TIMEOUT_S) -> dict[str, str]:
        """Read every checkpoint of this connector and source (the latest per item wins)."""
        prefix = f"{self.connector}:{self.source}:"
        cons = consumer(self.settings)
        try:
            parts = [
                TopicPartition(self.topic, p) for p in cons.partitions_for_topic(self.topic) or ()
            ]
            if not parts:
                return self.positions
            cons.assign(parts)
            cons.seek_to_beginning(*parts)
            ends = cons.end_offsets(parts)
            deadline = time.monotonic() + timeout
            while any(cons.position(tp) < ends[tp] for tp in parts):
                if time.monotonic() > deadline:
                    raise BrokerError(f"could not read {self.topic} to its end in {timeout:.0f} s")
                for batch in cons.poll(timeout_ms=500).values():
                    for record in batch:
                        key = (record.key or b"").decode("utf-8", "replace")
                        if key.startswith(prefix):
                            self._apply(key.removeprefix(prefix), record.value)
        except KafkaError as exc:
            raise BrokerError(f"cannot read checkpoints from {self.topic}: {exc}") from exc
        finally:
            cons.close()
        log.info("loaded %d checkpoints of %s", len(self._positions), prefix.rstrip(":"))
        return self.positions

    def _apply(self, item: str, value: bytes | None) -> None:
        if value is None:  # a tombstone: the checkpoint was deleted
            self._positions.pop(item, None)
            return
        try:
            checkpoint = Checkpoint.from_bytes(value)
        except ValidationError as exc:
            log.warning("ignoring an unreadable checkpoint for %s in %s: %s", item, self.topic, exc)
            return
        self._positions[item] = checkpoint.position

    def save(self, producer: KafkaProducer, positions: Mapping[str, str]) -> int:
        """Write new positions and wait for the broker; call only after their data is acked."""
        now = datetime.now(UTC)
        checkpoints = [
            Checkpoint(
                connector=self.connector,
                source=self.source,
                item=item,
                position=position,
                updated_at=now,
            )
            for item, position in positions.items()
        ]
        sent = send_and_wait(
            producer, ((self.topic, c.key.encode(), c.to_bytes()) for c in checkpoints)
        )
        self._positions.update(positions)
        return sent
