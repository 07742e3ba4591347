"""The cycling pipeline's agents: counts → hourly volume per kommune, by event time.

Two agents:

``validate_counts`` reads ``bike.counts`` (keyed by point), parses every record as a
:class:`CountObservation`, sends what fails to ``dlq.rejected`` with its reason, and forwards the
rest to ``bike.counts.by-kommune`` keyed by kommune number, so each kommune's hours live on one
partition (and one worker).

``aggregate_counts`` keeps, in a plain faust table keyed ``kommune|mode|hour``, each point's
*latest* observation of that hour. A re-sent or corrected observation replaces the earlier one,
and the kommune-hour is recomputed from the whole state, so replays and corrections never
double-count. Results go to the compacted ``volumes.hourly`` topic (a tombstone when a
kommune-hour no longer has any volume) and to the store in one transaction per batch. The
stream is consumed without automatic acks: records are acknowledged only after their results
are in the store, so a crash replays the uncommitted tail, which converges to the same rows.

Hour state expires by event time (the newest hour seen per kommune minus the retention), never
by the wall clock: faust's windowed tables close windows on wall-clock time and would silently
drop replayed history.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import faust
from pydantic import ValidationError

from byflyt.metrics import Metrics, default_metrics
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Rejected
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.hourly import PointState, aggregate_counts
from byflyt.streams.live import LIVE_REFRESH_S, LiveVolumes
from byflyt.topics import (
    BIKE_COUNTS,
    BIKE_COUNTS_BY_KOMMUNE,
    BIKE_POINTS,
    DLQ,
    VOLUMES_HOURLY,
)

log = logging.getLogger(__name__)

BATCH_MAX = 5000
FLUSH_INTERVAL_S = 0.5
VolumeKey = tuple[str, str, str, datetime]


def state_key(kommune_nr: str, mode: str, hour_start: datetime) -> str:
    """The table key of one kommune-hour."""
    return f"{kommune_nr}|{mode}|{iso_z(hour_start)}"


def parse_state_key(key: str) -> tuple[str, str, datetime]:
    """Inverse of :func:`state_key`."""
    kommune_nr, mode, hour = key.split("|")
    return kommune_nr, mode, datetime.fromisoformat(hour)


@dataclass
class _Pending:
    """Results computed since the last flush, and the events they came from."""

    events: list[faust.EventT] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    observations: dict[tuple[str, str, datetime], CountObservation] = field(default_factory=dict)
    points: dict[str, CountPoint] = field(default_factory=dict)
    point_events: list[faust.EventT] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


class CountAggregator:
    """State, flushing and expiry of the count aggregation (one per worker)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        store: Store,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.retention = timedelta(days=settings.hour_retention_days)
        self.table = app.Table(
            "count-hours",
            default=None,
            partitions=BIKE_COUNTS_BY_KOMMUNE.partitions or settings.topic_partitions,
            help="kommune|mode|hour → {point: [volume, coverage]}: each point's latest value.",
        )
        self.counts = topic(app, settings, BIKE_COUNTS)
        self.by_kommune = topic(app, settings, BIKE_COUNTS_BY_KOMMUNE)
        self.points = topic(app, settings, BIKE_POINTS)
        self.volumes = topic(app, settings, VOLUMES_HOURLY)
        self.dlq = topic(app, settings, DLQ)
        self.pending = _Pending()
        self.lock = asyncio.Lock()
        self.live = LiveVolumes(metrics.volume)
        # One writer thread: store transactions stay in order and off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byflyt-store")
        self._hours: dict[tuple[str, str], list[datetime]] = {}

    # -- state -------------------------------------------------------------------------------
    def apply(self, obs: CountObservation) -> str:
        """Record ``obs`` as its point's latest value for the hour; return the state key."""
        hour = hour_floor(obs.start)
        key = state_key(obs.kommune_nr, obs.mode, hour)
        current: dict[str, PointState] = dict(self.table.get(key) or {})
        current[obs.key] = [obs.volume, obs.coverage]
        self.table[key] = current
        self._index(obs.kommune_nr, obs.mode, hour)
        self.pending.observations[(obs.source, obs.point_id, hour)] = obs
        return key

    def _index(self, kommune_nr: str, mode: str, hour: datetime) -> None:
        hours = self._hours.get((kommune_nr, mode))
        if hours is None:
            hours = sorted(
                h
                for k in self.table
                if (p := parse_state_key(k))[:2] == (kommune_nr, mode)
                for h in (p[2],)
            )
            self._hours[(kommune_nr, mode)] = hours
        i = bisect.bisect_left(hours, hour)
        if i == len(hours) or hours[i] != hour:
            hours.insert(i, hour)
        self._expire(kommune_nr, mode, hours)

    def _expire(self, kommune_nr: str, mode: str, hours: list[datetime]) -> None:
        # Called while processing an event of this kommune, so the table's changelog
        # tombstones land on the kommune's own partition.
        horizon = hours[-1] - self.retention
        cut = bisect.bisect_left(hours, horizon)
        for hour in hours[:cut]:
            key = state_key(kommune_nr, mode, hour)
            if key in self.table:
                del self.table[key]
        del hours[:cut]

    def result(self, key: str) -> tuple[HourlyVolume | None, VolumeKey]:
        """The current value of one kommune-hour (None: no row) and its natural key."""
        kommune_nr, mode, hour = parse_state_key(key)
        row = aggregate_counts(kommune_nr, mode, hour, self.table.get(key) or {})
        return row, (kommune_nr, mode, "volume", hour)

    # -- flushing ----------------------------------------------------------------------------
    def due(self) -> bool:
        """Whether the pending batch should be written now."""
        size = len(self.pending.events) + len(self.pending.point_events)
        return size >= BATCH_MAX or (
            size > 0 and time.monotonic() - self.pending.since >= FLUSH_INTERVAL_S
        )

    async def flush(self) -> None:
        """Write pending results to the output topic and the store, then ack their events."""
        async with self.lock:
            pending, self.pending = self.pending, _Pending()
            if not (pending.events or pending.point_events):
                return
            started = time.perf_counter()
            upserts: list[HourlyVolume] = []
            deletes: list[VolumeKey] = []
            for key in sorted(pending.dirty):
                row, natural = self.result(key)
                if row is None:
                    deletes.append(natural)
                    await self.volumes.send(key=_volume_key(natural), value=None)
                else:
                    upserts.append(row)
                    await self.volumes.send(key=row.key.encode(), value=row.to_bytes())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                self.executor,
                self._write,
                list(pending.points.values()),
                list(pending.observations.values()),
                upserts,
                deletes,
            )
            self.live.update(upserts, deletes)
            for event in pending.events + pending.point_events:
                event.ack()
            self.metrics.agent_records.labels("aggregate_counts", "out").inc(
                len(upserts) + len(deletes)
            )
            self.metrics.processing_seconds.labels("aggregate_counts").observe(
                time.perf_counter() - started
            )

    def _write(
        self,
        points: list[CountPoint],
        observations: list[CountObservation],
        upserts: list[HourlyVolume],
        deletes: list[VolumeKey],
    ) -> None:
        if points:
            self.store.upsert_points(points)
        if observations:
            self.store.upsert_point_hourly(observations)
        self.store.write_hourly(upserts, deletes)

    async def reject(self, raw: bytes | None, exc: Exception, stage: str) -> None:
        """Send a record that failed validation to the dead-letter topic."""
        reason = reason_of(exc)
        rejected = Rejected.of("bike.counts", "invalid_observation", reason, stage, raw)
        self.metrics.rejected.labels("bike.counts", stage, "invalid_observation").inc()
        await self.dlq.send(key=b"bike.counts", value=rejected.to_bytes())


