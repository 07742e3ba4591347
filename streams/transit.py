"""The transit pipeline's agents: trip states → final stop calls → hourly metrics per kommune.

``derive_calls`` turns ``transit.trip-updates`` into final calls once each
(:mod:`~byflyt.streams.transit_calls` holds the rule and its state), sent as ``StopCall`` on
``transit.stop-calls`` and as ``TransitFact`` on ``transit.facts.by-kommune``.

``vehicles_seen`` turns ``transit.vehicles`` into ``vehicle`` facts.

``aggregate_transit`` keeps, in the table ``transit-hours`` keyed ``kommune|mode|hour``, every
fact by its identity, recomputes the hour's metrics (``departures``, ``cancelled_calls``,
``trips``, ``delay_seconds_sum``, ``delay_count``, ``on_time_calls``, ``trips_out``,
``trips_in``, ``vehicles_active``) and flows, and writes them to ``volumes.hourly`` and the
store before acknowledging its input, as the cycling aggregation does. Coverage is the share of
the hour's scheduled calls (static feed) whose trip the feed reported on at all.

All state expires by event time (service date or hour), never by the wall clock. The tables'
values are named records (:mod:`~byflyt.streams.transit_state`) in the shape older workers wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import faust
import pandas as pd
from faust.serializers.codecs import Codec

from byflyt.errors import ConfigError
from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_trips
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.gtfs import StaticFeed, feed_dir
from byflyt.models.transit import (
    FlowHour,
    TransitFact,
    VehicleSeen,
)
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.app import topic
from byflyt.streams.consumer import Record
from byflyt.streams.live import LiveVolumes
from byflyt.streams.sink import Output, Sink
from byflyt.streams.tables import WriteBack
from byflyt.streams.transit_calls import TRIP_RETENTION, TripDeriver
from byflyt.streams.transit_state import CallFact, HourCell, decode_cell, decode_trip, encode
from byflyt.topics import (
    STOP_CALLS,
    TABLE_RECORD_MAX_BYTES,
    TRANSIT_FACTS,
    TRIP_UPDATES,
    VEHICLES,
    VOLUMES_HOURLY,
)

log = logging.getLogger(__name__)

ON_TIME = (-60, 180)  # served with delay in [−60 s, +180 s)


# -- hourly aggregation --------------------------------------------------------------------------
def hour_metrics(cell: HourCell) -> dict[str, tuple[float, int]]:
    """Metric → (value, n_sources) of one kommune-hour cell (see the module docstring)."""
    out: dict[str, tuple[float, int]] = {}
    calls = cell.calls
    if calls:
        served = [v for v in calls.values() if v.status == "served"]
        delays = [v.delay_seconds for v in served if v.delay_seconds is not None]
        trips = len({v.trip_id for v in calls.values()})
        out["departures"] = (len(served), trips)
        out["cancelled_calls"] = (len(calls) - len(served), trips)
        out["trips"] = (len({v.trip_id for v in served}), trips)
        out["delay_seconds_sum"] = (float(sum(delays)), trips)
        out["delay_count"] = (len(delays), trips)
        on_time = sum(1 for d in delays if ON_TIME[0] <= d < ON_TIME[1])
        out["on_time_calls"] = (on_time, trips)
    for metric, crossings in (("trips_out", cell.trips_out), ("trips_in", cell.trips_in)):
        if crossings:
            # Crossing ids are ``<trip key>:<from seq>><to seq>``: n_sources counts trips.
            out[metric] = (len(crossings), len({c.rsplit(":", 1)[0] for c in crossings}))
    if cell.vehicles:
        out["vehicles_active"] = (len(cell.vehicles), len(cell.vehicles))
    return out


class RecordCodec(Codec):
    """A transit table's records on its changelog (see :mod:`~byflyt.streams.transit_state`)."""

    def __init__(self, decode: Callable[[bytes], Any], **kwargs: Any) -> None:
        super().__init__(decode=decode, **kwargs)
        self.decode = decode

    def _dumps(self, s: Any) -> bytes:
        return encode(s)

    def _loads(self, s: bytes) -> Any:
        return self.decode(s)


