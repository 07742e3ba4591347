"""Sensor status: counter points and transit feeds → ``sensors.status``, outages, gauge.

Counter points are judged from the counts the cycling sink (:mod:`byflyt.streams.cycling`)
aggregates: it hands every accepted observation of a batch to :meth:`StatusTracker.add_counts`
and flushes the tracker with its own flush, before the batch is acknowledged. The machines
(:mod:`byflyt.streams.sensors`) live in memory. Their durable state is the store's
``point_hourly`` (written with the counts before their offsets are committed): the first batch
after a start rebuilds them from the stored point-hours of the kommuner on this worker's
partitions, ``history_days × 2`` back from each source's newest stored hour. The machines are
deterministic, so judging the same hours again gives the same changes and the same outage keys
``(source, point, kind, started)``, and the upserts change nothing. Hours are judged only when
every partition the counts were read from is caught up with its high-water mark (and nothing
forwarded to the repartition topic is still unread): while a backlog (a replay, a restart) is
being read, the newest hour of one point says nothing about the hours of points not read yet.
The source's clock is the newest hour this worker has read from it.

``feed_status`` reads ``transit.feed-health`` (one :class:`FeedHealth` per poll of a feed, from
the connectors) a fetch at a time on the same sink and keeps each feed's machine in the table
``status-feeds`` (written to its changelog once per feed a flush, before the batch is
acknowledged).
Feeds are judged here rather than in the connectors so that one place writes ``sensors.status``
and the outages, a feed's state survives a connector restart, and the SIRI and GTFS-RT
connectors only have to describe each poll.

A point is judged only over the hours its source was asked for: before judging, the machines
get each point's fetched windows from the store (``fetched_windows``, written by
:mod:`byflyt.streams.fetched` from the connectors' ``bike.fetched``), so hours nobody fetched
are "not ingested" (:mod:`byflyt.streams.sensors`), never ``silent``.

Each change goes to the compacted ``sensors.status`` (keyed ``source:point_id``), to the
``outages`` table (opened with ``ended`` None, closed by the change that ends it) and to the
gauge ``byflyt_sensor_status``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from byflyt.metrics import Metrics, default_metrics
from byflyt.models.base import iso_z
from byflyt.models.codec_counts import Count
from byflyt.models.status import FeedHealth, SensorState, SensorStatus
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.consumer import Batch, Record
from byflyt.streams.sensors import Change, FeedMachine, SourceClock
from byflyt.streams.sink import FLUSH_INTERVAL_S, Output, Sink
from byflyt.streams.tables import WriteBack
from byflyt.topics import (
    BIKE_COUNTS,
    BIKE_COUNTS_BY_KOMMUNE,
    COUNTS_FETCHED,
    FEED_HEALTH,
    SENSORS_STATUS,
)

log = logging.getLogger(__name__)

AGENT = "sensor_status"
HISTORY_FACTOR = 2
"""A rebuild reads this many ``history_days`` of point-hours: enough for a full history."""
_PARTITIONER = DefaultPartitioner()
"""Kafka's default partitioner (murmur2 of the key), as every producer of keyed counts uses."""


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


