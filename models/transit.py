"""What the transit pipeline produces: stop calls; GTFS route types as modes; GTFS midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from byflyt.models.base import KommuneNr, Mode, SourceName, TransitId, UtcDatetime, WireModel

CallStatus = Literal["served", "cancelled", "skipped"]

# Extended (Hierarchical Vehicle Type) route types, as Entur publishes them: inclusive ranges.
# Air covers 1100–1114 (the HVT air sub-types), not only 1100, so a feed that sends a sub-type
# is still counted as air rather than as "other".
_EXTENDED_RANGES: tuple[tuple[int, int, Mode], ...] = (
    (100, 117, "rail"),
    (200, 209, "coach"),
    (400, 405, "metro"),
    (700, 716, "bus"),
    (800, 800, "bus"),
    (900, 906, "tram"),
    (1000, 1021, "ferry"),
    (1100, 1114, "air"),
    (1200, 1200, "ferry"),
    (1300, 1307, "other"),
    (1400, 1400, "other"),
    (1500, 1507, "taxi"),
)

_BASIC: dict[int, Mode] = {
    0: "tram",
    1: "metro",
    2: "rail",
    3: "bus",
    4: "ferry",
    5: "tram",  # cable tram
    6: "other",  # aerial lift, gondola
    7: "other",  # funicular
    11: "bus",  # trolleybus
    12: "rail",  # monorail
}


def gtfs_midnight(service_date: date, tz: ZoneInfo) -> datetime:
    """The instant a service day's GTFS times count from: local noon minus 12 hours, in UTC.

    The GTFS reference measures stop times "from noon minus 12h" of the service day in the
    agency timezone. That is local midnight except on daylight-saving change days; in
    Europe/Oslo on the 23-hour day (2025-03-30) it is 23:00 the evening before, on the 25-hour
    day (2025-10-26) 01:00 CEST, i.e. 2025-10-25T23:00Z. The 12 hours are elapsed time, so the
    subtraction is done in UTC (aware datetimes with the same tzinfo subtract wall-clock time).
    """
    noon = datetime.combine(service_date, time(12), tzinfo=tz)
    return noon.astimezone(UTC) - timedelta(hours=12)


def mode_for_route_type(route_type: int) -> Mode:
    """The byflyt mode of a GTFS ``route_type``, basic (0–12) or extended (100–1507).

    Entur uses the extended types (700 bus, 701 regional bus, 106 regional rail, 714 rail
    replacement bus, 1000 water transport …). Anything not listed maps to ``"other"``.
    """
    basic = _BASIC.get(route_type)
    if basic is not None:
        return basic
    for low, high, mode in _EXTENDED_RANGES:
        if low <= route_type <= high:
            return mode
    return "other"


class StopCall(WireModel):
    """One call of a trip at a stop on a service date: scheduled, and what happened if known.

    A call is identified by ``feed:service_date:trip_id:stop_sequence`` (see :attr:`key`), so
    however many polls repeat it, it counts once.
    """

    feed: SourceName
    service_date: date
    trip_id: TransitId
    route_id: TransitId
    mode: Mode
    stop_id: TransitId
    stop_sequence: int = Field(ge=0)
    kommune_nr: KommuneNr | None = None
    scheduled: UtcDatetime
    actual: UtcDatetime | None = None
    delay_seconds: int | None = None
    status: CallStatus = "served"
    vehicle_id: str | None = None
    occupancy: str | None = None

    @property
    def key(self) -> str:
        """The call's identity: ``feed:service_date:trip_id:stop_sequence``."""
        return f"{self.feed}:{self.service_date.isoformat()}:{self.trip_id}:{self.stop_sequence}"


CallRealtime = Literal["scheduled", "skipped", "no_data"]
TripStatus = Literal["scheduled", "added", "cancelled", "vanished"]


class CallState(WireModel):
    """One scheduled call of a trip as the latest snapshot tells it.

    ``scheduled`` is the departure (the arrival at the trip's last stop). ``delay_seconds`` is
    the delay that applies to this call (given for it, or propagated from the previous update
    along the trip, GTFS-realtime semantics); None when the feed says nothing that reaches this
    call. ``actual`` is the feed's absolute time when it gives one, else scheduled + delay, else
    None. ``realtime`` is ``skipped`` for a SKIPPED stop, ``no_data`` for NO_DATA.
    """

    stop_sequence: int = Field(ge=0)
    stop_id: TransitId
    kommune_nr: KommuneNr | None = None
    scheduled: UtcDatetime
    delay_seconds: int | None = None
    actual: UtcDatetime | None = None
    realtime: CallRealtime = "scheduled"


