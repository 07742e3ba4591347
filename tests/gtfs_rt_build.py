"""Small builders of GTFS-realtime protobuf messages in Entur's shape, for connector tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.transit import gtfs_realtime_pb2 as rt

from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS

STU = rt.TripUpdate.StopTimeUpdate

T, S = SYNTHETIC_TRIPS, SYNTHETIC_STOPS
RAIL = T["rail_morning"]
"""Monday 2025-10-27 (UTC+1): Lillehammer 05:10Z, Moelv 05:35Z, Brumunddal 05:45Z, Hamar 05:58Z,
Stange 06:05Z (sequence 0-4)."""
AT = datetime(2025, 10, 27, 5, 30, tzinfo=UTC)
"""The moment the connector tests' snapshots are taken (the rail trip is under way)."""


def stu(
    stop_id: str | None = None,
    sequence: int | None = None,
    *,
    delay: int | None = None,
    arrival_delay: int | None = None,
    arrival: datetime | None = None,
    departure: datetime | None = None,
    relation: str = "SCHEDULED",
) -> Any:
    """One StopTimeUpdate (Entur sends ``delay`` on both arrival and departure)."""
    update = STU()
    if stop_id is not None:
        update.stop_id = stop_id
    if sequence is not None:
        update.stop_sequence = sequence
    if delay is not None:
        update.arrival.delay = delay if arrival_delay is None else arrival_delay
        update.departure.delay = delay
    elif arrival_delay is not None:
        update.arrival.delay = arrival_delay
    if arrival is not None:
        update.arrival.time = int(arrival.timestamp())
    if departure is not None:
        update.departure.time = int(departure.timestamp())
    if relation != "SCHEDULED":
        update.schedule_relationship = STU.ScheduleRelationship.Value(relation)
    return update


def trip_update(
    trip_id: str,
    updates: Sequence[Any] = (),
    *,
    entity_id: str | None = None,
    start_date: str | None = None,
    route_id: str | None = None,
    relation: str | None = None,
    delay: int | None = None,
    vehicle_id: str | None = "bus-1",
    timestamp: datetime | None = None,
) -> Any:
    """A FeedEntity with a TripUpdate."""
    entity = rt.FeedEntity(id=entity_id or trip_id)
    update = entity.trip_update
    update.trip.trip_id = trip_id
    if start_date is not None:
        update.trip.start_date = start_date
    if route_id is not None:
        update.trip.route_id = route_id
    if relation is not None:
        update.trip.schedule_relationship = rt.TripDescriptor.ScheduleRelationship.Value(relation)
    if delay is not None:
        update.delay = delay
    if vehicle_id is not None:
        update.vehicle.id = vehicle_id
    if timestamp is not None:
        update.timestamp = int(timestamp.timestamp())
    update.stop_time_update.extend(updates)
    return entity


def vehicle(
    entity_id: str,
    *,
    vehicle_id: str | None = None,
    trip_id: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    occupancy: str | None = None,
    timestamp: datetime | None = None,
) -> Any:
    """A FeedEntity with a VehiclePosition."""
    entity = rt.FeedEntity(id=entity_id)
    position = entity.vehicle
    if vehicle_id is not None:
        position.vehicle.id = vehicle_id
    if trip_id is not None:
        position.trip.trip_id = trip_id
    if lat is not None and lon is not None:
        position.position.latitude = lat
        position.position.longitude = lon
    if occupancy is not None:
        position.occupancy_status = rt.VehiclePosition.OccupancyStatus.Value(occupancy)
    if timestamp is not None:
        position.timestamp = int(timestamp.timestamp())
    return entity


def feed(at: datetime | None, *entities: Any, full: bool = True) -> bytes:
    """A serialized FeedMessage taken ``at`` (None: a header without a timestamp)."""
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    if not full:
        message.header.incrementality = rt.FeedHeader.DIFFERENTIAL
    if at is not None:
        message.header.timestamp = int(at.timestamp())
    message.entity.extend(entities)
    return message.SerializePartialToString()


def headless(*entities: Any) -> bytes:
    """A FeedMessage with entities but no header at all (the header is required)."""
    message = rt.FeedMessage()
    message.entity.extend(entities)
    return message.SerializePartialToString()
