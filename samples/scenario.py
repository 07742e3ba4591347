"""The ground truth of the synthetic real-time scenario: what the generator decided, per trip.

:func:`byflyt.samples.gtfs_rt.write_synthetic_snapshots` returns a :class:`Scenario`; the SIRI
samples (:mod:`byflyt.samples.siri`) tell the same journeys from it, and the tests compare what
the pipeline derived with it. Only records live here; the generator is in
:mod:`byflyt.samples.gtfs_rt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

CallStatus = Literal["served", "cancelled", "skipped", "open"]
"""How a call ended in the scenario (``open``: it never became final in the snapshots)."""


@dataclass(frozen=True)
class CallTruth:
    """A call as the generator decided it; ``open`` calls never become final in the snapshots.

    ``delay_seconds`` is the last delay published for the call (its own or propagated), None
    when no update ever reached it. ``final_at`` is the feed time of the snapshot that made it
    final (its actual time passed, the trip was cancelled, the stop skipped or the trip gone).
    """

    stop_sequence: int
    stop_id: str
    kommune_nr: str | None
    scheduled: datetime
    status: CallStatus
    delay_seconds: int | None
    final_at: datetime | None


@dataclass(frozen=True)
class TripTruth:
    """One trip of one service date as the snapshots tell it."""

    trip_id: str
    service_date: date
    route_id: str
    status: Literal["served", "cancelled"]
    calls: tuple[CallTruth, ...]
    skipped_stop_id: str | None
    first_seen: datetime
    vanished_at: datetime | None
    stop_sequence_offset: int


@dataclass(frozen=True)
class VehicleTruth:
    """One VehiclePosition entity: where the generator put it and in which kommune."""

    snapshot_at: datetime
    seen_at: datetime
    vehicle_id: str | None
    trip_id: str
    lat: float
    lon: float
    kommune_nr: str | None
    occupancy: str | None


@dataclass(frozen=True)
class Scenario:
    """The ground truth of one run of :func:`write_synthetic_snapshots`."""

    service_date: date
    snapshot_times: tuple[datetime, ...]
    files: tuple[str, ...]
    trips: dict[tuple[str, date], TripTruth]
    roles: dict[str, str]
    repeated_files: tuple[str, ...]
    malformed_file: str
    vehicles: tuple[VehicleTruth, ...]

    def vehicle_kommune(self, snapshot_at: datetime, vehicle_id: str) -> str | None:
        """The kommune the generator placed ``vehicle_id`` in at ``snapshot_at``."""
        for seen in self.vehicles:
            if seen.snapshot_at == snapshot_at and seen.vehicle_id == vehicle_id:
                return seen.kommune_nr
        raise KeyError((snapshot_at, vehicle_id))
