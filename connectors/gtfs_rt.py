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

Every accepted TripUpdate becomes a :class:`~byflyt.models.transit.TripState`, the whole trip
from the static feed (:mod:`byflyt.connectors.gtfs_rt_trips`, calls resolved by
:mod:`byflyt.connectors.gtfs_rt_calls`); a trip in the previous FULL_DATASET snapshot but missing
from this one is sent once more as ``vanished``. That previous set lives in memory: after a
restart the first snapshot has none, so trips that vanished while the connector was down are
not reported. A TripUpdates snapshot is read from its bytes
(:mod:`byflyt.connectors.gtfs_rt_decode`): only the entities that changed are parsed.

The transit feeds' one runner, :class:`~byflyt.connectors.snapshots.SnapshotRunner`, runs it
(producer, dead-letter topic, checkpoints, back-off, the number of polls, feed health).
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
import pandas as pd
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors import gtfs_rt_decode as decode
from byflyt.connectors.base import Call, Discovery, PollResult, Record
from byflyt.connectors.feed_health import FeedHealthLog
from byflyt.connectors.gtfs_rt_calls import CallResolver
from byflyt.connectors.gtfs_rt_decode import instant, plausible
from byflyt.connectors.gtfs_rt_trips import TripUpdates
from byflyt.connectors.http import send
from byflyt.connectors.replay import read_replay
from byflyt.connectors.snapshots import SnapshotConnector
from byflyt.errors import ConfigError
from byflyt.metrics import Metrics, default_metrics
from byflyt.models.base import iso_z
from byflyt.models.envelope import Rejected
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import VehicleSeen
from byflyt.settings import Settings
from byflyt.topics import VEHICLES

log = logging.getLogger(__name__)

Kind = Literal["trip_updates", "vehicle_positions"]
FUTURE_TOLERANCE = timedelta(seconds=60)
DEFAULT_INTERVAL = timedelta(seconds=10)

_TRIP = rt.TripDescriptor


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


def _has(message: Any, name: str) -> bool:
    return bool(message.HasField(name))


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
        trips = static.trips
        self._trip_route = dict(zip(trips["trip_id"], trips["route_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        stops = static.stops
        resolver = CallResolver(
            static.feed,
            {
                str(s): (None if pd.isna(k) else str(k))
                for s, k in zip(stops["stop_id"], stops["kommune_nr"], strict=True)
            },
            {
                str(s): str(p)
                for s, p in zip(stops["stop_id"], stops["parent_station"], strict=True)
                if not pd.isna(p) and p
            },
        )
        self.trips = TripUpdates(
            static,
            source=self.source,
            name=self.name,
            metrics=self.metrics,
            interval=interval,
            max_calls=settings.max_calls_per_journey,
            resolver=resolver,
        )

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
        self.trips.location = item.location
        data = item.data
        if data is None:
            data = call(partial(self._fetch, item.location), f"{item.kind} {item.location}")
            if data is None:
                last_taken = datetime.fromisoformat(position) if position else None
                self._note_health(item.kind, last_taken, None)
                self._count_snapshot(item.kind, "not_modified")
                return PollResult(records=[], counts=Counter(not_modified=1))
        prints: list[tuple[int, int | None]] = []
        walked = decode.walk(data, prints) if item.kind == "trip_updates" else None
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
        if not plausible(header.timestamp):
            reason = (
                f"header timestamp {header.timestamp} is not POSIX seconds between 2000 and 2100 "
                "(milliseconds?)"
            )
            return self._reject_snapshot(item, "timestamp_out_of_range", reason, data)
        taken = instant(header.timestamp)
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
            if walked is None:
                entities = decode.Entities(message, data, None)
            else:
                entities = decode.Entities(message, data, walked[1], prints)
            full = header.incrementality == rt.FeedHeader.FULL_DATASET
            # Why no automatic collection meanwhile: a national snapshot allocates hundreds of
            # thousands of short-lived objects and no cycle; collections triggered by them cost
            # a sixth of its CPU. What is left is collected as usual afterwards.
            collecting = gc.isenabled()
            gc.disable()
            try:
                cancelled = self.trips.snapshot(entities, full, taken, records, rejected, counts)
            except decode.Unparsable:
                return self._reject_unparsable(item, data)
            finally:
                if collecting:
                    gc.enable()
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
            if stamp and not plausible(stamp):
                self._warn("timestamp_out_of_range")
                stamp = 0
            if stamp and taken - instant(stamp) > 2 * self.interval:
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
                seen_at=instant(stamp) if stamp else taken,
                vehicle_id=vehicle_id,
                trip_id=trip_id,
                mode=self._route_mode.get(route, "other"),
                kommune_nr=kommune,
                occupancy=status,
            )
            records.append(Record.of(VEHICLES, seen_vehicle))
            counts["vehicles"] += 1
        if seen:
            self.trips.occupancy = occupancy


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
