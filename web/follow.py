"""Follow the compacted ``volumes.hourly`` and ``sensors.status`` topics for the live page.

A daemon thread reads both topics from the beginning (they are compacted, so that is the
current state) and then keeps up. It holds the latest value per key: the newest hours of
``volumes.hourly`` (older hours are dropped, by event time) and every sensor's status. A
tombstone (a record without a value) removes its key. When Kafka cannot be reached the thread
retries with a back-off and the page says so; the store alone still feeds the page.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pydantic import ValidationError

from byflyt.kafka import consumer
from byflyt.models.status import SensorStatus
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.topics import SENSORS_STATUS, VOLUMES_HOURLY

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
KEEP_HOURS = timedelta(hours=6)
"""How far behind the newest hour seen the follower keeps ``volumes.hourly`` values."""


@dataclass
class FollowedState:
    """What the follower has read so far (a copy: safe to use without the lock)."""

    volumes: dict[str, HourlyVolume] = field(default_factory=dict)
    statuses: dict[str, SensorStatus] = field(default_factory=dict)
    connected: bool = False
    records: int = 0
    rejected: int = 0
    error: str | None = None
    lag: int | None = None
    """Records on the topics not read yet (measured every few seconds; None before)."""


class TopicFollower:
    """Reads ``volumes.hourly`` and ``sensors.status`` in a background thread."""

    def __init__(self, settings: Settings, *, retry_seconds: float = 5.0) -> None:
        self.settings = settings
        self.retry_seconds = retry_seconds
        self.topics = (settings.topic(VOLUMES_HOURLY.name), settings.topic(SENSORS_STATUS.name))
        self._state = FollowedState()
        self._newest: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="byflyt-follow", daemon=True)

    def start(self) -> None:
        """Start following."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def state(self) -> FollowedState:
        """A copy of the latest values."""
        with self._lock:
            s = self._state
            return FollowedState(
                dict(s.volumes),
                dict(s.statuses),
                s.connected,
                s.records,
                s.rejected,
                s.error,
                s.lag,
            )

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except KafkaError as exc:
                with self._lock:
                    self._state.connected = False
                    self._state.lag = None
                    self._state.error = f"{type(exc).__name__}: {exc}"
                log.info("following %s: %s; retrying", ", ".join(self.topics), exc)
            self._stop.wait(self.retry_seconds)

    def _follow(self) -> None:
        cons = consumer(self.settings, request_timeout_ms=30000)
        try:
            assigned = self._assign(cons)
            if not assigned:
                return  # the topics do not exist yet: retry later
            with self._lock:
                self._state.connected = True
                self._state.error = None
            measured = 0.0
            while not self._stop.is_set():
                for batch in cons.poll(timeout_ms=500).values():
                    for record in batch:
                        self._apply(record.topic, record.key, record.value)
                if time.monotonic() - measured >= LAG_EVERY_S:
                    measured = time.monotonic()
                    self._measure_lag(cons, assigned)
        finally:
            cons.close()

    def _measure_lag(self, cons: KafkaConsumer, parts: list[TopicPartition]) -> None:
        ends = cons.end_offsets(parts)
        lag = sum(max(0, ends[tp] - (cons.position(tp) or 0)) for tp in parts if tp in ends)
        with self._lock:
            self._state.lag = lag

    def _assign(self, cons: KafkaConsumer) -> list[TopicPartition]:
        parts = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(cons.partitions_for_topic(topic) or ())
        ]
        if parts:
            cons.assign(parts)
            cons.seek_to_beginning(*parts)
        return parts

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode("utf-8", "replace")
        with self._lock:
            state = self._state
            state.records += 1
            try:
                if topic == self.topics[0]:
                    self._apply_volume(name, value)
                elif value is None:
                    state.statuses.pop(name, None)
                else:
                    status = SensorStatus.from_bytes(value)
                    state.statuses[status.key] = status
            except ValidationError:
                state.rejected += 1

    def _apply_volume(self, key: str, value: bytes | None) -> None:
        volumes = self._state.volumes
        if value is None:
            volumes.pop(key, None)
            return
        volume = HourlyVolume.from_bytes(value)
        if self._newest is not None and volume.hour_start < self._newest - KEEP_HOURS:
            return
        volumes[volume.key] = volume
        if self._newest is None or volume.hour_start > self._newest:
            self._newest = volume.hour_start
            horizon = self._newest - KEEP_HOURS
            for old in [k for k, v in volumes.items() if v.hour_start < horizon]:
                del volumes[old]
