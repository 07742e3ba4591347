"""The cycling pipeline's agents: counts → hourly volume per kommune, by event time.

``aggregate_counts`` reads ``bike.counts`` and ``bike.counts.by-kommune`` (co-partitioned: the
same partition of both is on the same worker) on one :class:`~byflyt.streams.sink.Sink`. A
record is decoded with the counts codec (:mod:`byflyt.models.codec_counts`: the compact
version 2 or the JSON of version 1); what does not decode goes to ``dlq.rejected`` as an
``invalid_observation``. The connectors key ``bike.counts`` by kommune number, so a record is
aggregated where it is read; a record keyed otherwise (by point, as older producers did) is
forwarded once to ``bike.counts.by-kommune`` keyed by kommune, so each kommune's hours live on
one partition (and one worker).

State: for each kommune-hour, each point's *latest* ``PointState`` (volume, coverage), in memory. A
re-sent or corrected observation replaces the earlier one and the kommune-hour is recomputed
from the whole cell, so replays and corrections never double-count. The durable copy of that
state is the store's ``point_hourly``, written in the same transaction as the kommune-hours
before the batch is acknowledged: a kommune-hour not in memory (a new hour, an hour evicted, a
partition this worker just got) is loaded from the stored point-hours before it is changed.

Each flush writes every dirty kommune-hour once: to the compacted ``volumes.hourly`` topic (a
tombstone when it no longer has any volume) and to the store, in one transaction with the batch's
point-hours and points.

Memory is bounded by event time: a kommune's hours older than its newest hour minus
``hour_retention_days`` are evicted from memory after a flush — never deleted from the store or
the topic. A count older than its kommune's newest hour minus ``late_grace_days`` is not
aggregated: it goes to ``dlq.rejected`` as ``too_late`` and leaves the store untouched.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from heapq import heappop, heappush
from operator import attrgetter

import faust

from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_counts
from byflyt.models.base import iso_z
from byflyt.models.codec_counts import Count, utc
from byflyt.models.counts import CountPoint
from byflyt.models.volumes import VolumeFields
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.store.counts import PointHourValues
from byflyt.store.rows import VolumeKey
from byflyt.streams.app import topic
from byflyt.streams.consumer import Record
from byflyt.streams.hourly import PointState, hour_text, volume_record
from byflyt.streams.live import LiveVolumes
from byflyt.streams.sink import BATCH_MAX, FLUSH_INTERVAL_S, Output, Route, Sink, reason_of
from byflyt.streams.status import tracker_of
from byflyt.topics import BIKE_COUNTS, BIKE_COUNTS_BY_KOMMUNE, BIKE_POINTS, VOLUMES_HOURLY

__all__ = ["BATCH_MAX", "FLUSH_INTERVAL_S", "CountAggregator", "reason_of", "register"]

STAGE = "aggregate_counts"
intern = sys.intern
Cell = tuple[str, str, int]
"""``(kommune_nr, mode, hour)``, the hour in UTC epoch seconds."""
LOOKAHEAD_S = 14 * 86400
"""How far past the newest hour it needs a read of the stored point-hours reaches."""
RUN_GAP_S = 86400
"""The largest gap between hours a read spans (filled from the store) rather than skips."""
Points = dict[str, PointState]
"""Each point's (``source:point_id``) latest value for a kommune-hour."""


def _run_ahead(hours: list[int]) -> tuple[int, int]:
    """The span of hours to read for ``hours`` (not empty): their newest run, then ahead.

    The run: the newest hour and the hours before it, back to the first gap of more than
    :data:`RUN_GAP_S`. The span reaches :data:`LOOKAHEAD_S` past its newest hour, so a
    backfill or a live stream, moving forward, reads once per span however many hours a
    fetch brings. Older hours (corrections, behind a gap) are read as they are, unspanned.
    """
    ordered = sorted(hours)
    i = len(ordered) - 1
    while i > 0 and ordered[i] - ordered[i - 1] <= RUN_GAP_S:
        i -= 1
    return ordered[i], ordered[-1] + LOOKAHEAD_S


def volume_key(kommune_nr: str, mode: str, hour: datetime) -> bytes:
    """The ``volumes.hourly`` key of a kommune-hour's volume."""
    return f"{kommune_nr}|{mode}|volume|{hour_text(hour)}".encode()