class StatusTracker(Sink):
    """State, judging and flushing of sensor status (one per worker)."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        super().__init__(app, settings, metrics, AGENT, topic(app, settings, SENSORS_STATUS))
        self.feeds = WriteBack(
            app.Table(
                "status-feeds",
                default=None,
                partitions=FEED_HEALTH.partitions or settings.topic_partitions,
                help="source:kind → a transit feed's status machine.",
            )
        )
        self.health = topic(app, settings, FEED_HEALTH)
        self.count_topics = {
            settings.topic(BIKE_COUNTS.name),
            settings.topic(BIKE_COUNTS_BY_KOMMUNE.name),
        }
        self.repartitioned = settings.topic(BIKE_COUNTS_BY_KOMMUNE.name)
        self.fetched_topic = settings.topic(COUNTS_FETCHED.name)
        self.clocks: dict[str, SourceClock] = {}
        self.positions: dict[TP, int] = {}
        self.in_flight = 0
        """Counts forwarded to ``bike.counts.by-kommune`` and not yet read back."""
        self.loaded = False
        self.changes: list[Change] = []
        self.windows_known = False
        """Whether the machines have every fetched window stored before the last counts."""

    # -- counter points ----------------------------------------------------------------------
    async def add_counts(self, counts: list[Count], batches: Sequence[Batch]) -> None:
        """Keep each observation as its point's latest value for the hour (from the counts sink).

        ``batches`` are the counts batch's partition batches: how far each partition is read.
        """
        if not self.loaded:
            await self._load()
        for batch in batches:
            self.positions[batch.tp] = batch.last + 1
            if batch.tp.topic == self.repartitioned and self.in_flight:
                self.in_flight = max(self.in_flight - len(batch.records), 0)
        sources = {obs.source for obs in counts}
        if len(sources) == 1:  # the usual batch: one source's counts
            self._clock(sources.pop()).add_counts(counts)
        else:
            for source in sources:
                self._clock(source).add_counts(obs for obs in counts if obs.source == source)
        if counts:
            self.windows_known = False

    async def _read_fetched(self) -> None:
        """Give each point's machine the windows its source was asked for (from the store).

        The connectors send them to ``bike.fetched`` with the counts; ``store_fetched`` keeps
        them merged. A point with none on record is judged at every hour, as before.
        """
        kommuner = sorted(
            {m.kommune_nr for clock in self.clocks.values() for m in clock.points.values()}
        )
        if not kommuner:
            return
        stored = await self.shared.read(lambda store: store.query_fetched(kommuner=kommuner))
        spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
        for w in stored:
            spans.setdefault((w.source, w.point_id), []).append((w.since, w.until))
        for (source, point_id), windows in spans.items():
            clock = self.clocks.get(source)
            if clock is not None:
                clock.set_fetched(point_id, windows)
        self.windows_known = True

    def _clock(self, source: str) -> SourceClock:
        clock = self.clocks.get(source)
        if clock is None:
            clock = SourceClock(source, self.settings.point_thresholds(source))
            self.clocks[source] = clock
        return clock

    def _kommuner_owned(self, kommuner: list[str]) -> list[str]:
        """The kommuner whose counts land on a partition this worker is assigned."""
        assigned = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.count_topics
        }
        n = BIKE_COUNTS.partitions or self.settings.topic_partitions
        every = list(range(n))
        return [k for k in kommuner if _PARTITIONER(k.encode(), every, every) in assigned]

    async def _load(self) -> None:
        """Rebuild the machines once, after the worker (re)started, from the stored point-hours.

        The store's ``point_hourly`` is written with the counts' results before their offsets
        are committed, so it holds at least every hour this worker's committed input had.
        """
        self.loaded = True
        days = {
            source: self.settings.point_thresholds(source).history_days * HISTORY_FACTOR
            for source in await self.shared.read(lambda store: store.point_sources())
        }
        if not days:
            return
        kommuner = self._kommuner_owned(
            await self.shared.read(lambda store: store.point_kommuner())
        )
        rows = sorted(await self.shared.read(lambda store: store.point_history(kommuner, days)))
        if not rows:
            return
        for source, hour, point_id, kommune_nr, volume, coverage in rows:
            self._clock(source).add(point_id, kommune_nr, hour, volume, coverage)
        await self._read_fetched()
        changes = [c for clock in self.clocks.values() for c in clock.advance()]
        # Changes older than one history window were stored by the run that made them; the
        # start of a rebuilt history is judged with less history and may differ.
        oldest = min(row[1] for row in rows)
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            latest[(change.source, change.point_id)] = change
            history = self.clocks[change.source].thresholds.history_days
            if change.since >= oldest + timedelta(days=history):
                self.changes.append(change)
        # Every point's current state, for the gauge and the compacted topic.
        emitted = {id(c) for c in self.changes}
        self.changes.extend(c for c in latest.values() if id(c) not in emitted)
        log.info("sensor status rebuilt: %d points, %d changes replayed", len(latest), len(changes))

    def caught_up(self) -> bool:
        """Whether every partition read from is read up to its high-water mark.

        Counts forwarded to the repartition topic and not read back yet count as unread.
        """
        if self.in_flight:
            return False
        consumer = self.app.consumer
        assigned = consumer.assignment()
        # The fetched windows produced before these counts must be stored before hours are
        # judged (else a point without windows on record is judged at every hour): every
        # assigned partition of bike.fetched committed (stored, then acked) up to its end.
        committed = getattr(consumer, "_committed_offset", {})  # faust keeps no public view
        for tp in assigned:
            if tp.topic == self.fetched_topic:
                highwater = consumer.highwater(tp)
                done = committed.get(tp)
                if highwater is None or (highwater > 0 and (done is None or done < highwater)):
                    return False
        for tp, position in self.positions.items():
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or position < highwater:
                return False
        return True

    # -- feeds -------------------------------------------------------------------------------
    async def apply_health(self, batch: list[tuple[FeedHealth, Record]]) -> None:
        """Judge each poll of a feed (its machine reaches the changelog at the flush)."""
        for health, message in batch:
            state: dict[str, Any] | None = self.feeds.get(health.key)
            machine = (
                FeedMachine.from_dict(state)
                if state is not None
                else FeedMachine(health.source, health.kind)
            )
            self.changes.extend(machine.step(health, self.settings.feed_thresholds(health.source)))
            self.feeds.message = message
            self.feeds[health.key] = machine.to_dict()

    # -- flushing ----------------------------------------------------------------------------
    async def write(self) -> Output:
        """Judge the closed hours (when caught up); the changes, for the topic and the store.

        The feeds' machines changed since the last flush go to their changelog first.
        """
        self.feeds.flush()
        if self.clocks and self.caught_up():
            if not self.windows_known:
                await self._read_fetched()
            for clock in self.clocks.values():
                self.changes.extend(clock.advance())
        changes, self.changes = self.changes, []
        if not changes:
            return Output()
        records = []
        for change in changes:
            record = status_of(change)
            records.append((record.key.encode(), record.to_bytes()))

        def after() -> None:
            for change in changes:
                self.metrics.set_sensor_state(
                    change.source, change.point_id, change.kommune_nr or "", change.state
                )

        return Output(
            records=records,
            write=lambda store: _write(store, changes),
            after=after,
            count=len(changes),
        )


def _write(store: Store, changes: list[Change]) -> None:
    for change in changes:
        if change.closes and change.previous and change.previous_since is not None:
            store.upsert_outage(
                change.source,
                change.point_id,
                change.previous,
                change.previous_since,
                change.since,
                change.kommune_nr,
            )
        if change.opens:
            store.upsert_outage(
                change.source,
                change.point_id,
                change.state,
                change.since,
                None,
                change.kommune_nr,
                change.details,
            )


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the status agents to ``app`` (counts come from the cycling sink); return the flush."""
    tracker = tracker_of(app, settings)

    tracker.batch_agent(
        tracker.health,
        FeedHealth.from_bytes,
        tracker.apply_health,
        source=FEED_HEALTH.name,
        stage="feed_status",
    )

    @app.timer(FLUSH_INTERVAL_S)
    async def flush_status() -> None:
        if tracker.clocks:
            await tracker.flush()

    return tracker.flush


_TRACKERS: weakref.WeakKeyDictionary[faust.App, StatusTracker] = weakref.WeakKeyDictionary()


def tracker_of(app: faust.App, settings: Settings) -> StatusTracker:
    """The one :class:`StatusTracker` of ``app`` (the cycling sink feeds it counts)."""
    tracker = _TRACKERS.get(app)
    if tracker is None:
        tracker = StatusTracker(app, settings, default_metrics())
        _TRACKERS[app] = tracker
    return tracker
