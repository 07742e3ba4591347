"""The transit rules written out a second time, independently of the pipeline, for tests.

Input: a static feed and a folder of GTFS-realtime files (``*-trip-updates.pb`` and
``*-vehicle-positions.pb``, read in name order). Rules:

1. Snapshots. A file that does not parse as a FeedMessage is skipped; so is a snapshot whose
   header timestamp is not newer than the last accepted one of its kind (trip updates and
   vehicle positions are two streams).
2. Calls. A call is (feed, service_date, trip_id, static stop_sequence); the service date is the
   TripDescriptor's start_date. Trips the static feed does not run that date are ignored. An
   update matches the static call at its stop_sequence when that call has the update's stop_id,
   else the first call with that stop_id after the previous matched one (forward search).
3. Delay. A call's own update gives departure.delay, else arrival.delay; the call keeps the one
   from the latest snapshot that had it. Without one, the delay is propagated from the nearest
   previous update (with a delay) of the trip in the current snapshot; else unknown (None).
   Scheduled = static departure (arrival at the last stop); actual = scheduled + delay
   (scheduled when the delay is unknown).
4. Finality; a call counts once, when it becomes final:
   - served: in a snapshot, its delay is known and its actual time is before the header
     timestamp (with the delay of that snapshot);
   - cancelled: its trip is CANCELED (all not-yet-final calls); skipped: the update is SKIPPED;
   - a trip in the previous accepted snapshot and missing from this one (FULL_DATASET) has
     vanished: if this header is after its last call's actual time (last known delay), its
     not-yet-final calls are served with their last known delay (possibly unknown); else they
     never count.
5. Hourly rows per (kommune of the static stop, mode of the route, UTC hour of the actual time;
   scheduled time for cancelled and skipped calls); calls at stops without a kommune are left
   out. For a kommune/mode/hour with at least one final call, all of: departures (served),
   cancelled_calls (cancelled or skipped), trips (distinct trip_ids with a served call),
   delay_seconds_sum and delay_count (served calls with a known delay), on_time_calls (served,
   delay in [-60 s, +180 s)); n_sources = distinct trips with a final call there.
6. vehicles_active: distinct vehicle ids of the accepted VehiclePositions placed in a kommune, by
   the UTC hour of the position's own timestamp (the header's when it has none) and the mode of
   its trip's route ("other" without one); entities without a vehicle id are left out; the
   kommune is the one the generator recorded (:meth:`Scenario.vehicle_kommune`), not a second
   point-in-polygon computation. n_sources = the number of vehicles.
7. Flows. Walking a trip's served calls placed in a kommune by stop_sequence (a stop placed in
   no kommune is passed over), two consecutive ones in different kommuner A and B are a
   crossing A → B at the actual departure from the call in A. Per mode and UTC hour:
   ``trips_out`` of A and ``trips_in`` of B (count of crossings, n_sources = distinct trips;
   rows only where ≥ 1) and flow rows (from, to, mode, hour, trips).
8. Coverage of every row of a kommune/mode/hour: 100 × (static calls there by scheduled hour,
   over all the static feed's service dates, whose (trip_id, service_date) appeared in an
   accepted trip-updates snapshot) / (all such static calls), 2 decimals; 100 when there are none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2

from byflyt.models.gtfs import StaticFeed
from byflyt.samples.scenario import Scenario

Row = tuple[str, str, str, datetime, float, float, int]
FlowRow = tuple[str, str, str, datetime, int]
CallKey = tuple[date, str, int]  # service_date, trip_id, static stop_sequence

_CANCELED = gtfs_realtime_pb2.TripDescriptor.CANCELED
_SKIPPED = gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.SKIPPED
CALL_METRICS = (
    "departures",
    "cancelled_calls",
    "trips",
    "delay_seconds_sum",
    "delay_count",
    "on_time_calls",
)


@dataclass(frozen=True)
class StaticCall:
    """A scheduled call from the static feed."""

    stop_sequence: int
    stop_id: str
    kommune_nr: str | None
    mode: str
    scheduled: datetime


@dataclass(frozen=True)
class FinalCall:
    """A call that became final: status, delay (None: unknown) and the instant it counts at."""

    status: str
    delay_seconds: int | None
    at: datetime
    kommune_nr: str | None
    mode: str


@dataclass(frozen=True)
class Expected:
    """Hourly rows, flow rows and the final calls they come from."""

    hourly: list[Row]
    flows: list[FlowRow]
    calls: dict[CallKey, FinalCall] = field(default_factory=dict)


@dataclass
class _Trip:
    calls: list[StaticCall]
    own: dict[int, int] = field(default_factory=dict)  # index → own delay (latest)
    last: dict[int, int | None] = field(default_factory=dict)  # index → last known delay
    final: dict[int, FinalCall] = field(default_factory=dict)


def read_feed(path: Path) -> gtfs_realtime_pb2.FeedMessage | None:
    """The FeedMessage in ``path``, or None when the bytes are not one."""
    message = gtfs_realtime_pb2.FeedMessage()
    try:
        message.ParseFromString(path.read_bytes())
    except DecodeError:
        return None
    return message


def accepted(snapshots_dir: Path, kind: str) -> list[gtfs_realtime_pb2.FeedMessage]:
    """The snapshots of ``kind`` (``trip-updates``/``vehicle-positions``) that are accepted."""
    out = []
    newest = -1
    for path in sorted(snapshots_dir.glob(f"*-{kind}.pb")):
        message = read_feed(path)
        if message is None or message.header.timestamp <= newest:
            continue
        newest = message.header.timestamp
        out.append(message)
    return out


def expected_transit(
    static: StaticFeed, snapshots_dir: Path, *, feed: str, scenario: Scenario
) -> Expected:
    """The expected hourly transit rows and flows for the snapshots in ``snapshots_dir``.

    ``feed`` names the feed (part of a call's identity; all calls here share it). ``scenario`` is
    what the generator wrote, used only to place vehicles in kommuner (rule 6).
    """
    del feed  # one feed: it does not change any key here
    trips: dict[tuple[date, str], _Trip] = {}
    reported: set[tuple[date, str]] = set()
    previous: set[tuple[date, str]] = set()
    for message in accepted(snapshots_dir, "trip-updates"):
        now = datetime.fromtimestamp(message.header.timestamp, UTC)
        present: set[tuple[date, str]] = set()
        for entity in message.entity:
            if not entity.HasField("trip_update"):
                continue
            update = entity.trip_update
            service_date = datetime.strptime(update.trip.start_date, "%Y%m%d").date()  # noqa: DTZ007
            key = (service_date, update.trip.trip_id)
            if key not in trips:
                calls = _static_calls(static, update.trip.trip_id, service_date)
                if not calls:
                    continue
                trips[key] = _Trip(calls)
            present.add(key)
            reported.add(key)
            _apply(trips[key], update, now)
        for key in previous - present:
            _vanish(trips[key], now)
        previous = present
    finals = {
        (service_date, trip_id, trip.calls[i].stop_sequence): call
        for (service_date, trip_id), trip in trips.items()
        for i, call in trip.final.items()
    }
    return _aggregate(static, finals, reported, _vehicles(static, snapshots_dir, scenario))


def _static_calls(static: StaticFeed, trip_id: str, service_date: date) -> list[StaticCall]:
    frame = static.trip_calls(trip_id, service_date)
    calls = []
    for position, row in enumerate(frame.itertuples(index=False)):
        last = position == len(frame) - 1
        instant = row.scheduled_arrival if last else row.scheduled_departure
        kommune = row.kommune_nr if isinstance(row.kommune_nr, str) else None
        calls.append(
            StaticCall(
                int(row.stop_sequence), str(row.stop_id), kommune, str(row.mode), _utc(instant)
            )
        )
    return calls


def _utc(instant: object) -> datetime:
    value = instant.to_pydatetime()  # type: ignore[attr-defined]
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _match(trip: _Trip, update: gtfs_realtime_pb2.TripUpdate) -> dict[int, object]:
    """Static call index → its StopTimeUpdate (rule 2)."""
    by_sequence = {c.stop_sequence: i for i, c in enumerate(trip.calls)}
    matched: dict[int, object] = {}
    after = -1
    for stu in update.stop_time_update:
        index = by_sequence.get(stu.stop_sequence) if stu.HasField("stop_sequence") else None
        if index is None or (stu.stop_id and trip.calls[index].stop_id != stu.stop_id):
            index = next(
                (
                    i
                    for i in range(after + 1, len(trip.calls))
                    if trip.calls[i].stop_id == stu.stop_id
                ),
                None,
            )
        if index is not None:
            matched[index] = stu
            after = index
    return matched


def _own_delay(stu: object) -> int | None:
    for kind in ("departure", "arrival"):
        if stu.HasField(kind) and getattr(stu, kind).HasField("delay"):  # type: ignore[attr-defined]
            return int(getattr(stu, kind).delay)
    return None


def _apply(trip: _Trip, update: gtfs_realtime_pb2.TripUpdate, now: datetime) -> None:
    calls = trip.calls
    if update.trip.schedule_relationship == _CANCELED:
        for i, call in enumerate(calls):
            trip.final.setdefault(
                i, FinalCall("cancelled", None, call.scheduled, call.kommune_nr, call.mode)
            )
        return
    matched = _match(trip, update)
    propagated: int | None = None
    for i, call in enumerate(calls):
        stu = matched.get(i)
        if stu is not None and stu.schedule_relationship == _SKIPPED:  # type: ignore[attr-defined]
            trip.final.setdefault(
                i, FinalCall("skipped", None, call.scheduled, call.kommune_nr, call.mode)
            )
            continue
        own = _own_delay(stu) if stu is not None else None
        if own is not None:
            trip.own[i] = own
            propagated = own
        delay = trip.own.get(i, propagated)
        trip.last[i] = delay
        if i in trip.final or delay is None:
            continue
        actual = call.scheduled + timedelta(seconds=delay)
        if actual < now:
            trip.final[i] = FinalCall("served", delay, actual, call.kommune_nr, call.mode)


def _vanish(trip: _Trip, now: datetime) -> None:
    last = trip.calls[-1]
    if now <= last.scheduled + timedelta(seconds=trip.last.get(len(trip.calls) - 1) or 0):
        return
    for i, call in enumerate(trip.calls):
        delay = trip.last.get(i)
        actual = call.scheduled + timedelta(seconds=delay or 0)
        trip.final.setdefault(i, FinalCall("served", delay, actual, call.kommune_nr, call.mode))


def _vehicles(
    static: StaticFeed, snapshots_dir: Path, scenario: Scenario
) -> dict[tuple[str, str, datetime], set[str]]:
    """(kommune, mode, hour) → vehicle ids (rule 6)."""
    route_of = dict(zip(static.trips["trip_id"], static.trips["route_id"], strict=True))
    mode_of = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
    cells: dict[tuple[str, str, datetime], set[str]] = defaultdict(set)
    for message in accepted(snapshots_dir, "vehicle-positions"):
        snapshot_at = datetime.fromtimestamp(message.header.timestamp, UTC)
        for entity in message.entity:
            vehicle = entity.vehicle
            if not entity.HasField("vehicle") or not vehicle.vehicle.id:
                continue
            kommune = scenario.vehicle_kommune(snapshot_at, vehicle.vehicle.id)
            if kommune is None:
                continue
            seen = vehicle.timestamp or message.header.timestamp
            mode = mode_of.get(route_of.get(vehicle.trip.trip_id, ""), "other")
            cells[(kommune, mode, _hour(datetime.fromtimestamp(seen, UTC)))].add(vehicle.vehicle.id)
    return cells


def _hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _aggregate(
    static: StaticFeed,
    finals: dict[CallKey, FinalCall],
    reported: set[tuple[date, str]],
    vehicles: dict[tuple[str, str, datetime], set[str]],
) -> Expected:
    Cell = tuple[str, str, datetime]
    values: dict[Cell, dict[str, float]] = defaultdict(lambda: dict.fromkeys(CALL_METRICS, 0.0))
    sources: dict[Cell, set[tuple[date, str]]] = defaultdict(set)
    served_trips: dict[Cell, set[tuple[date, str]]] = defaultdict(set)
    by_trip: dict[tuple[date, str], list[tuple[int, FinalCall]]] = defaultdict(list)
    for (service_date, trip_id, sequence), call in finals.items():
        if call.status == "served":
            by_trip[(service_date, trip_id)].append((sequence, call))
        if call.kommune_nr is None:
            continue
        cell = (call.kommune_nr, call.mode, _hour(call.at))
        metrics = values[cell]
        sources[cell].add((service_date, trip_id))
        if call.status != "served":
            metrics["cancelled_calls"] += 1
            continue
        metrics["departures"] += 1
        served_trips[cell].add((service_date, trip_id))
        metrics["trips"] = float(len({t for _, t in served_trips[cell]}))
        if call.delay_seconds is not None:
            metrics["delay_seconds_sum"] += call.delay_seconds
            metrics["delay_count"] += 1
            metrics["on_time_calls"] += -60 <= call.delay_seconds < 180
    crossings: dict[tuple[str, str, str, datetime], list[tuple[date, str]]] = defaultdict(list)
    for trip, served in by_trip.items():
        served.sort(key=lambda pair: pair[0])
        placed = [pair for pair in served if pair[1].kommune_nr]
        for (_, a), (_, b) in pairwise(placed):
            if a.kommune_nr != b.kommune_nr:
                crossings[(a.kommune_nr, b.kommune_nr, a.mode, _hour(a.at))].append(trip)
    coverage = _coverage(static, reported)
    rows: list[Row] = []
    for cell, metrics in values.items():
        kommune, mode, hour = cell
        for metric in CALL_METRICS:
            rows.append(
                (kommune, mode, metric, hour, metrics[metric], coverage(cell), len(sources[cell]))
            )
    more, flows = vehicle_and_flow_rows(vehicles, crossings, coverage)
    return Expected(sorted(rows + more), sorted(flows), finals)


def vehicle_and_flow_rows(
    vehicles: dict[tuple[str, str, datetime], set[str]],
    crossings: dict[tuple[str, str, str, datetime], list[Any]],
    coverage: Callable[[tuple[str, str, datetime]], float],
) -> tuple[list[Row], list[FlowRow]]:
    """Rules 4 and 5 (GTFS-RT and SIRI alike): the ``vehicles_active`` rows of the vehicles seen
    per cell, and the ``trips_out``/``trips_in`` rows and flows of the kommune crossings
    (``(from, to, mode, hour)`` → the trips that crossed), with ``coverage`` per cell."""
    rows: list[Row] = []
    for (kommune, mode, hour), ids in vehicles.items():
        cell = (kommune, mode, hour)
        rows.append(
            (kommune, mode, "vehicles_active", hour, float(len(ids)), coverage(cell), len(ids))
        )
    moves: dict[tuple[str, str, str, datetime], list[Any]] = defaultdict(list)
    for (source, target, mode, hour), trips in crossings.items():
        moves[(source, mode, "trips_out", hour)] += trips
        moves[(target, mode, "trips_in", hour)] += trips
    for (kommune, mode, metric, hour), trips in moves.items():
        cell = (kommune, mode, hour)
        rows.append(
            (kommune, mode, metric, hour, float(len(trips)), coverage(cell), len(set(trips)))
        )
    flows = [(a, b, mode, hour, len(trips)) for (a, b, mode, hour), trips in crossings.items()]
    return rows, flows


def _coverage(
    static: StaticFeed, reported: set[tuple[date, str]]
) -> Callable[[tuple[str, str, datetime]], float]:
    total: dict[tuple[str, str, datetime], int] = defaultdict(int)
    seen: dict[tuple[str, str, datetime], int] = defaultdict(int)
    for service_date in sorted(set(static.service_days["service_date"])):
        for trip_id in static.scheduled_calls(service_date)["trip_id"].unique():
            for call in _static_calls(static, str(trip_id), service_date):
                if call.kommune_nr is None:
                    continue
                cell = (call.kommune_nr, call.mode, _hour(call.scheduled))
                total[cell] += 1
                seen[cell] += (service_date, trip_id) in reported

    def of(cell: tuple[str, str, datetime]) -> float:
        return round(100 * seen[cell] / total[cell], 2) if total.get(cell) else 100.0

    return of