class TripState(WireModel):
    """A trip of one service date as one accepted GTFS-realtime snapshot describes it.

    The connector resolves each TripUpdate against the static feed and sends the whole trip,
    every scheduled call in order (stops outside the region too), to ``transit.trip-updates``
    keyed by :attr:`key`. ``snapshot_at`` is the feed header's timestamp. A trip that was in the
    previous snapshot and is missing from this one is sent once with status ``vanished``
    (FULL_DATASET: the feed no longer tells anything about it) and its last known calls.
    """

    feed: SourceName
    snapshot_at: UtcDatetime
    service_date: date
    trip_id: TransitId
    route_id: TransitId
    mode: Mode
    status: TripStatus = "scheduled"
    vehicle_id: str | None = None
    occupancy: str | None = None
    calls: list[CallState] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """The trip's identity: ``feed:service_date:trip_id``."""
        return f"{self.feed}:{self.service_date.isoformat()}:{self.trip_id}"

    def to_bytes(self) -> bytes:
        """The record as produced: version 2 of ``models/codec_trips``."""
        from byflyt.models import codec_trips

        return codec_trips.encode(self)

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        """A record of either wire version (``models/codec_trips``), validated."""
        from byflyt.models import codec_trips

        if isinstance(raw, bytes) and raw and codec_trips.is_v2(raw):
            return cls.model_validate(codec_trips.to_state(codec_trips.decode(raw)).model_dump())
        return cls.model_validate_json(raw)


class VehicleSeen(WireModel):
    """One VehiclePosition of an accepted snapshot, placed in a kommune (None: outside all)."""

    feed: SourceName
    snapshot_at: UtcDatetime
    seen_at: UtcDatetime
    vehicle_id: TransitId
    trip_id: str | None = None
    mode: Mode = "other"
    kommune_nr: KommuneNr | None = None
    occupancy: str | None = None

    @property
    def key(self) -> str:
        """``feed:vehicle_id``."""
        return f"{self.feed}:{self.vehicle_id}"


class FlowHour(WireModel):
    """Vehicle trips that crossed from one kommune to another in one UTC hour, by mode.

    These are vehicle trips, not passengers: the open feeds publish no passenger counts.
    ``occupancy`` lists the occupancy levels the feed reported for those trips, if any.
    """

    from_kommune: KommuneNr
    to_kommune: KommuneNr
    mode: Mode
    hour_start: UtcDatetime
    trips: int = Field(ge=0)
    occupancy: str | None = None

    @property
    def key(self) -> str:
        """``from|to|mode|hour``."""
        return f"{self.from_kommune}|{self.to_kommune}|{self.mode}|{self.hour_start.isoformat()}"


FactKind = Literal["call", "reported", "out", "in", "vehicle"]


class TransitFact(WireModel):
    """One fact about a kommune-hour, repartitioned by kommune for the hourly aggregation.

    ``call``: a final stop call (``id`` = call key) at the hour of its actual time (scheduled
    for cancelled or skipped calls); ``reported``: a scheduled call whose trip the feed reported
    on, at the hour of its scheduled time (coverage); ``out``/``in``: a trip crossing to or from
    ``other_kommune`` (``id`` = crossing key); ``vehicle``: a vehicle seen (``id`` = vehicle id).
    Every fact has an identity, so a repeated fact replaces itself instead of counting twice.
    """

    kind: FactKind
    feed: SourceName
    kommune_nr: KommuneNr
    mode: Mode
    hour_start: UtcDatetime
    id: str = Field(min_length=1, max_length=600)
    trip_id: str | None = None
    status: CallStatus | None = None
    delay_seconds: int | None = None
    other_kommune: KommuneNr | None = None
    occupancy: str | None = None

    @model_validator(mode="after")
    def _a_call_has_a_status(self) -> Self:
        if self.kind == "call" and self.status is None:
            raise ValueError("a call fact needs its status: served, cancelled or skipped")
        return self