class RecordTable(faust.Table):
    """A faust table whose values are records, written to and read from its changelog by a codec.

    faust picks a table's value serializer from a faust ``Record`` type only; this one is set
    before the table is added to the app, which is when its changelog topic is made.
    """

    def __init__(self, app: faust.App, *, codec: Codec, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.value_serializer = codec


def record_table(
    app: faust.App, name: str, decode: Callable[[bytes], Any], *, partitions: int, help: str
) -> Any:
    """A table of records (None for a missing key) with their changelog codec."""
    table = RecordTable(
        app,
        codec=RecordCodec(decode),
        name=name,
        default=None,
        beacon=app.tables.beacon,
        partitions=partitions,
        help=help,
        extra_topic_configs={"max.message.bytes": str(TABLE_RECORD_MAX_BYTES)},
    )
    return app.tables.add(table)


class ScheduledCalls:
    """Scheduled calls per (kommune, mode, UTC hour) from the static feeds, loaded on demand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.feeds: dict[str, StaticFeed | None] = {}
        self.loaded: dict[str, set[date]] = {}
        self.counts: dict[tuple[str, str, str, datetime], int] = {}

    def count(self, feed: str, kommune_nr: str, mode: str, hour: datetime) -> int | None:
        """How many calls ``feed`` schedules in the kommune-hour; None without a static feed."""
        static = self._feed(feed)
        if static is None:
            return None
        local = hour.astimezone(static.timezone).date()
        for day in (local - timedelta(days=1), local):
            if day not in self.loaded.setdefault(feed, set()):
                self._load(feed, static, day)
        return self.counts.get((feed, kommune_nr, mode, hour), 0)

    def _feed(self, feed: str) -> StaticFeed | None:
        if feed not in self.feeds:
            try:
                self.feeds[feed] = StaticFeed.load(feed_dir(self.settings, feed))
            except ConfigError as exc:
                log.warning("no static feed %r for coverage: %s", feed, exc)
                self.feeds[feed] = None
        return self.feeds[feed]

    def _load(self, feed: str, static: StaticFeed, day: date) -> None:
        self.loaded[feed].add(day)
        calls = static.scheduled_calls(day)
        if calls.empty:
            return
        when = calls["scheduled_departure"].fillna(calls["scheduled_arrival"])
        frame = pd.DataFrame(
            {"kommune_nr": calls["kommune_nr"], "mode": calls["mode"], "hour": when.dt.floor("h")}
        ).dropna()
        for (kommune_nr, mode, hour), n in (
            frame.groupby(["kommune_nr", "mode", "hour"]).size().items()
        ):
            key = (feed, str(kommune_nr), str(mode), hour.to_pydatetime().astimezone(UTC))
            self.counts[key] = self.counts.get(key, 0) + int(n)


class TransitAggregator(Sink):
    """State, flushing and eviction of the hourly transit aggregation (one per worker)."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        super().__init__(
            app, settings, metrics, "aggregate_transit", topic(app, settings, VOLUMES_HOURLY)
        )
        self.live = LiveVolumes(metrics.volume)
        self.retention = timedelta(days=settings.hour_retention_days)
        self.table = WriteBack(
            record_table(
                app,
                "transit-hours",
                decode_cell,
                partitions=settings.topic_partitions,
                help="kommune|mode|hour → facts by identity: calls, coverage, crossings, vehicles.",
            )
        )
        self.scheduled = ScheduledCalls(settings)
        self.dirty: set[str] = set()
        self.newest: dict[str, datetime] = {}
        self.inputs = topic(app, settings, TRANSIT_FACTS)

    async def apply_facts(self, batch: list[tuple[TransitFact, Record]]) -> None:
        """Apply a batch of facts; a fact for an hour already evicted is ``too_late``."""
        for fact, message in batch:
            newest = self.newest.get(fact.kommune_nr)
            if newest is not None and fact.hour_start < newest - self.retention:
                # Its kommune-hour's facts are gone from memory and are not stored one by one:
                # recomputing it from this fact alone would overwrite the stored hour.
                await self.reject(
                    "transit.facts",
                    "too_late",
                    message.value,
                    f"hour {iso_z(fact.hour_start)} is more than "
                    f"{self.retention.days} days older than the kommune's newest hour "
                    f"{iso_z(newest)}",
                    "aggregate_transit",
                )
                continue
            self.table.message = message
            self.dirty.add(self.apply(fact))

    def apply(self, fact: TransitFact) -> str:
        """Record ``fact`` in its kommune-hour cell; return the cell key."""
        key = f"{fact.kommune_nr}|{fact.mode}|{iso_z(fact.hour_start)}"
        cell: HourCell = self.table.get(key) or HourCell()
        if fact.kind == "call":
            status = cast(str, fact.status)  # a call fact always has one (TransitFact checks)
            cell.calls[fact.id] = CallFact(status, fact.delay_seconds, fact.trip_id)
        elif fact.kind == "reported":
            cell.reported[fact.id] = 1
        elif fact.kind == "out":
            cell.trips_out[fact.id] = fact.other_kommune
        elif fact.kind == "in":
            cell.trips_in[fact.id] = fact.other_kommune
        else:
            cell.vehicles[fact.id] = fact.occupancy
        cell.feeds[fact.feed] = 1
        self.table[key] = cell
        self._expire(fact.kommune_nr, fact.hour_start)
        return key

    def _expire(self, kommune_nr: str, hour: datetime) -> None:
        newest = self.newest.get(kommune_nr)
        if newest is not None and hour <= newest:
            return
        self.newest[kommune_nr] = hour
        horizon = hour - self.retention
        prefix = f"{kommune_nr}|"
        for key in [k for k in self.table if k.startswith(prefix)]:
            if datetime.fromisoformat(key.rsplit("|", 1)[1]) < horizon:
                del self.table[key]

    def rows(self, key: str) -> tuple[list[HourlyVolume], list[FlowHour]]:
        """The kommune-hour's metric rows and the flows leaving it."""
        kommune_nr, mode, hour_text = key.split("|")
        hour = datetime.fromisoformat(hour_text)
        cell: HourCell = self.table.get(key) or HourCell()
        coverage = self._coverage(cell, kommune_nr, mode, hour)
        rows = [
            HourlyVolume(
                kommune_nr=kommune_nr,
                mode=mode,
                metric=metric,
                hour_start=hour,
                value=value,
                coverage=coverage,
                n_sources=n,
            )
            for metric, (value, n) in hour_metrics(cell).items()
        ]
        targets: dict[str, int] = {}
        for other in cell.trips_out.values():
            if other is not None:
                targets[other] = targets.get(other, 0) + 1
        flows = [
            FlowHour(
                from_kommune=kommune_nr,
                to_kommune=other,
                mode=mode,
                hour_start=hour,
                trips=n,
            )
            for other, n in sorted(targets.items())
        ]
        return rows, flows

    def _coverage(self, cell: HourCell, kommune_nr: str, mode: str, hour: datetime) -> float:
        scheduled = 0
        for feed in cell.feeds:
            count = self.scheduled.count(feed, kommune_nr, mode, hour)
            scheduled += count or 0
        if scheduled == 0:
            return 100.0
        return round(min(100.0, 100.0 * len(cell.reported) / scheduled), 2)

    async def write(self) -> Output:
        """Each dirty kommune-hour to its changelog, its rows and flows: one store transaction."""
        self.table.flush()
        dirty, self.dirty = self.dirty, set()
        if not dirty:
            return Output()
        rows: list[HourlyVolume] = []
        flows: list[FlowHour] = []
        for key in sorted(dirty):
            hour_rows, hour_flows = self.rows(key)
            rows.extend(hour_rows)
            flows.extend(hour_flows)

        def store_write(store: Store) -> None:
            store.write_transit(rows, flows)

        return Output(
            records=[(row.key.encode(), row.to_bytes()) for row in rows],
            write=store_write,
            after=lambda: self.live.update(rows),
            count=len(rows),
        )


