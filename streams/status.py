"""The status agents: counter points and transit feeds → ``sensors.status``, outages, gauge.

``point_status`` reads ``bike.counts`` (keyed by point; the topic also feeds
``validate_counts``, which dead-letters what does not parse, so it is skipped here) and keeps
every point-hour in the faust table ``status-point-hours`` (``source|point|hour`` →
``[volume, coverage, kommune]``), written while processing the point's own record so the
changelog lands on the point's partition. Reading the connectors' own topic, not the
repartitioned one, keeps each partition's order exact for the caught-up check below.

The state machines (:mod:`byflyt.streams.sensors`) live in memory and are rebuilt from that
table the first time a worker sees a record after it starts: the machines are deterministic, so
judging the same hours again gives the same changes and the same outage keys ``(source, point,
kind, started)``, and the upserts change nothing. Hours are judged only when every partition
this agent has read from is caught up with its high-water mark: while a backlog (a replay, a
restart) is being read, the newest hour of one point says nothing about the hours of points not
read yet. The source's clock is the newest hour this worker has read from it.

``feed_status`` reads ``transit.feed-health`` (one :class:`FeedHealth` per poll of a feed, from
the connectors) and keeps each feed's machine in the table ``status-feeds``. Feeds are judged
here rather than in the connectors so that one place writes ``sensors.status`` and the outages,
a feed's state survives a connector restart, and the SIRI and GTFS-RT connectors only have to
describe each poll.

Each change goes to the compacted ``sensors.status`` (keyed ``source:point_id``), to the
``outages`` table (opened with ``ended`` None, closed by the change that ends it) and to the
gauge ``byflyt_sensor_status``. Input is acknowledged only after the changes it caused are
stored, as in the cycling aggregation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import faust
from faust.types import TP
from pydantic import ValidationError

from byflyt.metrics import Metrics, default_metrics
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.counts import CountObservation
from byflyt.models.envelope import Rejected
from byflyt.models.status import FeedHealth, SensorState, SensorStatus
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.cycling import BATCH_MAX, FLUSH_INTERVAL_S, manual_acks, reason_of
from byflyt.streams.sensors import Change, FeedMachine, SourceClock
from byflyt.topics import BIKE_COUNTS, DLQ, FEED_HEALTH, SENSORS_STATUS

log = logging.getLogger(__name__)

AGENT = "sensor_status"
HISTORY_FACTOR = 2
"""Point-hours are kept for this many ``history_days``: enough to rebuild a full history."""


def hour_key(source: str, point_id: str, hour: datetime) -> str:
    """The table key of one point-hour."""
    return f"{source}|{point_id}|{iso_z(hour)}"


def parse_hour_key(key: str) -> tuple[str, str, datetime]:
    """Inverse of :func:`hour_key`."""
    source, point_id, hour = key.rsplit("|", 2)
    return source, point_id, datetime.fromisoformat(hour)


def status_of(change: Change) -> SensorStatus:
    """The ``sensors.status`` record of a change."""
    return SensorStatus(
        source=change.source,
        point_id=change.point_id,
        sensor="point" if change.sensor == "point" else "feed",
        kommune_nr=change.kommune_nr,
        state=cast(SensorState, change.state),
        since=change.since,
        as_of=change.as_of,
        details=change.details,
    )


@dataclass
class _Pending:
    events: list[faust.EventT] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


class StatusTracker:
    """State, judging and flushing of the status agents (one per worker)."""

    def __init__(self, app: faust.App, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.hours = app.Table(
            "status-point-hours",
            default=None,
            partitions=BIKE_COUNTS.partitions or settings.topic_partitions,
            help="source|point|hour → [volume, coverage, kommune]: the hours sensor status judges.",
        )
        self.feeds = app.Table(
            "status-feeds",
            default=None,
            partitions=FEED_HEALTH.partitions or settings.topic_partitions,
            help="source:kind → a transit feed's status machine.",
        )
        self.counts = topic(app, settings, BIKE_COUNTS)
        self.health = topic(app, settings, FEED_HEALTH)
        self.status = topic(app, settings, SENSORS_STATUS)
        self.clocks: dict[str, SourceClock] = {}
        self.stored: dict[tuple[str, str], list[datetime]] = {}
        self.positions: dict[TP, int] = {}
        self.loaded = False
        self.pending = _Pending()
        self.lock = asyncio.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byflyt-status")

    # -- counter points ----------------------------------------------------------------------
    def add_count(self, obs: CountObservation) -> None:
        """Keep one observation as its point's latest value for the hour."""
        self._load()
        hour = hour_floor(obs.start)
        self.hours[hour_key(obs.source, obs.point_id, hour)] = [
            obs.volume,
            obs.coverage,
            obs.kommune_nr,
        ]
        clock = self._clock(obs.source)
        clock.add(obs.point_id, obs.kommune_nr, hour, obs.volume, obs.coverage)
        self._expire(obs.source, obs.point_id, hour, clock)

    def _clock(self, source: str) -> SourceClock:
        clock = self.clocks.get(source)
        if clock is None:
            clock = SourceClock(source, self.settings.point_thresholds(source))
            self.clocks[source] = clock
        return clock

    def _expire(self, source: str, point_id: str, hour: datetime, clock: SourceClock) -> None:
        # Called while processing this point's record: the tombstones go to its partition.
        hours = self.stored.setdefault((source, point_id), [])
        if not hours or hours[-1] < hour:
            hours.append(hour)
        elif hour not in hours:
            hours.append(hour)
            hours.sort()
        days = clock.thresholds.history_days * HISTORY_FACTOR
        horizon = (clock.newest or hour) - timedelta(days=days)
        while hours and hours[0] < horizon:
            old = hours.pop(0)
            key = hour_key(source, point_id, old)
            if key in self.hours:
                del self.hours[key]

    def _load(self) -> None:
        """Rebuild the machines from the table once, after the worker (re)started."""
        if self.loaded:
            return
        self.loaded = True
        rows = sorted(
            (parse_hour_key(key), value) for key, value in self.hours.items() if value is not None
        )
        if not rows:
            return
        for (source, point_id, hour), (volume, coverage, kommune_nr) in rows:
            self._clock(source).add(point_id, kommune_nr, hour, volume, coverage)
            self.stored.setdefault((source, point_id), []).append(hour)
        changes = [c for clock in self.clocks.values() for c in clock.advance()]
        # Changes older than one history window were stored by the run that made them; the
        # start of a rebuilt history is judged with less history and may differ.
        oldest = rows[0][0][2]
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            latest[(change.source, change.point_id)] = change
            days = self.clocks[change.source].thresholds.history_days
            if change.since >= oldest + timedelta(days=days):
                self.pending.changes.append(change)
        # Every point's current state, for the gauge and the compacted topic.
        emitted = {id(c) for c in self.pending.changes}
        self.pending.changes.extend(c for c in latest.values() if id(c) not in emitted)
        log.info("sensor status rebuilt: %d points, %d changes replayed", len(latest), len(changes))

    def note_position(self, event: faust.EventT) -> None:
        """Remember how far this agent has read the event's partition."""
        message = event.message
        self.positions[message.tp] = message.offset + 1

    def caught_up(self) -> bool:
        """Whether every partition read from is read up to its high-water mark."""
        consumer = self.app.consumer
        assigned = consumer.assignment()
        for tp, position in self.positions.items():
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or position < highwater:
                return False
        return True

    # -- feeds -------------------------------------------------------------------------------
    def add_health(self, health: FeedHealth) -> None:
        """Judge one poll of a feed."""
        state: dict[str, Any] | None = self.feeds.get(health.key)
        machine = (
            FeedMachine.from_dict(state)
            if state is not None
            else FeedMachine(health.source, health.kind)
        )
        self.pending.changes.extend(
            machine.step(health, self.settings.feed_thresholds(health.source))
        )
        self.feeds[health.key] = machine.to_dict()

    # -- flushing ----------------------------------------------------------------------------
    def due(self) -> bool:
        """Whether the pending batch should be written now."""
        size = len(self.pending.events)
        return size >= BATCH_MAX or (
            size > 0 and time.monotonic() - self.pending.since >= FLUSH_INTERVAL_S
        )

    async def flush(self) -> None:
        """Judge the closed hours (when caught up), write the changes, then ack the input."""
        async with self.lock:
            if self.clocks and self.caught_up():
                for clock in self.clocks.values():
                    self.pending.changes.extend(clock.advance())
            pending, self.pending = self.pending, _Pending()
            if not (pending.events or pending.changes):
                return
            started = time.perf_counter()
            for change in pending.changes:
                record = status_of(change)
                await self.status.send(key=record.key.encode(), value=record.to_bytes())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self._write, pending.changes)
            for change in pending.changes:
                self.metrics.set_sensor_state(
                    change.source, change.point_id, change.kommune_nr or "", change.state
                )
            for event in pending.events:
                event.ack()
            self.metrics.agent_records.labels(AGENT, "out").inc(len(pending.changes))
            self.metrics.processing_seconds.labels(AGENT).observe(time.perf_counter() - started)

    def _write(self, changes: list[Change]) -> None:
        for change in changes:
            if change.closes and change.previous and change.previous_since is not None:
                self.store.upsert_outage(
                    change.source,
                    change.point_id,
                    change.previous,
                    change.previous_since,
                    change.since,
                    change.kommune_nr,
                )
            if change.opens:
                self.store.upsert_outage(
                    change.source,
                    change.point_id,
                    change.state,
                    change.since,
                    None,
                    change.kommune_nr,
                    change.details,
                )


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the status agents to ``app``; return the flush the drain calls."""
    metrics = default_metrics()
    store = Store.from_settings(settings, metrics=metrics)
    tracker = StatusTracker(app, settings, store, metrics)
    dlq = topic(app, settings, DLQ)

    @app.agent(tracker.counts, name="point_status")
    async def point_status(stream: faust.StreamT[bytes]) -> None:
        async for event in manual_acks(stream).events():
            metrics.agent_records.labels(AGENT, "in").inc()
            try:
                obs = CountObservation.from_bytes(event.value)
            except (ValidationError, ValueError):
                # validate_counts reads the same records and dead-letters this one.
                event.ack()
                continue
            tracker.add_count(obs)
            tracker.note_position(event)
            tracker.pending.events.append(event)
            if tracker.due():
                await tracker.flush()

    @app.agent(tracker.health, name="feed_status")
    async def feed_status(stream: faust.StreamT[bytes]) -> None:
        async for event in manual_acks(stream).events():
            metrics.agent_records.labels(AGENT, "in").inc()
            try:
                health = FeedHealth.from_bytes(event.value)
            except (ValidationError, ValueError) as exc:
                rejected = Rejected.of(
                    FEED_HEALTH.name, "invalid_record", reason_of(exc), "feed_status", event.value
                )
                metrics.rejected.labels(FEED_HEALTH.name, "feed_status", "invalid_record").inc()
                await dlq.send(key=FEED_HEALTH.name.encode(), value=rejected.to_bytes())
                event.ack()
                continue
            tracker.add_health(health)
            tracker.pending.events.append(event)
            if tracker.due():
                await tracker.flush()

    @app.timer(FLUSH_INTERVAL_S)
    async def flush_status() -> None:
        if tracker.due() or tracker.clocks:
            await tracker.flush()

    return tracker.flush
