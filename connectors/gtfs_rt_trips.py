"""GTFS-realtime trip updates → whole-trip records, one per live trip and snapshot.

:class:`TripUpdates` keeps every live trip (:class:`~byflyt.connectors.gtfs_rt_live.LiveTrip`)
between snapshots. A trip whose update repeats byte for byte (less its timestamp) is re-sent
re-stamped without being parsed or resolved; any other is parsed, its service date found
(``start_date``, else the date in Entur's entity id, else the running date nearest the
snapshot) and its calls resolved on the static plan (:mod:`byflyt.connectors.gtfs_rt_calls`).
For FULL_DATASET feeds a trip in the previous snapshot but missing from this one is sent once
more as ``vanished``. A rule broken rejects the entity alone (``invalid_entity``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors import gtfs_rt_decode as decode
from byflyt.connectors.base import Record
from byflyt.connectors.gtfs_rt_calls import CallResolver, EntityRejected
from byflyt.connectors.gtfs_rt_decode import plausible
from byflyt.connectors.gtfs_rt_live import LiveTrip
from byflyt.metrics import Metrics
from byflyt.models import codec_trips
from byflyt.models.base import Mode
from byflyt.models.envelope import Rejected
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import TripStatus
from byflyt.topics import TRIP_UPDATES

_ENTITY_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2})$")  # Entur: "<trip_id>-<YYYY-MM-DD>"
_TRIP = rt.TripDescriptor
_MAX_ID = 256  # the longest trip or route id a record carries


class TripUpdates:
    """The trip-update side of a GTFS-realtime connector (see the module docstring).

    ``source`` and ``name`` stamp its metrics and dead letters; ``interval`` is the poll
    interval staleness is measured in; ``max_calls`` the most stop time updates (and static
    calls) a trip may have. ``occupancy`` (trip id → status) comes from the vehicle positions
    read before; ``location`` names the snapshot being read, for dead letters.
    """

    def __init__(
        self,
        static: StaticFeed,
        *,
        source: str,
        name: str,
        metrics: Metrics,
        interval: timedelta,
        max_calls: int,
        resolver: CallResolver,
    ) -> None:
        self.static = static
        self.feed = static.feed
        self.source = source
        self.name = name
        self.metrics = metrics
        self.interval = interval
        self.max_calls = max_calls
        self.resolver = resolver
        self.live: dict[str, LiveTrip] = {}
        self.by_entity: dict[str, LiveTrip] = {}  # the trips whose bytes stand for them
        self.occupancy: dict[str, str] = {}
        self.location = ""
        self._start_dates: dict[str, date] = {}
        # A trip's first departure and last arrival on a date (epoch s), None: no times.
        self._runs: dict[tuple[str, date], tuple[int, int] | None] = {}
        self._tally: Counter[str] = Counter()
        self._stale_before = 0.0  # the epoch second before which an entity is stale
        self._added: Counter[str] = Counter()  # ADDED trips by where their mode came from
        trips = static.trips
        self._trip_service = dict(zip(trips["trip_id"], trips["service_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        self._feed_modes = sorted(set(static.routes["mode"]))

    def warn(self, warning: str, times: int = 1) -> None:
        """Count a feed warning."""
        self.metrics.feed_warnings.labels(self.source, warning).inc(times)

    def reject(self, entity: Any, exc: EntityRejected, **context: str) -> Rejected:
        """The dead letter of an entity that breaks rule ``exc``."""
        return Rejected.of(
            self.source,
            "invalid_entity",
            f"{exc.rule}: {exc.reason}",
            self.name,
            decode.full_entity(entity).SerializePartialToString(),
            rule=exc.rule,
            entity_id=entity.id[:256],
            location=self.location,
            **context,
        )

    def snapshot(
        self,
        entities: decode.Entities,
        full: bool,
        taken: datetime,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> int:
        """Resolve the snapshot's trip updates into records; return how many are cancelled.

        A trip whose update is byte for byte the one its state was resolved from, under the
        same entity id (less the timestamp, :func:`~byflyt.connectors.gtfs_rt_decode.untimed`),
        is neither parsed nor resolved again, and its record is the last one's bytes with the
        times changed. Raises :class:`~byflyt.connectors.gtfs_rt_decode.Unparsable` (nothing
        kept, nothing counted) when an entity that must be parsed does not parse.
        """
        self._added.clear()
        states: dict[str, LiveTrip] = {}
        by_entity: dict[str, LiveTrip] = {}
        refused: set[str] = set()
        ids: set[str] = set()
        previous = self.live
        known = self.by_entity
        occupancy = self.occupancy
        stale_before = self._stale_before = (taken - 2 * self.interval).timestamp()
        taken_bytes = codec_trips.encode_time(taken)
        until = taken.timestamp()
        warnings: Counter[str] = Counter()
        self._tally = warnings
        platform_changes = cancelled = no_vehicle = stale = 0
        repeats: list[LiveTrip] = []  # restamped once the snapshot is read whole
        overwritten = False
        spans = entities.spans
        fingerprints = entities.prints
        # Why apart: without vehicle positions (most TripUpdates feeds) a repeat's occupancy
        # is None, and asking LiveTrip.same ten thousand times a snapshot costs a call each.
        no_occupancy = not occupancy
        oldest = decode.EPOCH_RANGE[0]
        for n in range(len(entities)):
            print_: int | None = None
            tail: int | None = None
            if spans is not None and fingerprints is not None:
                entity_id = spans[n][0]
                print_, tail = fingerprints[n]
                live = known.get(entity_id)
                if (
                    live is not None
                    and live.print_ == print_
                    and entity_id not in ids
                    and (live.head.occupancy is None if no_occupancy else live.same(occupancy))
                ):
                    # The feed repeats the trip (its descriptor too): nothing to parse or
                    # resolve, only its checks to count.
                    ids.add(entity_id)
                    by_entity[entity_id] = live
                    stamp = tail if tail is not None else live.stamp
                    no_vehicle += live.no_vehicle
                    if oldest <= stamp < stale_before:  # plausible and stale
                        stale += 1
                    platform_changes += live.platform_changes
                    cancelled += live.cancelled
                    key = live.key
                    known_state = states.get(key)
                    if known_state is not live:  # twice in a snapshot: once is its record
                        overwritten = overwritten or known_state is not None
                        states[key] = live
                        repeats.append(live)
                    continue
            entity, updates = entities.parsed(n)
            if not entity.HasField("trip_update"):
                continue
            update = entity.trip_update
            entity_id = entity.id
            resolver = self.resolver
            resolver.platform_changes = 0
            try:
                if entity_id in ids:
                    cancelled += update.trip.schedule_relationship == _TRIP.CANCELED
                    raise EntityRejected(
                        "duplicate_entity_id",
                        f"entity id {entity_id[:256]!r} came before in this snapshot",
                    )
                ids.add(entity_id)
                cancelled += update.trip.schedule_relationship == _TRIP.CANCELED
                trip, fixed_date = self._trip_state(entity, taken, updates)
                platform_changes += resolver.platform_changes
            except EntityRejected as exc:
                platform_changes += resolver.platform_changes
                trip_id = update.trip.trip_id
                refused.add(trip_id)
                rejected.append(self.reject(entity, exc, trip_id=trip_id[:256]))
                continue
            if trip.occupancy is None and trip.trip_id in occupancy:
                trip = msgspec.structs.replace(trip, occupancy=occupancy[trip.trip_id])
            # The bytes stand for the state only when the state follows from the update
            # alone, and their stripped tail is the update's own timestamp.
            cacheable = fixed_date and trip.status != "added" and tail in (None, update.timestamp)
            key = trip.key
            overwritten = overwritten or key in states
            live = states[key] = LiveTrip.of(
                trip,
                key,
                previous.get(key),
                print_ if cacheable else None,
                stamp_bytes=taken_bytes,
                timed=resolver.timed,
                skipped=resolver.skipped,
                sequences=resolver.sequences,
                stamp=update.timestamp,
                no_vehicle=not (update.HasField("vehicle") and update.vehicle.id),
                platform_changes=resolver.platform_changes,
            )
            if live.print_ is not None:
                by_entity[entity_id] = live
        LiveTrip.restamp_all(repeats, taken, until, taken_bytes)
        warnings["missing_vehicle_id"] += no_vehicle
        warnings["stale_entity"] += stale
        for warning, times in warnings.items():
            if times:
                self.warn(warning, times)
        for source, times in self._added.items():
            self.metrics.added_trips.labels(self.source, source).inc(times)
        self._added.clear()
        if platform_changes:
            self.metrics.platform_changes.labels(self.feed, self.name).inc(platform_changes)
        current = dict(states) if full else previous | states
        # Why the subset test first: most snapshots lose no trip, and it is one pass in C.
        if full and not previous.keys() <= states.keys():
            for key, last in previous.items():
                if key in states:
                    continue
                if last.head.trip_id in refused:  # still in the feed, only unreadable this time
                    current[key] = last
                    continue
                gone = last.vanished(taken)
                records.append(Record(TRIP_UPDATES, key, codec_trips.encode(gone)))
                counts["vanished"] += 1
        self.live = current
        if not full:
            by_entity = known | by_entity
        if overwritten or not full:  # keep only the entities of the trips' current states
            by_entity = {e: live for e, live in by_entity.items() if current.get(live.key) is live}
        self.by_entity = by_entity
        join, unchanged = b"".join, 0
        for key, live in states.items():
            unchanged += live.repeated
            value = join((live.before, live.stamp_bytes, live.after, live.settled, live.calls))
            records.append(Record(TRIP_UPDATES, key, value))
        counts["trip_states"] += len(states) + counts["vanished"]
        counts["unchanged_trips"] += unchanged
        return cancelled

    def _trip_state(
        self, entity: Any, taken: datetime, updates: list[decode.Update] | None
    ) -> tuple[codec_trips.TripHead, bool]:
        """The entity's trip, and whether its service date is fixed by the entity alone.

        ``updates`` are its stop time updates when they were read with it.
        """
        update = entity.trip_update
        trip = update.trip
        relation = trip.schedule_relationship
        added = relation == _TRIP.ADDED
        trip_id = trip.trip_id
        if not trip_id:
            raise EntityRejected("no_trip_id", "the trip update has no trip.trip_id")
        if len(trip_id) > _MAX_ID:
            raise EntityRejected("trip_id", f"trip_id is longer than {_MAX_ID} characters")
        known = trip_id in self._trip_service
        if not known and not added:
            raise EntityRejected(
                "unknown_trip",
                f"trip_id {trip_id!r} is not in static feed {self.feed!r} and is not ADDED",
            )
        if len(update.stop_time_update) > self.max_calls:
            raise EntityRejected(
                "too_many_calls",
                f"trip {trip_id[:256]!r} has {len(update.stop_time_update)} stop time updates, "
                f"more than the limit of {self.max_calls}",
            )
        if updates is None:
            updates = list(map(decode.read_update, update.stop_time_update))
        self.resolver.timed = self.resolver.skipped = None
        self.resolver.check_updates(updates)
        if not (update.HasField("vehicle") and update.vehicle.id):
            self._tally["missing_vehicle_id"] += 1
        stamp = update.timestamp
        if stamp and plausible(stamp) and stamp < self._stale_before:
            self._tally["stale_entity"] += 1
        service_date, fixed_date = self._service_date(entity, trip_id, taken)
        status: TripStatus = "added" if added else "scheduled"
        if relation == _TRIP.CANCELED:
            status = "cancelled"
        if known:
            planned = self.resolver.planned(self.static, trip_id, service_date)
            if planned is None:
                raise EntityRejected(
                    "not_running", f"trip {trip_id!r} does not run on {service_date.isoformat()}"
                )
            if len(planned.stops) > self.max_calls:
                raise EntityRejected(
                    "too_many_calls",
                    f"trip {trip_id!r} has {len(planned.stops)} static calls, more than the "
                    f"limit of {self.max_calls}",
                )
            route_id = planned.route_id
            delay = int(update.delay) if update.HasField("delay") else None
            calls = msgspec.Raw(self.resolver.calls(trip_id, planned, updates, delay))
            mode = self._route_mode.get(route_id, "other")
        else:
            added = self.resolver.added_calls(updates)
            if not added:
                raise EntityRejected(
                    "no_stops", f"ADDED trip {trip_id!r} has no stop with a stop_id and a time"
                )
            if len(trip.route_id) > _MAX_ID:
                raise EntityRejected("route_id", f"route_id is longer than {_MAX_ID} characters")
            route_id, mode = self._added_route(trip.route_id, added)
            calls = msgspec.Raw(codec_trips.encode_calls(added))
        record = codec_trips.TripHead(
            feed=self.feed,
            snapshot_at=taken,
            service_date=service_date,
            trip_id=trip_id,
            route_id=route_id,
            mode=mode,
            status=status,
            vehicle_id=update.vehicle.id or None,
            calls=calls,
        )
        return record, fixed_date

    def _added_route(self, route_id: str, calls: Sequence[codec_trips.Call]) -> tuple[str, Mode]:
        """An ADDED trip's route and mode: its route_id, else its stops' routes, else the feed's.

        Real feeds (BART) send ADDED trips with full absolute times and no ``route_id``; their
        stops resolve, so they are counted, with the mode of the routes serving those stops,
        else the feed's only mode, else ``unknown``.
        """
        source = "route"
        mode: Mode | None = self._route_mode.get(route_id) if route_id else None
        if mode is None:
            modes = Counter(
                m for c in calls for m in self.static.stop_modes().get(c.stop_id, ())
            ).most_common(1)
            source, mode = ("stops", modes[0][0]) if modes else ("feed_default", None)
        if mode is None and len(self._feed_modes) == 1:
            mode = self._feed_modes[0]
        if mode is None:
            source, mode = "unknown", "unknown"
        self._added[source] += 1
        return route_id or f"added:{mode}", mode

    def _service_date(self, entity: Any, trip_id: str, taken: datetime) -> tuple[date, bool]:
        """start_date, else the date in Entur's entity id, else the nearest running date.

        The flag says whether the date follows from the entity alone (not from ``taken``).
        """
        start = entity.trip_update.trip.start_date
        if start:
            known = self._start_dates.get(start)
            if known is not None:
                return known, True
            try:
                day = datetime.strptime(start, "%Y%m%d").replace(tzinfo=UTC).date()
            except ValueError:
                raise EntityRejected(
                    "start_date", f"start_date {start!r} is not YYYYMMDD"
                ) from None
            if len(self._start_dates) >= 1000:  # a feed names a few days; a broken one, many
                self._start_dates.clear()
            self._start_dates[start] = day
            return day, True
        service = self._trip_service.get(trip_id)
        local = taken.astimezone(self.static.timezone).date()
        if service is None:
            return local, False
        dates = self.static.service_dates(service)
        named = _ENTITY_DATE.search(entity.id)
        if named and date.fromisoformat(named[1]) in dates:
            return date.fromisoformat(named[1]), True
        if not dates:
            raise EntityRejected("not_running", f"trip {trip_id!r} has no service dates")
        near = [d for d in dates if abs((d - local).days) <= 1]
        near = near or [min(dates, key=lambda d: abs((d - local).days))]
        return min(near, key=lambda d: self._distance(trip_id, d, taken)), False

    def _distance(self, trip_id: str, service_date: date, taken: datetime) -> timedelta:
        """How far ``taken`` is from the trip's run on ``service_date`` (zero: during it)."""
        key = (trip_id, service_date)
        if key in self._runs:
            span = self._runs[key]
        else:
            schedule = self.static.trip_schedule(trip_id, service_date)
            departures = [d for d in schedule.departures if d is not None] if schedule else []
            arrivals = [a for a in schedule.arrivals if a is not None] if schedule else []
            span = (min(departures), max(arrivals)) if departures and arrivals else None
            if len(self._runs) >= _RUNS_MAX:
                self._runs.clear()
            self._runs[key] = span
        if span is None:
            return timedelta.max
        at = taken.timestamp()
        return timedelta(seconds=max(span[0] - at, at - span[1], 0))


_RUNS_MAX = 200_000  # a national day has ~30 000 trips
