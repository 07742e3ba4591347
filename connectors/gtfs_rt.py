"""GTFS-realtime (protobuf): TripUpdates as whole-trip states, VehiclePositions in kommuner.

Each poll fetches one snapshot per feed URL (VehiclePositions first, so their occupancy can be
copied into the trips of the TripUpdates that follow) with ``ET-Client-Name`` and a conditional
GET (``If-None-Match``/``If-Modified-Since`` from the previous answer; 304: nothing new). A
replay plays recorded ``*.pb`` files in name order, one file a poll, telling trip updates and
vehicle positions apart by their entities (a file with neither: by "vehicle" in its name).

Validation follows the MobilityData GTFS-realtime validator. A snapshot that does not parse,
has no header timestamp, lies more than 60 s in the future (wall clock, in replays too:
recordings lie in the past) or is older than the last one accepted is rejected whole
(``invalid_snapshot``); one with the same timestamp as the last accepted is a repeat: counted,
nothing produced. The last accepted timestamp of each kind is the checkpoint, in Kafka, so a
restart keeps the rule. An entity is rejected alone (``invalid_entity``) for stop time updates
out of ``stop_sequence`` order, absolute times that decrease, a trip or stop unknown to the
static feed (ADDED trips may be unknown) or a stop that is not on its trip. Missing vehicle
ids, entities older than the header by more than two intervals and a feed older than two
intervals (live only: a recording is old by nature) are warnings, counted, not rejects.

Every accepted TripUpdate becomes a :class:`~byflyt.models.transit.TripState`: the whole trip
from the static feed, each call with the delay that reaches it under GTFS-realtime propagation
(its own update, else the nearest previous one; NO_DATA stops propagation, SKIPPED does not;
``trip_update.delay`` before the first update). Entur's ``stop_sequence`` is a synthetic
counter, so an update is matched by ``stop_sequence`` only when that call has the same stop,
else by ``stop_id`` searching forward from the last matched call. For FULL_DATASET feeds a
trip in the previous accepted snapshot but missing from this one is sent once more as
``vanished``. That previous set lives in memory: after a restart the first snapshot has none,
so trips that vanished while the connector was down are not reported.

The transit feeds' one runner, :class:`~byflyt.connectors.snapshots.SnapshotRunner`, runs it
(producer, dead-letter topic, checkpoints, back-off, the number of polls, feed health).
"""

from __future__ import annotations

import logging
import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec
import pandas as pd
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors import gtfs_rt_decode as decode
from byflyt.connectors.base import (
    Call,
    Discovery,
    PollResult,
    Record,
)
from byflyt.connectors.feed_health import FeedHealthLog
from byflyt.connectors.gtfs_static import StaticFeed, TripPlan
from byflyt.connectors.http import send
from byflyt.connectors.replay import read_replay
from byflyt.connectors.snapshots import SnapshotConnector
from byflyt.errors import ConfigError
from byflyt.metrics import Metrics, default_metrics
from byflyt.models import codec_trips
from byflyt.models.base import Mode, iso_z
from byflyt.models.envelope import Rejected
from byflyt.models.geo import KommuneLocator
from byflyt.models.transit import CallRealtime, TripStatus, VehicleSeen
from byflyt.settings import Settings
from byflyt.topics import TRIP_UPDATES, VEHICLES

log = logging.getLogger(__name__)

Kind = Literal["trip_updates", "vehicle_positions"]
FUTURE_TOLERANCE = timedelta(seconds=60)
DEFAULT_INTERVAL = timedelta(seconds=10)
_ENTITY_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2})$")  # Entur: "<trip_id>-<YYYY-MM-DD>"

_STU = rt.TripUpdate.StopTimeUpdate
_NO_DATA = _STU.NO_DATA
_SKIPPED = _STU.SKIPPED
_TRIP = rt.TripDescriptor
_MAX_ID = 256  # the longest trip or route id a record carries


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_sources(
    trip_updates: str | None, vehicle_positions: str | None, replay: Path | None
) -> None:
    """Refuse (ConfigError) what cannot work: both or neither of URLs and replay, bad URLs."""
    if (trip_updates is None) == (replay is None):
        raise ConfigError(
            "--trip-updates",
            "give either a TripUpdates URL or --replay DIR" + (", not both" if replay else ""),
            "e.g. --trip-updates https://api.entur.io/realtime/v1/gtfs-rt/trip-updates",
        )
    if replay is not None and vehicle_positions is not None:
        raise ConfigError(
            "--vehicle-positions",
            "is for live feeds; a replay tells vehicle positions apart by content",
            "drop --vehicle-positions, or put the recorded files in the --replay folder",
        )
    for option, url in (
        ("--trip-updates", trip_updates),
        ("--vehicle-positions", vehicle_positions),
    ):
        if url is not None:
            _check_url(option, url)


@dataclass(frozen=True)
class Snapshot:
    """What one poll reads: a feed URL (live) or a recorded file and its bytes (replay)."""

    kind: Kind
    location: str
    data: bytes | None = None