def manual_acks(stream: faust.StreamT[bytes]) -> faust.StreamT[bytes]:
    """The stream with automatic acks off: events are acked once their results are stored."""
    return cast(faust.Stream[bytes], stream).noack()  # StreamT does not declare noack()


def _volume_key(natural: VolumeKey) -> bytes:
    kommune_nr, mode, metric, hour = natural
    return f"{kommune_nr}|{mode}|{metric}|{iso_z(hour)}".encode()


def reason_of(exc: Exception) -> str:
    """A short, bounded reason for a record that failed validation."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()
        )[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the cycling agents to ``app``; return the flush the drain calls."""
    metrics = default_metrics()
    store = Store.from_settings(settings, metrics=metrics)
    agg = CountAggregator(app, settings, store, metrics)

    @app.agent(agg.counts, name="validate_counts")
    async def validate_counts(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            metrics.agent_records.labels("validate_counts", "in").inc()
            try:
                obs = CountObservation.from_bytes(event.value)
            except (ValidationError, ValueError) as exc:
                await agg.reject(event.value, exc, "validate_counts")
                continue
            metrics.observations.labels(obs.mode, obs.kommune_nr).inc()
            await agg.by_kommune.send(key=obs.kommune_nr.encode(), value=obs.to_bytes())

    @app.agent(agg.by_kommune, name="aggregate_counts")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for event in manual_acks(stream).events():
            try:
                obs = CountObservation.from_bytes(event.value)
            except (ValidationError, ValueError) as exc:
                # Only validated records are forwarded here; anything else is not ours to count.
                await agg.reject(event.value, exc, "aggregate_counts")
                event.ack()
                continue
            agg.pending.dirty.add(agg.apply(obs))
            agg.pending.events.append(event)
            metrics.agent_records.labels("aggregate_counts", "in").inc()
            if agg.due():
                await agg.flush()

    @app.agent(agg.points, name="store_points")
    async def store_points(stream: faust.StreamT[bytes]) -> None:
        async for event in manual_acks(stream).events():
            try:
                point = CountPoint.from_bytes(event.value)
            except (ValidationError, ValueError) as exc:
                await agg.reject(event.value, exc, "store_points")
                event.ack()
                continue
            agg.pending.points[point.key] = point
            agg.pending.point_events.append(event)
            if agg.due():
                await agg.flush()

    @app.timer(FLUSH_INTERVAL_S)
    async def flush_idle() -> None:
        if agg.due():
            await agg.flush()

    @app.timer(LIVE_REFRESH_S)
    async def roll_live_hours() -> None:
        agg.live.refresh()

    return agg.flush