def by_mode_and_kommune(counts: list[Count]) -> dict[tuple[str, str], int]:
    """How many of ``counts`` there are per mode and kommune (the observations metric).

    A batch of one mode (the usual) is counted by kommune alone: no tuple per count.
    """
    modes = {obs.mode for obs in counts}
    if len(modes) == 1:
        mode = modes.pop()
        return {
            (mode, kommune_nr): n
            for kommune_nr, n in Counter(map(attrgetter("kommune_nr"), counts)).items()
        }
    return dict(Counter(map(attrgetter("mode", "kommune_nr"), counts)))


class CountAggregator(Sink):
    """State, loading, eviction and flushing of the count aggregation (one per worker)."""

    writes_in_flight = 2
    """A batch's write may wait behind the one before it: the main thread goes on with the
    next batch meanwhile, rather than wait for the writer thread whenever one write runs
    longer than a batch takes to apply. Memory keeps what every write in flight carries
    (:meth:`_evict`)."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        volumes = topic(app, settings, VOLUMES_HOURLY)
        super().__init__(app, settings, metrics, STAGE, volumes)
        self.retention = settings.hour_retention_days * 86400
        self.grace = settings.late_grace_days * 86400
        self.counts = topic(app, settings, BIKE_COUNTS)
        self.by_kommune = topic(app, settings, BIKE_COUNTS_BY_KOMMUNE)
        self.points = topic(app, settings, BIKE_POINTS)
        self.inputs = app.topic(
            settings.topic(BIKE_COUNTS.name),
            settings.topic(BIKE_COUNTS_BY_KOMMUNE.name),
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        self.cells: dict[Cell, Points] = {}
        self.hours_held: dict[tuple[str, str], list[int]] = {}
        """Per kommune and mode, a min-heap of the hours of the kommune-hours put in memory
        (:meth:`_hold`), so eviction finds the old ones without a look at every kommune-hour.
        An hour may be in it twice, or no longer in memory; eviction skips what is gone."""
        self.newest: dict[tuple[str, str], int] = {}
        self.dirty: set[Cell] = set()
        self.point_hours: list[PointHourValues] = []
        """The batch's point-hours as the store takes them, in the order counted: a point-hour
        given twice is written twice, and the store keeps the last (``write_counts``)."""
        self.new_points: dict[str, CountPoint] = {}
        self._kommune_keys: dict[str, bytes] = {}
        """Each kommune number's record key (encoded once, compared per record)."""
        self.loaded: dict[tuple[str, str], tuple[int, int]] = {}
        """Per kommune and mode, a span of hours whose stored point-hours are all in memory
        (read from the store, then kept up by this worker): an hour in it that memory does
        not hold has none stored, and is not read."""
        self._point_keys: dict[str, dict[str, str]] = {}
        """Each point's ``source:point_id`` (made once, interned), by source and point id."""
        self.live = LiveVolumes(metrics.volume)
        self.status = tracker_of(app, settings)
        self._forward_topic = settings.topic(BIKE_COUNTS.name)
        self.revoked = False
        """Partitions were given away since the last batch: memory may be stale."""
        self.flushed: set[Cell] = set()
        """The kommune-hours of the last flush (:meth:`write`), until its write is in flight."""
        self.in_flight: list[tuple[asyncio.Future[None], set[Cell]]] = []
        """The kommune-hours each write in flight carries (kept in memory until it is done)."""

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a narrower callable
        async def on_revoked(sender: faust.App, revoked: object, **_: object) -> None:
            self.revoked = True

    async def _forget_clean_cells(self) -> None:
        """Drop every flushed kommune-hour from memory after a rebalance.

        Another worker may have changed a kommune-hour whose partition this worker held
        before; the next observation for it loads the stored point-hours afresh. First the
        write in flight is waited for: a kommune-hour leaves memory only once it is stored
        (reads do not wait for writes, see :meth:`_load`).
        """
        if self.writing is not None:
            await self.writing
        self.revoked = False
        self.loaded.clear()
        dirty = self.dirty
        self.cells = {cell: points for cell, points in self.cells.items() if cell in dirty}

    # -- state ---------------------------------------------------------------------------------
    async def apply_counts(self, batch: list[tuple[Count, Record]]) -> None:
        """Forward what is not on its kommune's partition; aggregate the rest.

        The per-record work (forwarding, the too-late check, each point's latest value per
        kommune-hour) needs nothing from the store, so it runs while the previous batch is
        still being written; then the kommune-hours memory does not hold are loaded (a read
        beside that write: what it carries is in memory) and the batch's values merged in.
        """
        if self.revoked:
            await self._forget_clean_cells()
        local: list[Count] = []
        counted: list[Count] = []
        forwarded = 0
        forward_topic = self._forward_topic
        keys = self._kommune_keys
        for obs, record in batch:
            if record.topic == forward_topic:
                counted.append(obs)
                key = keys.get(obs.kommune_nr)
                if key is None:
                    key = keys[obs.kommune_nr] = obs.kommune_nr.encode()
                if record.key != key:
                    await self.by_kommune.send(key=key, value=codec_counts.encode(obs))
                    forwarded += 1
                    continue
            local.append(obs)
        if counted:
            for (mode, kommune_nr), n in by_mode_and_kommune(counted).items():
                self.metrics.observations.labels(mode, kommune_nr).inc(n)
        self.status.in_flight += forwarded
        accepted, updates = await self.aggregate(local) if local else ([], {})
        await self.status.add_counts(accepted, self.batches)
        if updates:
            await self.merge(updates)

    async def begin_flush(self) -> asyncio.Future[None]:
        """Flush the counts, then sensor status (both stored before the batch is acknowledged)."""
        counts = await super().begin_flush()
        if self.flushed:
            self.in_flight.append((counts, self.flushed))
            self.flushed = set()
        status = await self.status.begin_flush()

        async def stored() -> None:
            await counts
            await status

        return asyncio.ensure_future(stored())

    async def aggregate(self, batch: list[Count]) -> tuple[list[Count], dict[Cell, Points]]:
        """Apply observations in order: what was accepted, and each kommune-hour's new values.

        A count too far behind its kommune's newest hour goes to the dead-letter topic. The
        values are each point's latest of the batch, per kommune-hour; :meth:`merge` puts them
        into memory. The usual batch, every count within the grace, takes
        :meth:`_aggregate_within_grace`; one that may hold a late count is applied a count at a
        time (:meth:`_aggregate_in_order`).
        """
        updates = self._aggregate_within_grace(batch)
        if updates is not None:
            return batch, updates
        return await self._aggregate_in_order(batch)

    def _aggregate_within_grace(self, batch: list[Count]) -> dict[Cell, Points] | None:
        """:meth:`_aggregate_in_order` of a batch in which no count is late, or None.

        No count is late when, per kommune and mode, the batch's oldest hour is within the
        grace of the newest hour there is after it (the kommune's newest before the batch or
        the batch's own): a count is never behind more than that. Checked on the batch's
        kommune-hours, after the aggregation (:meth:`_cells_of`); if a group fails the check,
        nothing of the batch has been kept and None is returned.
        """
        updates, point_hours = self._cells_of(batch)
        spans: dict[tuple[str, str], list[int]] = {}
        for group_kommune, group_mode, cell_hour in updates:
            span = spans.get((group_kommune, group_mode))
            if span is None:
                spans[(group_kommune, group_mode)] = [cell_hour, cell_hour]
            elif cell_hour < span[0]:
                span[0] = cell_hour
            elif cell_hour > span[1]:
                span[1] = cell_hour
        newest_of, grace = self.newest, self.grace
        for group, (oldest, newest) in spans.items():
            if oldest < max(newest_of.get(group, newest), newest) - grace:
                return None
        for group, (_, newest) in spans.items():
            newest_of[group] = max(newest_of.get(group, newest), newest)
        self.point_hours += point_hours
        return updates

    def _cells_of(self, counts: list[Count]) -> tuple[dict[Cell, Points], list[PointHourValues]]:
        """Each point's latest value per kommune-hour of ``counts``, and their point-hours.

        One loop, in order: the point-hours as the store takes them (a repeat is written
        again, the last kept), the values keyed by the point's interned ``source:point_id``.
        """
        updates: dict[Cell, Points] = {}
        point_hours: list[PointHourValues] = []
        add_point_hour = point_hours.append
        point_keys = self._point_keys
        for obs in counts:
            start = obs.start
            hour = start - start % 3600
            kommune_nr, mode, source, point_id = obs.kommune_nr, obs.mode, obs.source, obs.point_id
            by_point = point_keys.get(source)
            if by_point is None:
                by_point = point_keys[source] = {}
            point = by_point.get(point_id)
            if point is None:
                # One string per point, not per observation: cells keep their points' keys.
                point = by_point[point_id] = intern(f"{source}:{point_id}")
            cell = (kommune_nr, mode, hour)
            values = updates.get(cell)
            if values is None:
                values = updates[cell] = {}
            volume, coverage = obs.volume, obs.coverage
            values[point] = PointState(volume, coverage)
            add_point_hour((source, point_id, hour, kommune_nr, mode, volume, coverage))
        return updates, point_hours

    async def _aggregate_in_order(
        self, batch: list[Count]
    ) -> tuple[list[Count], dict[Cell, Points]]:
        """:meth:`aggregate` a count at a time: each checked against the newest hour before it.

        A late count moves nothing (nor the newest hour); the accepted ones are aggregated
        in order afterwards (:meth:`_cells_of`), which lateness does not depend on.
        """
        accepted: list[Count] = []
        late: list[tuple[Count, int]] = []
        newest_of, grace = self.newest, self.grace
        # The newest hour of the kommune and mode at hand, kept in a local while they repeat.
        last_kommune = last_mode = ""
        last_group: tuple[str, str] | None = None
        newest = 0
        for obs in batch:
            start = obs.start
            hour = start - start % 3600
            kommune_nr, mode = obs.kommune_nr, obs.mode
            if kommune_nr != last_kommune or mode != last_mode:
                if last_group is not None:
                    newest_of[last_group] = newest
                last_kommune, last_mode = kommune_nr, mode
                last_group = (kommune_nr, mode)
                newest = newest_of.get(last_group, hour)
            if hour < newest - grace:
                late.append((obs, newest))
                continue
            if hour > newest:
                newest = hour
            accepted.append(obs)
        if last_group is not None:
            newest_of[last_group] = newest
        updates, point_hours = self._cells_of(accepted)
        self.point_hours += point_hours
        for obs, newest in late:
            await self.reject(
                BIKE_COUNTS.name,
                "too_late",
                codec_counts.to_observation(obs).to_bytes(),
                f"hour {iso_z(utc(obs.hour))} is more than {self.settings.late_grace_days} "
                f"days older than the kommune's newest hour {iso_z(utc(newest))}",
                STAGE,
            )
        return accepted, updates

    async def merge(self, updates: dict[Cell, Points]) -> None:
        """Put a batch's values into memory, loading the kommune-hours it does not hold.

        A kommune-hour memory does not hold is read from the store unless it lies in its
        kommune's :attr:`loaded` span (then none is stored). A read also covers the
        :data:`LOOKAHEAD_S` past the newest hour it needs (:func:`_run_ahead`), so a backfill
        or a live stream, moving forward, reads the store about once per span rather than
        once per batch.
        Under the lock: a flush in between (the drain's) would evict from under the merge.
        """
        async with self.lock:
            cells = self.cells
            missing = [cell for cell in updates if cell not in cells]
            if missing:
                await self._load([cell for cell in missing if not self._known(cell)])
                hold = self._hold
                for cell in missing:
                    if cell not in cells:
                        cells[cell] = {}
                        hold(cell)
            for cell, values in updates.items():
                cells[cell].update(values)
            self.dirty.update(updates)

    def _known(self, cell: Cell) -> bool:
        """Whether ``cell``'s stored point-hours, if any, are in memory."""
        span = self.loaded.get((cell[0], cell[1]))
        return span is not None and span[0] <= cell[2] <= span[1]

    async def _load(self, unknown: list[Cell]) -> None:
        """Read the stored point-hours of ``unknown`` kommune-hours (and of spans ahead)."""
        if not unknown:
            return
        hours: dict[tuple[str, str], list[int]] = {}
        for kommune_nr, mode, hour in unknown:
            hours.setdefault((kommune_nr, mode), []).append(hour)
        cells = self.cells
        fill = set(unknown)
        """The kommune-hours to take from the store: not in memory, which has the last word."""
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for (kommune_nr, mode), group_hours in hours.items():
            first, last = _run_ahead(group_hours)
            spans[(kommune_nr, mode)] = (first, last)
            for hour in range(first, last + 1, 3600):
                if (kommune_nr, mode, hour) not in cells:
                    fill.add((kommune_nr, mode, hour))
        wanted = [(k, m, utc(h)) for k, m, h in fill]
        # Beside the write in flight, not behind it: what that write carries is in memory
        # (a kommune-hour is evicted only once stored: _evict), so it cannot change the answer.
        stored = await self.shared.read_committed(lambda store: store.point_hours_of(wanted))
        for kommune_nr, mode, hour_start, point, volume, coverage in stored:
            cell = (kommune_nr, mode, int(hour_start.timestamp()))
            if cell in fill:
                points = cells.get(cell)
                if points is None:
                    points = cells[cell] = {}
                    self._hold(cell)
                points[intern(point)] = PointState(volume, coverage)
        loaded, newest = self.loaded, self.newest
        for group, (first, last) in spans.items():
            span = loaded.get(group)
            if span is not None and first <= span[1] + 3600 and last >= span[0] - 3600:
                first, last = min(first, span[0]), max(last, span[1])
            # Never over hours eviction may already have dropped (see _evict).
            first = max(first, newest.get(group, first) - self.retention)
            if first <= last:
                loaded[group] = (first, last)

    async def apply_points(self, batch: list[tuple[CountPoint, faust.EventT]]) -> None:
        """Keep the batch's counting points for the next store write."""
        for point, _ in batch:
            self.new_points[point.key] = point

    def _hold(self, cell: Cell) -> None:
        """Note that ``cell`` was put in memory (for :meth:`_evict`)."""
        kommune_nr, mode, hour = cell
        heap = self.hours_held.get((kommune_nr, mode))
        if heap is None:
            heap = self.hours_held[(kommune_nr, mode)] = []
        heappush(heap, hour)

    def _evict(self, unstored: set[Cell]) -> None:
        """Drop kommune-hours behind their kommune's newest hour minus the retention (memory).

        Only stored ones: called from :meth:`write`, and the ``unstored`` kommune-hours (this
        flush's, and those of the writes still in flight) stay until a later flush. So memory
        always holds what a write in flight carries, and a read need not wait for it.
        The :attr:`loaded` spans shrink with them: an evicted hour is stored, not absent.
        """
        cells, newest, retention = self.cells, self.newest, self.retention
        for (kommune_nr, mode), heap in self.hours_held.items():
            group_newest = newest.get((kommune_nr, mode))
            if group_newest is None:
                continue
            floor = group_newest - retention
            kept: list[int] = []
            while heap and heap[0] < floor:
                cell = (kommune_nr, mode, heappop(heap))
                if cell in unstored:
                    kept.append(cell[2])
                else:
                    cells.pop(cell, None)
            for hour in kept:
                heappush(heap, hour)
        loaded = self.loaded
        for group, (first, last) in list(loaded.items()):
            floor = newest.get(group, first) - retention
            if last < floor:
                del loaded[group]
            elif first < floor:
                loaded[group] = (floor, last)

    # -- flushing ------------------------------------------------------------------------------
    async def write(self) -> Output:
        """Every dirty kommune-hour once, the batch's point-hours and points, one transaction."""
        dirty, self.dirty = self.dirty, set()
        rows, self.point_hours = self.point_hours, []
        points, self.new_points = self.new_points, {}
        if not (dirty or rows or points):
            return Output()
        upserts: list[VolumeFields] = []
        deletes: list[VolumeKey] = []
        records: list[tuple[bytes, bytes | None]] = []
        for kommune_nr, mode, hour in sorted(dirty):
            start = utc(hour)
            record = volume_record(kommune_nr, mode, start, self.cells[(kommune_nr, mode, hour)])
            if record is None:
                deletes.append((kommune_nr, mode, "volume", start))
                records.append((volume_key(kommune_nr, mode, start), None))
            else:
                row, raw = record
                upserts.append(row)
                records.append((volume_key(row.kommune_nr, row.mode, start), raw))
        # Kept in memory: this flush's kommune-hours and those of the writes still in flight.
        self.in_flight = [(write, cells) for write, cells in self.in_flight if not write.done()]
        self._evict(dirty.union(*(cells for _, cells in self.in_flight)))
        self.flushed = dirty
        point_list = list(points.values())

        def store_write(store: Store) -> None:
            store.write_counts(point_list, rows, upserts, deletes)

        return Output(
            records=records,
            write=store_write,
            after=lambda: self.live.update(upserts, deletes),
            count=len(upserts) + len(deletes),
        )


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the cycling agents to ``app``; return the flush the drain calls."""
    agg = CountAggregator(app, settings, default_metrics())

    agg.batch_agent(
        agg.inputs,
        codec_counts.decode,
        agg.apply_counts,
        source=BIKE_COUNTS.name,
        stage=STAGE,
        code="invalid_observation",
        parse_all=codec_counts.decode_all,
    )

    @app.agent(agg.points, name="store_points")
    async def store_points(stream: faust.StreamT[bytes]) -> None:
        await agg.consume(
            stream, Route(CountPoint.from_bytes, agg.apply_points, BIKE_POINTS.name, "store_points")
        )

    agg.live.roll_on(app)
    return agg.flush