class _EntityRejected(Exception):
    """An entity breaks a rule: it goes to the dead-letter topic, the snapshot goes on."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(reason)


def _has(message: Any, name: str) -> bool:
    return bool(message.HasField(name))


# POSIX seconds byflyt believes (2000-01-01 … 2100-01-01); milliseconds are far beyond.
_EPOCH_RANGE = (946_684_800, 4_102_444_800)


def _plausible(seconds: int) -> bool:
    return _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _check_url(option: str, url: str) -> None:
    try:
        parsed = httpx.URL(url) if "://" in url else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(option, f"{url!r} is not an http(s) URL", "give the feed's full URL")


class GtfsRtConnector(SnapshotConnector[Snapshot]):
    """A GTFS-realtime feed resolved against its static feed (see the module docstring).

    Give ``trip_updates`` (and optionally ``vehicle_positions``) URLs, or a ``replay`` folder
    of ``*.pb`` files (``polls`` limits how many are played). ``interval`` is the poll interval
    the staleness warnings are measured in; ``clock`` gives "now" for the future and age
    checks; ``locator`` places vehicles (default: from the settings' kommune GeoJSON).
    """

    name = "gtfs-rt"

    def __init__(
        self,
        settings: Settings,
        *,
        static: StaticFeed,
        trip_updates: str | None = None,
        vehicle_positions: str | None = None,
        replay: Path | None = None,
        polls: int | None = None,
        interval: timedelta = DEFAULT_INTERVAL,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
        metrics: Metrics | None = None,
        locator: KommuneLocator | None = None,
    ) -> None:
        check_sources(trip_updates, vehicle_positions, replay)
        self.feed = static.feed
        self.source = f"gtfs-rt:{static.feed}"
        self.static = static
        self.recordings = read_replay(replay, ".pb", polls) if replay is not None else []
        self.urls: list[tuple[Kind, str]] = []
        if vehicle_positions is not None:
            self.urls.append(("vehicle_positions", vehicle_positions))
        if trip_updates is not None:
            self.urls.append(("trip_updates", trip_updates))
        self.replay = replay is not None
        self.interval = interval
        self.clock = clock
        self.metrics = metrics or default_metrics()
        self.health = FeedHealthLog(self.source, self.metrics)
        if locator is None and (vehicle_positions is not None or replay is not None):
            locator = KommuneLocator.from_settings(settings)
        self.locator = locator
        self._client = httpx.Client(
            headers={"ET-Client-Name": settings.client_name}, timeout=httpx.Timeout(timeout)
        )
        self._validators: dict[str, dict[str, str]] = {}
        self._trips: dict[str, _Live] = {}
        self._by_print: dict[int, str] = {}
        self._start_dates: dict[str, date] = {}
        self._platform_changes = 0
        self._tally: Counter[str] = Counter()
        self._added: Counter[str] = Counter()
        self._timed: list[tuple[float, int]] | None = None
        self._skipped: list[int] | None = None  # ADDED trips by where their mode came from
        self._plan_calls: dict[int, _PlanCalls] = {}
        self._occupancy: dict[str, str] = {}
        trips = static.trips
        self._trip_service = dict(zip(trips["trip_id"], trips["service_id"], strict=True))
        self._trip_route = dict(zip(trips["trip_id"], trips["route_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        stops = static.stops
        self._stop_kommune: dict[str, str | None] = {
            str(s): (None if pd.isna(k) else str(k))
            for s, k in zip(stops["stop_id"], stops["kommune_nr"], strict=True)
        }
        self._stop_parent: dict[str, str] = {
            str(s): str(p)
            for s, p in zip(stops["stop_id"], stops["parent_station"], strict=True)
            if not pd.isna(p) and p
        }
        self.max_calls = settings.max_calls_per_journey
        self._location = ""
        self._feed_modes = sorted(set(static.routes["mode"]))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def item_id(self, item: Snapshot) -> str:
        """The kind of snapshot: each kind keeps its own last accepted timestamp."""
        return item.kind

    def discover(self, call: Call) -> Discovery[Snapshot]:
        """The feed URLs of one poll, or every recorded file of a replay, in order."""
        if not self.replay:
            return Discovery(items=[Snapshot(kind, url) for kind, url in self.urls])
        return Discovery(
            items=[Snapshot(_kind_of(data, p.name), str(p), data) for p, data in self.recordings]
        )

    # -- one snapshot ------------------------------------------------------------------------
    def poll(self, item: Snapshot, position: str | None, call: Call) -> PollResult:
        """Fetch (or read) one snapshot, validate it and resolve its entities."""
        self._location = item.location
        data = item.data
        if data is None:
            data = call(partial(self._fetch, item.location), f"{item.kind} {item.location}")
            if data is None:
                last_taken = datetime.fromisoformat(position) if position else None
                self._note_health(item.kind, last_taken, None)
                self._count_snapshot(item.kind, "not_modified")
                return PollResult(records=[], counts=Counter(not_modified=1))
        walked = decode.walk(data) if item.kind == "trip_updates" else None
        message = header = None
        # Why not ParseFromString: most entities repeat the last snapshot's; only the others
        # are parsed, one at a time (see connectors/gtfs_rt_decode).
        if walked is not None and walked[0] is not None:
            try:
                header = rt.FeedHeader.FromString(walked[0])
            except DecodeError:
                walked = None
        if walked is None:
            message = self._parse(data)
            if message is None:
                return self._reject_unparsable(item, data)
            header = message.header if _has(message, "header") else None
        if header is None or not _has(header, "timestamp") or not header.timestamp:
            return self._reject_snapshot(item, "no_header", "has no header timestamp", data)
        if not _plausible(header.timestamp):
            reason = (
                f"header timestamp {header.timestamp} is not POSIX seconds between 2000 and 2100 "
                "(milliseconds?)"
            )
            return self._reject_snapshot(item, "timestamp_out_of_range", reason, data)
        taken = _instant(header.timestamp)
        now = self.clock()
        if taken > now + FUTURE_TOLERANCE:
            reason = f"header timestamp {iso_z(taken)} is more than 60 s after now ({iso_z(now)})"
            return self._reject_snapshot(item, "future_timestamp", reason, data)
        last = datetime.fromisoformat(position) if position else None
        if last is not None and taken < last:
            reason = (
                f"header timestamp {iso_z(taken)} is older than the last accepted snapshot "
                f"({iso_z(last)})"
            )
            return self._reject_snapshot(item, "older_than_last", reason, data)
        if last is not None and taken == last:
            self._note_health(item.kind, taken, None)
            self._count_snapshot(item.kind, "repeated")
            return PollResult(records=[], counts=Counter(repeated=1))
        if not self.replay and now - taken > 2 * self.interval:
            self._warn("stale_feed")
        records: list[Record] = []
        rejected: list[Rejected] = []
        counts: Counter[str] = Counter(snapshots=1)
        if message is not None:  # some entity may hold a vehicle position
            self._vehicles(message, taken, records, rejected, counts)
        if item.kind == "trip_updates":
            entities = decode.Entities(message, data, walked[1] if walked is not None else None)
            full = header.incrementality == rt.FeedHeader.FULL_DATASET
            try:
                cancelled = self._trip_updates(entities, full, taken, records, rejected, counts)
            except decode.Unparsable:
                return self._reject_unparsable(item, data)
            count = len(entities)
        else:
            assert message is not None
            cancelled, count = _cancelled(message), len(message.entity)
        self._note_health(item.kind, taken, count, cancelled)
        self._count_snapshot(item.kind, "accepted")
        return PollResult(
            records=records,
            rejected=rejected,
            checkpoint=iso_z(taken),
            last_data=taken,
            counts=counts,
        )

    @staticmethod
    def _parse(data: bytes) -> Any | None:
        message = rt.FeedMessage()
        try:
            message.ParseFromString(data)
        except DecodeError:
            return None
        return message

    def _reject_unparsable(self, item: Snapshot, data: bytes) -> PollResult:
        try:
            rt.FeedMessage().ParseFromString(data)
            problem = "does not parse as a FeedMessage"
        except DecodeError as exc:
            problem = f"does not parse as a FeedMessage: {exc}"
        return self._reject_snapshot(item, "parse", problem, data)

    def _fetch(self, url: str) -> bytes | None:
        """One conditional GET: the body, or None when the feed answers 304 Not Modified."""
        response = send(
            self._client, "GET", url, also_ok=(304,), headers=self._validators.get(url, {})
        )
        if response.status_code == 304:
            return None
        validators = {}
        if etag := response.headers.get("ETag"):
            validators["If-None-Match"] = etag
        if modified := response.headers.get("Last-Modified"):
            validators["If-Modified-Since"] = modified
        self._validators[url] = validators
        return response.content

    def _reject_snapshot(self, item: Snapshot, rule: str, problem: str, raw: bytes) -> PollResult:
        self._count_snapshot(item.kind, "rejected")
        reason = f"{rule}: the {item.kind} snapshot {problem}"
        rejected = self.reject(
            "invalid_snapshot", reason, raw, rule=rule, kind=item.kind, location=item.location
        )
        return PollResult(records=[], rejected=[rejected], counts=Counter(rejected_snapshots=1))

    def _reject_entity(self, entity: Any, exc: _EntityRejected, **context: str) -> Rejected:
        return self.reject(
            "invalid_entity",
            f"{exc.rule}: {exc.reason}",
            entity.SerializePartialToString(),
            rule=exc.rule,
            entity_id=entity.id[:256],
            location=self._location,
            **context,
        )

    def _note_health(
        self, kind: Kind, taken: datetime | None, entities: int | None, cancelled: int = 0
    ) -> None:
        # A recording is old by nature: a replayed snapshot is read at its own time.
        read_at = taken if self.replay and taken is not None else self.clock()
        self.health.note(
            kind, read_at=read_at, snapshot_at=taken, entities=entities, cancelled=cancelled
        )

    def _count_snapshot(self, kind: Kind, outcome: str) -> None:
        self.metrics.snapshots.labels(self.source, kind, outcome).inc()

    def _warn(self, warning: str, times: int = 1) -> None:
        self.metrics.feed_warnings.labels(self.source, warning).inc(times)

    def _stale(self, entity_timestamp: int, taken: datetime) -> bool:
        return taken - _instant(entity_timestamp) > 2 * self.interval

    # -- vehicle positions -------------------------------------------------------------------
    def _vehicles(
        self,
        message: Any,
        taken: datetime,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> None:
        occupancy: dict[str, str] = {}
        seen = False
        for entity in message.entity:
            if not _has(entity, "vehicle"):
                continue
            seen = True
            position = entity.vehicle
            vehicle_id = position.vehicle.id if _has(position, "vehicle") else ""
            if not vehicle_id:
                # A warning, not a reject: the position is valid, but without a vehicle id it
                # cannot be told apart from other vehicles, so it is not counted as one.
                self._warn("missing_vehicle_id")
                continue
            stamp = int(position.timestamp) if _has(position, "timestamp") else 0
            if stamp and not _plausible(stamp):
                self._warn("timestamp_out_of_range")
                stamp = 0
            if stamp and self._stale(stamp, taken):
                self._warn("stale_entity")
            trip_id = position.trip.trip_id or None
            route = self._trip_route.get(trip_id or "") or position.trip.route_id
            kommune = None
            if _has(position, "position") and self.locator is not None:
                kommune = self.locator.locate(
                    position.position.latitude, position.position.longitude
                )
            status = None
            if _has(position, "occupancy_status"):
                status = rt.VehiclePosition.OccupancyStatus.Name(position.occupancy_status)
                if trip_id is not None:
                    occupancy[trip_id] = status
            seen_vehicle = VehicleSeen(
                feed=self.feed,
                snapshot_at=taken,
                seen_at=_instant(stamp) if stamp else taken,
                vehicle_id=vehicle_id,
                trip_id=trip_id,
                mode=self._route_mode.get(route, "other"),
                kommune_nr=kommune,
                occupancy=status,
            )
            records.append(Record.of(VEHICLES, seen_vehicle))
            counts["vehicles"] += 1
        if seen:
            self._occupancy = occupancy

    # -- trip updates ------------------------------------------------------------------------
    def _trip_updates(
        self,
        entities: decode.Entities,
        full: bool,
        taken: datetime,
        records: list[Record],
        rejected: list[Rejected],
        counts: Counter[str],
    ) -> int:
        """Resolve the snapshot's trip updates into records; return how many are cancelled.

        A trip whose update is byte for byte the one its state was resolved from (less the
        timestamp, :func:`~byflyt.connectors.gtfs_rt_decode.fingerprint`) is neither parsed
        nor resolved again. Raises :class:`~byflyt.connectors.gtfs_rt_decode.Unparsable`
        (nothing kept, nothing counted) when an entity that must be parsed does not parse.
        """
        self._added.clear()
        states: dict[str, _Live] = {}
        refused: set[str] = set()
        ids: set[str] = set()
        previous = self._trips
        by_print = self._by_print
        data, view = entities.data, entities.view
        occupancy = self._occupancy
        stale_before = (taken - 2 * self.interval).timestamp()
        warnings: Counter[str] = Counter()
        self._tally = warnings
        platform_changes = cancelled = no_vehicle = stale = 0
        for n in range(len(entities)):
            raw = entities.raw(n)
            print_: int | None = None
            tail: int | None = None
            if raw is not None:
                entity_id, start, end = raw
                print_, tail = decode.fingerprint(data, view, start, end)
                known_key = by_print.get(print_)
                live = previous.get(known_key) if known_key is not None else None
                if live is not None and entity_id not in ids and live.same(entity_id, occupancy):
                    # The feed repeats the trip (its descriptor too): nothing to parse or
                    # resolve, only its checks to count.
                    ids.add(entity_id)
                    stamp = tail if tail is not None else live.stamp
                    no_vehicle += live.no_vehicle
                    if stamp and _plausible(stamp) and stamp < stale_before:
                        stale += 1
                    platform_changes += live.platform_changes
                    cancelled += live.cancelled
                    states[live.key] = live.restamped(taken)
                    continue
            entity = entities.parsed(n)
            if not entity.HasField("trip_update"):
                continue
            update = entity.trip_update
            entity_id = entity.id
            self._platform_changes = 0
            try:
                if entity_id in ids:
                    cancelled += update.trip.schedule_relationship == _TRIP.CANCELED
                    raise _EntityRejected(
                        "duplicate_entity_id",
                        f"entity id {entity_id[:256]!r} came before in this snapshot",
                    )
                ids.add(entity_id)
                cancelled += update.trip.schedule_relationship == _TRIP.CANCELED
                trip, fixed_date = self._trip_state(entity, taken)
                platform_changes += self._platform_changes
            except _EntityRejected as exc:
                platform_changes += self._platform_changes
                trip_id = update.trip.trip_id
                refused.add(trip_id)
                rejected.append(self._reject_entity(entity, exc, trip_id=trip_id[:256]))
                continue
            if trip.occupancy is None and trip.trip_id in occupancy:
                trip = msgspec.structs.replace(trip, occupancy=occupancy[trip.trip_id])
            # A print stands for the state only when the state follows from the update alone,
            # and its stripped tail is the update's own timestamp.
            cacheable = fixed_date and trip.status != "added" and tail in (None, update.timestamp)
            key = trip.key
            states[key] = _Live.of(
                trip,
                previous.get(key),
                print_ if cacheable else None,
                None if update.trip.start_date else entity_id,
                timed=self._timed,
                skipped=self._skipped,
                stamp=update.timestamp,
                no_vehicle=not (update.HasField("vehicle") and update.vehicle.id),
                platform_changes=self._platform_changes,
            )
        warnings["missing_vehicle_id"] += no_vehicle
        warnings["stale_entity"] += stale
        for warning, times in warnings.items():
            if times:
                self._warn(warning, times)
        for source, times in self._added.items():
            self.metrics.added_trips.labels(self.source, source).inc(times)
        self._added.clear()
        if platform_changes:
            self.metrics.platform_changes.labels(self.feed, self.name).inc(platform_changes)
        current = dict(states) if full else previous | states
        if full:
            for key, last in previous.items():
                if key in states:
                    continue
                if last.head.trip_id in refused:  # still in the feed, only unreadable this time
                    current[key] = last
                    continue
                gone = msgspec.structs.replace(
                    last.head, status="vanished", snapshot_at=taken, settled_since=None
                )
                records.append(Record(TRIP_UPDATES, key, codec_trips.encode(gone)))
                counts["vanished"] += 1
        self._trips = current
        self._by_print = {
            live.print_: key for key, live in current.items() if live.print_ is not None
        }
        records.extend(
            Record(TRIP_UPDATES, key, codec_trips.encode(live.head)) for key, live in states.items()
        )
        counts["trip_states"] += len(states) + counts["vanished"]
        counts["unchanged_trips"] += sum(1 for live in states.values() if live.repeated)
        return cancelled

    def _trip_state(self, entity: Any, taken: datetime) -> tuple[codec_trips.Trip, bool]:
        """The entity's trip, and whether its service date is fixed by the entity alone."""
        update = entity.trip_update
        trip = update.trip
        relation = trip.schedule_relationship
        added = relation == _TRIP.ADDED
        trip_id = trip.trip_id
        if not trip_id:
            raise _EntityRejected("no_trip_id", "the trip update has no trip.trip_id")
        if len(trip_id) > _MAX_ID:
            raise _EntityRejected("trip_id", f"trip_id is longer than {_MAX_ID} characters")
        known = trip_id in self._trip_service
        if not known and not added:
            raise _EntityRejected(
                "unknown_trip",
                f"trip_id {trip_id!r} is not in static feed {self.feed!r} and is not ADDED",
            )
        if len(update.stop_time_update) > self.max_calls:
            raise _EntityRejected(
                "too_many_calls",
                f"trip {trip_id[:256]!r} has {len(update.stop_time_update)} stop time updates, "
                f"more than the limit of {self.max_calls}",
            )
        updates = [decode.read_update(u) for u in update.stop_time_update]
        self._timed = self._skipped = None
        self._check_updates(updates)
        if not (_has(update, "vehicle") and update.vehicle.id):
            self._tally["missing_vehicle_id"] += 1
        if (
            update.timestamp
            and _plausible(int(update.timestamp))
            and self._stale(int(update.timestamp), taken)
        ):
            self._tally["stale_entity"] += 1
        service_date, fixed_date = self._service_date(entity, trip_id, taken)
        status: TripStatus = "added" if added else "scheduled"
        if relation == _TRIP.CANCELED:
            status = "cancelled"
        if known:
            plan = self.static.trip_plan(trip_id, service_date)
            if plan is None:
                raise _EntityRejected(
                    "not_running", f"trip {trip_id!r} does not run on {service_date.isoformat()}"
                )
            if len(plan.stops) > self.max_calls:
                raise _EntityRejected(
                    "too_many_calls",
                    f"trip {trip_id!r} has {len(plan.stops)} static calls, more than the limit "
                    f"of {self.max_calls}",
                )
            route_id = plan.route_id
            delay = int(update.delay) if _has(update, "delay") else None
            calls = self._calls(trip_id, plan, updates, delay)
            mode = self._route_mode.get(route_id, "other")
        else:
            calls = self._added_calls(updates)
            if not calls:
                raise _EntityRejected(
                    "no_stops", f"ADDED trip {trip_id!r} has no stop with a stop_id and a time"
                )
            if len(trip.route_id) > _MAX_ID:
                raise _EntityRejected("route_id", f"route_id is longer than {_MAX_ID} characters")
            route_id, mode = self._added_route(trip.route_id, calls)
        record = codec_trips.Trip(
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

    def _check_updates(self, updates: Sequence[decode.Update]) -> None:
        """Entity rules: known stops, stop_sequence order, times that never decrease."""
        previous_sequence: int | None = None
        previous_time: int | None = None
        stop_kommune = self._stop_kommune
        for stop_id, sequence, _, arrival, _, departure, _ in updates:
            if stop_id and stop_id not in stop_kommune:
                raise _EntityRejected(
                    "unknown_stop",
                    f"stop_id {stop_id!r} is not in static feed {self.feed!r}",
                )
            if sequence is None:
                if not stop_id:
                    raise _EntityRejected(
                        "no_stop", "a stop time update has neither stop_id nor stop_sequence"
                    )
            else:
                if previous_sequence is not None and sequence <= previous_sequence:
                    raise _EntityRejected(
                        "stop_sequence_order",
                        f"stop time updates are not ordered by stop_sequence "
                        f"({sequence} after {previous_sequence})",
                    )
                previous_sequence = sequence
            for moment in (arrival, departure):
                if moment is None:
                    continue
                if not _plausible(moment):
                    raise _EntityRejected(
                        "time_out_of_range",
                        f"time {moment} at stop {stop_id[:64] or '?'} is not POSIX seconds "
                        "between 2000 and 2100 (milliseconds?)",
                    )
                if previous_time is not None and moment < previous_time:
                    raise _EntityRejected(
                        "times_decrease",
                        f"time {iso_z(_instant(moment))} at stop {stop_id or '?'} is "
                        f"before the previous time {iso_z(_instant(previous_time))}",
                    )
                previous_time = moment

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
                raise _EntityRejected(
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
            raise _EntityRejected("not_running", f"trip {trip_id!r} has no service dates")
        near = [d for d in dates if abs((d - local).days) <= 1]
        near = near or [min(dates, key=lambda d: abs((d - local).days))]
        return min(near, key=lambda d: self._distance(trip_id, d, taken)), False

    def _distance(self, trip_id: str, service_date: date, taken: datetime) -> timedelta:
        """How far ``taken`` is from the trip's run on ``service_date`` (zero: during it)."""
        plan = self.static.trip_plan(trip_id, service_date)
        departures = [d for d in plan.departures if d is not None] if plan else []
        arrivals = [a for a in plan.arrivals if a is not None] if plan else []
        if not departures or not arrivals:
            return timedelta.max
        first, last = min(departures), max(arrivals)
        return max(first - taken, taken - last, timedelta(0))

    def _match(
        self,
        trip_id: str,
        stops: tuple[str, ...],
        sequences: Sequence[int],
        updates: Sequence[decode.Update],
        by_sequence: _SequenceIndex,
    ) -> dict[int, decode.Update]:
        """Call index → its stop time update (see the module docstring for the rule)."""
        matched: dict[int, decode.Update] = {}
        last = -1
        for update in updates:
            stop_id, sequence = update[0], update[1]
            index = None
            if sequence is not None:
                at = by_sequence.get(sequence)
                if at is not None and at > last and stop_id in ("", stops[at]):
                    index = at
            if index is None and stop_id:
                try:
                    index = stops.index(stop_id, last + 1)
                except ValueError:
                    index = self._sibling_index(stop_id, sequence, stops, by_sequence, last)
                    if index is None:
                        where = " after the previous update" if stop_id in stops else ""
                        raise _EntityRejected(
                            "stop_not_on_trip",
                            f"stop_id {stop_id!r} is not on trip {trip_id!r}{where}",
                        ) from None
            if index is None:
                raise _EntityRejected(
                    "stop_not_on_trip",
                    f"stop_sequence {sequence or 0} is not on trip {trip_id!r}",
                )
            matched[index] = update
            last = index
        return matched

    def _sibling_index(
        self,
        stop_id: str,
        sequence: int | None,
        stops: Sequence[str],
        by_sequence: _SequenceIndex,
        last: int,
    ) -> int | None:
        """The call a stop time update at a sibling quay (same parent_station) belongs to."""
        parent = self._stop_parent.get(stop_id)
        if parent is None:
            return None
        at = by_sequence.get(sequence) if sequence is not None else None
        candidates = [at] if at is not None and at > last else []
        candidates += range(last + 1, len(stops))
        return next((i for i in candidates if self._stop_parent.get(stops[i]) == parent), None)

    def _calls(
        self, trip_id: str, plan: TripPlan, updates: Sequence[decode.Update], trip_delay: int | None
    ) -> list[codec_trips.Call]:
        """Every static call with the delay that reaches it (GTFS-realtime propagation)."""
        stops, sequences = plan.stops, plan.sequences
        planned = self._planned(trip_id, plan)
        matched = self._match(trip_id, stops, sequences, updates, planned.by_sequence)
        if isinstance(planned.scheduled, _EntityRejected):
            raise planned.scheduled
        stop_kommune = self._stop_kommune
        Call = codec_trips.Call
        current, no_data = trip_delay, False
        shift_of: int | None = None
        shift = timedelta(0)
        calls: list[codec_trips.Call] = []
        # Each call with an actual time, as epoch seconds and stop sequence, and the skipped
        # calls' sequences: what _Live keeps, worked out here without reading the datetimes.
        timed = self._timed = []
        skipped = self._skipped = []
        epochs = planned.epochs
        last = len(stops) - 1
        for i, (stop_id, scheduled, kommune) in enumerate(
            zip(stops, planned.scheduled, planned.kommunes, strict=True)
        ):
            update = matched.get(i) if matched else None
            if update is None:
                # The common case: a call the feed says nothing about takes the delay before it.
                if no_data:
                    calls.append(
                        Call(sequences[i], stop_id, kommune, scheduled, None, None, "no_data")
                    )
                    continue
                actual = None
                if current is not None:
                    if current != shift_of:
                        shift_of, shift = current, timedelta(seconds=current)
                    actual = scheduled + shift
                    timed.append((epochs[i] + current, sequences[i]))
                calls.append(Call(sequences[i], stop_id, kommune, scheduled, current, actual))
                continue
            realtime: CallRealtime = "no_data" if no_data else "scheduled"
            own_time: int | None = None
            delay = None if no_data else current
            _, _, relation, arrival, arrival_delay, departure, departure_delay = update
            if relation == _NO_DATA:
                no_data, current, delay, realtime = True, None, None, "no_data"
            else:
                if i == last:  # the arrival is what counts at the last stop
                    own_time = arrival if arrival is not None else departure
                    own_delay = arrival_delay if arrival_delay is not None else departure_delay
                else:
                    own_time = departure if departure is not None else arrival
                    own_delay = departure_delay if departure_delay is not None else arrival_delay
                if own_delay is None and own_time is not None:
                    own_delay = int((_instant(own_time) - scheduled).total_seconds())
                if relation == _SKIPPED:
                    realtime = "skipped"
                    delay = own_delay if own_delay is not None else delay
                else:
                    no_data, realtime = False, "scheduled"
                    if own_delay is not None:
                        current = own_delay
                    delay = current
            if update[0] and update[0] != stop_id:
                # Served at another platform of the same station: keep the actual quay.
                stop_id = update[0]
                kommune = stop_kommune.get(stop_id)
                self._platform_changes += 1
            actual = None
            if realtime == "skipped":
                skipped.append(sequences[i])
            elif own_time is not None:
                actual = _instant(own_time)
                timed.append((own_time, sequences[i]))
            elif delay is not None:
                if delay != shift_of:
                    shift_of, shift = delay, timedelta(seconds=delay)
                actual = scheduled + shift
                timed.append((epochs[i] + delay, sequences[i]))
            calls.append(Call(sequences[i], stop_id, kommune, scheduled, delay, actual, realtime))
        return calls

    def _planned(self, trip_id: str, plan: TripPlan) -> _PlanCalls:
        """What every snapshot needs of a trip's plan, worked out once per trip and date."""
        # Keyed by the plan object, held by the entry: the static feed keeps one per trip and date.
        planned = self._plan_calls.get(id(plan))
        if planned is not None and planned.plan is plan:
            return planned
        times: list[datetime] = []
        missing: _EntityRejected | None = None
        last = len(plan.stops) - 1
        for i, (arrival, departure) in enumerate(zip(plan.arrivals, plan.departures, strict=True)):
            when = (arrival or departure) if i == last else (departure or arrival)
            if when is None:
                missing = _EntityRejected(
                    "static_times",
                    f"the static call {plan.sequences[i]} of {trip_id!r} has no time",
                )
                break
            times.append(when)
        planned = _PlanCalls(
            plan,
            missing or times,
            [int(t.timestamp()) for t in times],
            [self._stop_kommune.get(s) for s in plan.stops],
            _SequenceIndex(plan.sequences),
        )
        if len(self._plan_calls) >= _PLAN_CALLS_MAX:
            self._plan_calls.clear()
        self._plan_calls[id(plan)] = planned
        return planned

    def _added_calls(self, updates: Sequence[decode.Update]) -> list[codec_trips.Call]:
        """An ADDED trip unknown to the static feed: its updates with an absolute time."""
        calls: list[codec_trips.Call] = []
        for n, update in enumerate(updates):
            stop_id, sequence, relation, arrival, arrival_delay, departure, departure_delay = update
            moment = departure if departure is not None else arrival
            if moment is None or not stop_id:
                continue
            calls.append(
                codec_trips.Call(
                    sequence if sequence is not None else n,
                    stop_id,
                    self._stop_kommune.get(stop_id),
                    _instant(moment),
                    departure_delay if departure_delay is not None else arrival_delay,
                    _instant(moment),
                    "skipped" if relation == _SKIPPED else "scheduled",
                )
            )
        return calls


@dataclass(frozen=True)
class _PlanCalls:
    """What the snapshots need of a plan, per call: scheduled instant, epoch, kommune, index.

    ``scheduled`` is the reason the plan cannot be used when a call has no time.
    """

    plan: TripPlan
    scheduled: list[datetime] | _EntityRejected
    epochs: list[int]
    kommunes: list[str | None]
    by_sequence: _SequenceIndex


class _SequenceIndex:
    """A plan's call index by stop_sequence.

    Arithmetic for the usual run of sequences (0, 1, 2 … or 1, 2, 3 …), a dictionary otherwise.
    """

    __slots__ = ("count", "first", "table")

    def __init__(self, sequences: Sequence[int]) -> None:
        self.first = sequences[0] if sequences else 0
        self.count = len(sequences)
        consecutive = all(q == self.first + i for i, q in enumerate(sequences))
        self.table = None if consecutive else {q: i for i, q in enumerate(sequences)}

    def get(self, sequence: int) -> int | None:
        """The index of the call with ``sequence`` (the last, were there two), or None."""
        if self.table is not None:
            return self.table.get(sequence)
        index = sequence - self.first
        return index if 0 <= index < self.count else None


_PLAN_CALLS_MAX = 200_000  # as the static feed's plan cache
_NOTHING_PENDING: tuple[array[float], array[int]] = (array("d"), array("q"))


class _Live:
    """What the connector keeps of a live trip: its last record, compactly, and its entity.

    ``head`` is the last record with its calls left encoded (about a kilobyte a trip).
    ``print_`` is the fingerprint of the entity's trip update as the feed encoded it, less its
    ``timestamp`` (:func:`~byflyt.connectors.gtfs_rt_decode.fingerprint`): the same bytes
    resolve to the same state, so the trip is not parsed nor resolved again. None: the state
    depends on more than the entity (the service date on the clock, an ADDED trip's metrics)
    and is always resolved. ``stamp`` is the update's ``timestamp`` (for a print that keeps it).
    ``final`` holds the stop sequences of the calls the trip's records made final so far;
    ``pending`` the calls that become final when the snapshot passes their actual time: epoch
    seconds (sorted) and stop sequences, as arrays (a few hundred bytes a trip, not two objects
    a call). Together they give each
    record its ``settled_since`` (see ``models/codec_trips``).
    """

    __slots__ = (
        "cancelled",
        "entity_id",
        "final",
        "head",
        "key",
        "no_vehicle",
        "pending",
        "platform_changes",
        "print_",
        "repeated",
        "stamp",
    )

    def __init__(
        self,
        head: codec_trips.TripHead,
        key: str,
        final: tuple[int, ...],
        pending: tuple[array[float], array[int]],
        print_: int | None,
        entity_id: str | None,
        stamp: int,
        no_vehicle: bool,
        platform_changes: int,
    ) -> None:
        self.head = head
        self.key = key
        self.final = final
        self.pending = pending
        self.print_ = print_
        self.entity_id = entity_id
        self.stamp = stamp
        self.no_vehicle = no_vehicle
        self.platform_changes = platform_changes
        self.repeated = False
        self.cancelled = head.status == "cancelled"

    @classmethod
    def of(
        cls,
        trip: codec_trips.Trip,
        last: _Live | None,
        print_: int | None,
        entity_id: str | None,
        *,
        timed: list[tuple[float, int]] | None,
        skipped: list[int] | None,
        stamp: int,
        no_vehicle: bool,
        platform_changes: int,
    ) -> _Live:
        """A freshly resolved trip; ``last`` is what its previous record left, if any.

        ``timed`` are its calls with an actual time (epoch seconds, stop sequence) and
        ``skipped`` its skipped calls' sequences, when the resolution worked them out.
        """
        if trip.status == "cancelled" or timed is None or skipped is None:
            final = codec_trips.final_sequences(trip)
            if timed is None:
                timed = [
                    (c.actual.timestamp(), c.stop_sequence)
                    for c in trip.calls
                    if c.actual is not None and c.realtime != "skipped"
                ]
        else:  # final_sequences' rule, on the epoch seconds at hand
            at = trip.snapshot_at.timestamp()
            final = {q for t, q in timed if t < at}
            final.update(skipped)
        if last is not None and final.issubset(last.final):
            trip = msgspec.structs.replace(trip, settled_since=last.head.snapshot_at)
        pending = _NOTHING_PENDING
        if trip.status != "cancelled" and timed:
            timed.sort()
            pending = (array("d", [t for t, _ in timed]), array("q", [q for _, q in timed]))
        seen = final.union(last.final) if last is not None else final
        head = codec_trips.head_of(trip)
        return cls(
            head,
            head.key,
            tuple(sorted(seen)),
            pending,
            print_,
            entity_id,
            stamp,
            no_vehicle,
            platform_changes,
        )

    def same(self, entity_id: str, occupancy: dict[str, str]) -> bool:
        """Whether the repeated entity resolves to this state (its id and occupancy too)."""
        if self.entity_id is not None and self.entity_id != entity_id:
            return False
        return occupancy.get(self.head.trip_id) == self.head.occupancy

    def restamped(self, taken: datetime) -> _Live:
        """The same state at snapshot ``taken``, settled unless it makes a call final.

        A new object: this one stays as it was until the snapshot is accepted whole.
        """
        since = self.head.snapshot_at
        if since == taken:  # the trip came twice in this snapshot: once is its record
            return self
        (times, sequences), final = self.pending, self.final
        newly = []
        until = taken.timestamp()
        for at in range(bisect_left(times, since.timestamp()), len(times)):
            if times[at] >= until:
                break
            if sequences[at] not in final:
                newly.append(sequences[at])
        head = msgspec.structs.replace(
            self.head, snapshot_at=taken, settled_since=None if newly else since
        )
        restamped = _Live(
            head,
            self.key,
            tuple(sorted({*final, *newly})) if newly else final,
            self.pending,
            self.print_,
            self.entity_id,
            self.stamp,
            self.no_vehicle,
            self.platform_changes,
        )
        restamped.repeated = True
        return restamped


def _cancelled(message: Any) -> int:
    return sum(
        1
        for e in message.entity
        if _has(e, "trip_update") and e.trip_update.trip.schedule_relationship == _TRIP.CANCELED
    )


def _kind_of(data: bytes, name: str) -> Kind:
    """A recorded snapshot's kind from its entities; an empty or unreadable one by its name."""
    message = rt.FeedMessage()
    try:
        message.ParseFromString(data)
    except DecodeError:
        message.Clear()
    if any(_has(e, "trip_update") for e in message.entity):
        return "trip_updates"
    if any(_has(e, "vehicle") for e in message.entity):
        return "vehicle_positions"
    return "vehicle_positions" if "vehicle" in name.lower() else "trip_updates"