class CallDerivation(Sink):
    """``derive_calls`` and ``vehicles_seen``: trip states and vehicles → calls and facts.

    Both read whole fetches (:meth:`Sink.consume_batches`). What a batch makes final goes out
    on ``transit.stop-calls`` and ``transit.facts.by-kommune`` as it is applied; each changed
    trip is written to the ``trip-calls`` changelog once, at the flush, and only then is the
    batch acknowledged. Nothing is stored here: the aggregation stores what the facts make.
    """

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        super().__init__(app, settings, metrics, "derive_calls", None)
        self.table = WriteBack(
            record_table(
                app,
                "trip-calls",
                decode_trip,
                partitions=settings.topic_partitions,
                help="feed:service_date:trip_id → the trip's final calls "
                "(status, kommune, actual).",
            )
        )
        self.deriver = TripDeriver(self.table)
        self.trips = topic(app, settings, TRIP_UPDATES)
        self.vehicles = topic(app, settings, VEHICLES)
        self.facts = topic(app, settings, TRANSIT_FACTS)
        self.stop_calls = topic(app, settings, STOP_CALLS)

    def parse_trip(self, raw: bytes | None) -> codec_trips.Trip | None:
        """The record's trip; None when it adds nothing (settled since a record applied)."""
        if self.deriver.settled(raw):
            return None
        return codec_trips.decode(raw)

    async def apply_trips(self, batch: list[tuple[codec_trips.Trip | None, Record]]) -> None:
        """Make each trip's calls final once; send the calls and facts they give."""
        deriver, metrics = self.deriver, self.metrics
        derived = 0
        for trip, message in batch:
            if trip is None:
                continue
            if deriver.evicted(trip):
                await self.reject(
                    TRIP_UPDATES.name,
                    "too_late",
                    message.value,
                    f"service date {trip.service_date} is more than {TRIP_RETENTION.days} days "
                    f"before the newest service date {deriver.newest}; its calls are settled",
                    "derive_calls",
                )
                continue
            self.table.message = message
            calls, facts = deriver.apply(trip)
            for call in calls:
                key = (call.kommune_nr or "none").encode()
                await self.stop_calls.send(key=key, value=call.to_bytes())
                metrics.stop_calls.labels(call.mode, call.kommune_nr or "", call.status).inc()
            await self.send_facts(facts)
            derived += len(calls)
        metrics.agent_records.labels("derive_calls", "out").inc(derived)

    async def apply_vehicles(self, batch: list[tuple[VehicleSeen, Record]]) -> None:
        """A ``vehicle`` fact for each vehicle seen in a kommune."""
        facts: list[TransitFact] = []
        for seen, _ in batch:
            if seen.kommune_nr is None:
                continue
            fact = TransitFact(
                kind="vehicle",
                feed=seen.feed,
                kommune_nr=seen.kommune_nr,
                mode=seen.mode,
                hour_start=hour_floor(seen.seen_at),
                id=seen.vehicle_id,
                trip_id=seen.trip_id,
                occupancy=seen.occupancy,
            )
            facts.append(fact)
        await self.send_facts(facts)

    async def send_facts(self, facts: list[TransitFact]) -> None:
        """Send facts to the aggregation, keyed by kommune (its partition)."""
        for fact in facts:
            await self.facts.send(key=fact.kommune_nr.encode(), value=fact.to_bytes())

    async def write(self) -> Output:
        """Each trip changed since the last flush to its changelog, once."""
        self.table.flush()
        return Output()


def register(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Add the transit agents to ``app``; return the flush the drain calls."""
    metrics = default_metrics()
    agg = TransitAggregator(app, settings, metrics)
    derive = CallDerivation(app, settings, metrics)

    derive.batch_agent(
        derive.trips,
        derive.parse_trip,
        derive.apply_trips,
        source=TRIP_UPDATES.name,
        stage="derive_calls",
    )
    derive.batch_agent(
        derive.vehicles,
        VehicleSeen.from_bytes,
        derive.apply_vehicles,
        source=VEHICLES.name,
        stage="vehicles_seen",
    )
    agg.batch_agent(
        agg.inputs,
        TransitFact.from_bytes,
        agg.apply_facts,
        source="transit.facts",
        stage="aggregate_transit",
    )
    agg.live.roll_on(app)
    return agg.flush
