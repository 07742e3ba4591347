"""Synthetic GTFS-realtime snapshots of the synthetic static feed (:mod:`byflyt.samples.gtfs`).

SYNTHETIC DATA (see :data:`SYNTHETIC_NOTICE`): made-up delays, cancellations and vehicles for a
made-up network, in Entur's GTFS-realtime shape. :func:`write_synthetic_snapshots` writes one
TripUpdates and one VehiclePositions FeedMessage per minute of feed time (FULL_DATASET,
``gtfs_realtime_version`` 2.0, header timestamp = the snapshot's feed time) as
``NNNN-trip-updates.pb`` / ``NNNN-vehicle-positions.pb``, so name order is time order.

Entur's shape: a TripDescriptor carries ``trip_id``, ``start_date`` (YYYYMMDD) and ``route_id``;
StopTimeUpdates carry delays only (``arrival.delay``/``departure.delay``, never absolute
times), the quay as ``stop_id`` and a ``stop_sequence`` of their own: for the 150 bus it counts
from 1 where the static feed counts from 0, so updates must be matched by ``stop_id``.

A snapshot holds every trip that has started or starts within 30 minutes and has not finished,
with updates for the calls not yet passed and the one just passed. Delays evolve: a call's
prediction drifts from a first guess to the delay it will have in its last 5 minutes. On
2025-10-27 (the only date the scenario is made for) the window is 06:58Z–07:59Z and the roles
(:attr:`Scenario.roles`) are:

- ``late`` / ``vanishing`` / ``skipped``: ``bus_150_morning`` (line 150, stop_sequence from 1)
  arrives in Lillehammer more than 180 s late, skips Moelv (SKIPPED) and leaves the feed in the
  first snapshot after its arrival time, so its last call is never shown as passed;
- ``early`` / ``crossing``: ``crossing`` (Gjøvik → Jaren, Gran 3446, outside Mjøsbyen) leaves
  Gjøvik < 60 s early; Hunndalen never gets an update of its own (its delay is propagated);
- ``cancelled``: ``rail_replacement`` is first scheduled, then CANCELED before it starts.

Files with a role: one snapshot pair is written twice (same bytes, consecutive names,
:attr:`Scenario.repeated_files`) and one trip-updates file is not a FeedMessage at all
(:attr:`Scenario.malformed_file`). VehiclePositions place the running vehicles along their trips
near a stop with a kommune (at most :data:`NEAR_STOP` of the way to the next one, so the
kommune recorded in :attr:`Scenario.vehicles` is the one the point lies in); the 150 bus
reports occupancy, and one crossing position has no vehicle id. What the generator decided is
returned as a :class:`~byflyt.samples.scenario.Scenario` (the records live in that module).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.transit import gtfs_realtime_pb2

from byflyt.samples.gtfs import SYNTHETIC_TRIPS, given_or_synthetic
from byflyt.samples.scenario import CallStatus, CallTruth, Scenario, TripTruth, VehicleTruth
from byflyt.samples.static_trips import StaticCall, StaticTrip, read_static_trips

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: made-up GTFS-realtime snapshots of a made-up "
    "Innlandstrafikk network in Entur's shape, not real-time data from Innlandstrafikk or Entur."
)
SCENARIO_DATE = date(2025, 10, 27)
WINDOW_START = datetime(2025, 10, 27, 6, 58, tzinfo=UTC)
SNAPSHOTS = 62
STEP = timedelta(seconds=60)
LOOKAHEAD = timedelta(minutes=30)
NEAR_STOP = 0.15
"""How far along a segment (fraction) a vehicle is placed at most from its nearer placed stop."""

_REPEATED_AFTER = 20  # snapshot index written twice
_MALFORMED_AFTER = 40  # a broken trip-updates file follows this snapshot
_MALFORMED_BYTES = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"

_TU = gtfs_realtime_pb2.TripUpdate
_TD = gtfs_realtime_pb2.TripDescriptor
_VP = gtfs_realtime_pb2.VehiclePosition


@dataclass
class _Plan:
    """What the generator does with one trip: per call a target delay, None = no own update."""

    targets: list[int | None]
    first_guess: list[int]
    skipped: frozenset[int] = frozenset()
    linger: int = 60
    sequence_offset: int = 0
    vehicle_id: str | None = None
    occupancy: tuple[str, str] | None = None
    cancel_from: datetime | None = None
    anonymous_at: int | None = None


@dataclass
class _State:
    seen: bool = False
    finished: bool = False
    vanished_at: datetime | None = None
    first_seen: datetime | None = None
    passed: dict[int, int] = field(default_factory=dict)
    final: dict[int, tuple[CallStatus, int | None, datetime]] = field(default_factory=dict)
    known: dict[int, int | None] = field(default_factory=dict)
    cancelled_at: datetime | None = None


def write_synthetic_snapshots(
    directory: Path,
    *,
    static_zip: Path | None = None,
    service_date: date = SCENARIO_DATE,
    seed: int = 7,
) -> Scenario:
    """Write the snapshot files to ``directory`` and return what they mean.

    ``static_zip`` is the synthetic static feed the snapshots refer to (written with its default
    seed when not given). The same arguments give the same bytes.
    """
    if service_date != SCENARIO_DATE:
        raise ValueError(f"the synthetic realtime scenario is made for {SCENARIO_DATE} only")
    with given_or_synthetic(static_zip) as path:
        trips = read_static_trips(path, service_date)
    rng = random.Random(seed)
    times = [WINDOW_START + STEP * k for k in range(SNAPSHOTS)]
    roles = {
        "late": SYNTHETIC_TRIPS["bus_150_morning"],
        "vanishing": SYNTHETIC_TRIPS["bus_150_morning"],
        "skipped": SYNTHETIC_TRIPS["bus_150_morning"],
        "early": SYNTHETIC_TRIPS["crossing"],
        "crossing": SYNTHETIC_TRIPS["crossing"],
        "cancelled": SYNTHETIC_TRIPS["rail_replacement"],
    }
    visible = [t for t in trips if _visible(t, times)]
    plans = {t.trip_id: _plan(t, rng, roles) for t in visible}
    states = {t.trip_id: _State() for t in visible}
    directory.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    vehicles: list[VehicleTruth] = []
    slot = 0
    repeated: list[str] = []
    malformed = ""
    for index, now in enumerate(times):
        updates = _message(now)
        positions = _message(now)
        for trip in visible:
            _snapshot_trip(trip, plans[trip.trip_id], states[trip.trip_id], now, updates)
            seen = _vehicle(trip, plans[trip.trip_id], states[trip.trip_id], now, index, rng)
            if seen is not None:
                _add_vehicle(positions, trip, seen)
                vehicles.append(seen)
        blobs = (
            updates.SerializeToString(deterministic=True),
            positions.SerializeToString(deterministic=True),
        )
        for _ in range(2 if index == _REPEATED_AFTER else 1):
            slot += 1
            pair = _write_pair(directory, slot, blobs)
            files += pair
            if index == _REPEATED_AFTER:
                repeated += pair
        if index == _MALFORMED_AFTER:
            slot += 1
            malformed = f"{slot:04d}-trip-updates.pb"
            (directory / malformed).write_bytes(_MALFORMED_BYTES)
            files.append(malformed)
    return Scenario(
        service_date=service_date,
        snapshot_times=tuple(times),
        files=tuple(files),
        trips={
            (t.trip_id, t.service_date): _truth(t, plans[t.trip_id], states[t.trip_id])
            for t in visible
        },
        roles=roles,
        repeated_files=tuple(repeated),
        malformed_file=malformed,
        vehicles=tuple(vehicles),
    )


def _visible(trip: StaticTrip, times: list[datetime]) -> bool:
    # Delays in the scenario stay within a few minutes: a margin of 10 minutes is plenty.
    return trip.calls[0].scheduled - LOOKAHEAD <= times[-1] and (
        trip.calls[-1].scheduled + timedelta(minutes=10) >= times[0]
    )


def _plan(trip: StaticTrip, rng: random.Random, roles: dict[str, str]) -> _Plan:
    count = len(trip.calls)
    plan = _Plan(
        targets=[rng.randint(-30, 120) for _ in range(count)],
        first_guess=[rng.randint(-60, 120) for _ in range(count)],
    )
    if trip.trip_id == roles["late"]:
        # Hamar, Brumunddal (late but on time), Moelv skipped, Lillehammer > 180 s late.
        plan.targets = [rng.randint(30, 90), rng.randint(120, 170), None, rng.randint(200, 260)]
        plan.skipped = frozenset({2})
        plan.linger = 0
        plan.sequence_offset = 1
        plan.vehicle_id = "INN:VehicleRef:1501"
        plan.occupancy = ("MANY_SEATS_AVAILABLE", "FEW_SEATS_AVAILABLE")
    elif trip.trip_id == roles["early"]:
        # Gjøvik < 60 s early, Hunndalen without an update of its own, Raufoss, Jaren.
        plan.targets = [-rng.randint(20, 55), None, rng.randint(60, 150), rng.randint(20, 100)]
        plan.linger = 120
        plan.vehicle_id = "INN:VehicleRef:1302"
        plan.anonymous_at = 12
    elif trip.trip_id == roles["cancelled"]:
        plan.targets = [0] * count
        plan.first_guess = [0] * count
        plan.cancel_from = trip.calls[0].scheduled - timedelta(minutes=22)
    else:
        plan.vehicle_id = f"INN:VehicleRef:{9000 + rng.randint(0, 999)}"
    return plan


def _predicted(plan: _Plan, index: int, call: StaticCall, now: datetime) -> int:
    """The delay published for an own-updated call at ``now``: drifts to its target."""
    target = plan.targets[index]
    assert target is not None
    lead = (call.scheduled - timedelta(minutes=5) - now).total_seconds()
    weight = min(max(lead / 1200, 0.0), 1.0)
    return target + round((plan.first_guess[index] - target) * weight)


def _ancestor(plan: _Plan, index: int) -> int:
    """The nearest call at or before ``index`` with an update of its own."""
    while index > 0 and (plan.targets[index] is None or index in plan.skipped):
        index -= 1
    return index


def _snapshot_trip(trip: StaticTrip, plan: _Plan, state: _State, now: datetime, feed: Any) -> None:
    """Add the trip to the trip-updates message (or not) and record what that makes final."""
    calls = trip.calls
    if state.finished or now < calls[0].scheduled - LOOKAHEAD:
        return
    if plan.cancel_from is not None and now >= plan.cancel_from:
        if now > calls[-1].scheduled:
            state.finished, state.vanished_at = True, now
            return
        entity = _trip_entity(feed, trip, now)
        entity.trip_update.trip.schedule_relationship = _TD.CANCELED
        state.first_seen = state.first_seen or now
        state.seen = True
        for i in range(len(calls)):
            state.final.setdefault(i, ("cancelled", None, now))
        state.cancelled_at = state.cancelled_at or now
        return
    delays: dict[int, int] = {}
    for i, call in enumerate(calls):
        if i in plan.skipped:
            continue
        if plan.targets[i] is None:
            delays[i] = delays[_ancestor(plan, i)]
        else:
            delays[i] = state.passed.get(i, _predicted(plan, i, call, now))
    last = len(calls) - 1
    if now > calls[last].scheduled + timedelta(seconds=delays[last] + plan.linger):
        if state.seen:
            state.finished, state.vanished_at = True, now
            # Every vanishing is after the last call's time (linger ≥ 0): remaining calls served.
            for i in range(len(calls)):
                state.final.setdefault(i, ("served", state.known.get(i), now))
        return
    newly = [
        i
        for i, call in enumerate(calls)
        if i not in plan.skipped
        and i not in state.passed
        and call.scheduled + timedelta(seconds=delays[i]) < now
    ]
    last_passed = max(state.passed, default=None)
    if not state.seen:
        start = _ancestor(plan, max(newly)) if newly else 0
        reported = [i for i in newly if i >= start]
    else:
        anchors = [_ancestor(plan, i) for i in newly]
        if last_passed is not None:
            anchors.append(_ancestor(plan, last_passed))
        start = min(anchors, default=0)
        reported = newly
    state.passed.update((i, delays[i]) for i in newly)
    entity = _trip_entity(feed, trip, now)
    for i in range(start, len(calls)):
        if i in plan.skipped:
            stu = entity.trip_update.stop_time_update.add()
            stu.stop_sequence = calls[i].sequence + plan.sequence_offset
            stu.stop_id = calls[i].stop_id
            stu.schedule_relationship = _TU.StopTimeUpdate.SKIPPED
            state.final.setdefault(i, ("skipped", None, now))
            continue
        state.known[i] = delays[i]
        if plan.targets[i] is None:
            continue
        stu = entity.trip_update.stop_time_update.add()
        stu.stop_sequence = calls[i].sequence + plan.sequence_offset
        stu.stop_id = calls[i].stop_id
        if i > 0:
            # Arrival 30 s later than departure at intermediate stops: the dwell is cut short.
            stu.arrival.delay = delays[i] + (30 if i < last else 0)
        if i < last:
            stu.departure.delay = delays[i]
    for i in reported:
        state.final.setdefault(i, ("served", delays[i], now))
    state.first_seen = state.first_seen or now
    state.seen = True


def _message(now: datetime) -> Any:
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    feed.header.timestamp = int(now.timestamp())
    return feed


def _trip_entity(feed: Any, trip: StaticTrip, now: datetime) -> Any:
    entity = feed.entity.add()
    entity.id = f"{trip.trip_id}:{trip.service_date:%Y%m%d}"
    _describe(entity.trip_update.trip, trip)
    entity.trip_update.timestamp = int(now.timestamp())
    return entity


def _describe(descriptor: Any, trip: StaticTrip) -> None:
    descriptor.trip_id = trip.trip_id
    descriptor.start_date = trip.service_date.strftime("%Y%m%d")
    descriptor.route_id = trip.route_id


def on_the_road(
    times: Sequence[datetime], kommuner: Sequence[str | None], now: datetime
) -> tuple[int, int, int, float] | None:
    """Where a vehicle due at its stops at ``times`` is at ``now``; None: not on the road.

    On the road from 3 minutes before the first call to the last. ``(segment, near, far,
    fraction)``: the leg it is on (stop ``segment`` to the next), the leg's stop it is nearer
    (the other one where that stop's kommune, in ``kommuner``, is None: then it is at that
    other one, fraction 0) and how far from ``near`` toward ``far`` it is (at most a half).
    """
    if now < times[0] - timedelta(minutes=3) or now > times[-1]:
        return None
    segment = min(max((i for i, t in enumerate(times) if t <= now), default=0), len(times) - 2)
    span = (times[segment + 1] - times[segment]).total_seconds()
    fraction = min(max((now - times[segment]).total_seconds() / span, 0.0), 1.0)
    near, far = segment, segment + 1
    if fraction > 0.5:
        near, far, fraction = far, near, 1 - fraction
    if kommuner[near] is None:
        near, far, fraction = far, near, 0.0
    return segment, near, far, fraction


def _vehicle(
    trip: StaticTrip, plan: _Plan, state: _State, now: datetime, index: int, rng: random.Random
) -> VehicleTruth | None:
    """Where the trip's vehicle is at ``now`` (None: not on the road, cancelled or unplanned)."""
    if plan.vehicle_id is None or not state.seen or state.finished:
        return None
    times = []
    for i, call in enumerate(trip.calls):
        delay = state.known.get(_ancestor(plan, i))
        times.append(call.scheduled + timedelta(seconds=delay or 0))
    where = on_the_road(times, [call.kommune_nr for call in trip.calls], now)
    if where is None:
        return None
    _, near, far, fraction = where
    fraction = min(fraction, NEAR_STOP)
    a, b = trip.calls[near], trip.calls[far]
    lat = round(a.lat + (b.lat - a.lat) * fraction, 5)
    lon = round(a.lon + (b.lon - a.lon) * fraction, 5)
    occupancy = None
    if plan.occupancy is not None:
        # Seats fill up from the middle of the trip on.
        middle = trip.calls[len(trip.calls) // 2].scheduled
        occupancy = plan.occupancy[0 if now < middle else 1]
    lag = timedelta(seconds=rng.randint(5, 25))
    return VehicleTruth(
        snapshot_at=now,
        seen_at=now - lag,
        vehicle_id=None if index == plan.anonymous_at else plan.vehicle_id,
        trip_id=trip.trip_id,
        lat=lat,
        lon=lon,
        kommune_nr=a.kommune_nr,
        occupancy=occupancy,
    )


def _add_vehicle(feed: Any, trip: StaticTrip, seen: VehicleTruth) -> None:
    entity = feed.entity.add()
    entity.id = f"vehicle:{seen.vehicle_id or trip.trip_id}"
    vehicle = entity.vehicle
    _describe(vehicle.trip, trip)
    if seen.vehicle_id is not None:
        vehicle.vehicle.id = seen.vehicle_id
    else:
        vehicle.vehicle.label = "130"
    vehicle.position.latitude = seen.lat
    vehicle.position.longitude = seen.lon
    vehicle.timestamp = int(seen.seen_at.timestamp())
    if seen.occupancy is not None:
        vehicle.occupancy_status = _VP.OccupancyStatus.Value(seen.occupancy)


def _write_pair(directory: Path, slot: int, blobs: tuple[bytes, ...]) -> list[str]:
    names = [f"{slot:04d}-trip-updates.pb", f"{slot:04d}-vehicle-positions.pb"]
    for name, blob in zip(names, blobs, strict=True):
        (directory / name).write_bytes(blob)
    return names


def _truth(trip: StaticTrip, plan: _Plan, state: _State) -> TripTruth:
    calls = []
    for i, call in enumerate(trip.calls):
        status: CallStatus = "open"
        delay, final_at = state.known.get(i), None
        if i in state.final:
            status, delay, final_at = state.final[i]
        calls.append(
            CallTruth(
                stop_sequence=call.sequence,
                stop_id=call.stop_id,
                kommune_nr=call.kommune_nr,
                scheduled=call.scheduled,
                status=status,
                delay_seconds=delay,
                final_at=final_at,
            )
        )
    skipped = [trip.calls[i].stop_id for i in plan.skipped]
    assert state.first_seen is not None
    return TripTruth(
        trip_id=trip.trip_id,
        service_date=trip.service_date,
        route_id=trip.route_id,
        status="cancelled" if state.cancelled_at is not None else "served",
        calls=tuple(calls),
        skipped_stop_id=skipped[0] if skipped else None,
        first_seen=state.first_seen,
        vanished_at=state.vanished_at,
        stop_sequence_offset=plan.sequence_offset,
    )
