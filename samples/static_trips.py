"""The synthetic static feed's trips on one date, read straight from its zip's CSV files.

The real-time samples (:mod:`~byflyt.samples.gtfs_rt`, :mod:`~byflyt.samples.siri`,
:mod:`~byflyt.samples.national`) build their snapshots and answers from these trips; reading
the zip without byflyt's own loader keeps the samples independent of the code they test.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from byflyt.models.transit import gtfs_midnight
from byflyt.samples.gtfs import EXPECTED_KOMMUNE


@dataclass(frozen=True)
class StaticCall:
    """A call of a static trip: its scheduled time (aware) and where the stop is."""

    sequence: int
    stop_id: str
    scheduled: datetime
    lat: float
    lon: float
    kommune_nr: str | None


@dataclass(frozen=True)
class StaticTrip:
    """A trip of the synthetic static feed on one service date, its calls in order."""

    trip_id: str
    route_id: str
    service_date: date
    calls: tuple[StaticCall, ...]


def read_static_trips(path: Path, service_date: date) -> list[StaticTrip]:
    """The trips running on ``service_date``, read straight from the zip's CSV files."""
    with zipfile.ZipFile(path) as archive:

        def rows(name: str) -> list[dict[str, str]]:
            text = archive.read(name).decode("utf-8-sig")
            return list(csv.DictReader(io.StringIO(text)))

        timezone = ZoneInfo(rows("agency.txt")[0]["agency_timezone"])
        stops = {r["stop_id"]: r for r in rows("stops.txt")}
        running = {
            r["service_id"]
            for r in rows("calendar_dates.txt")
            if r["exception_type"] == "1" and r["date"] == service_date.strftime("%Y%m%d")
        }
        trips = {r["trip_id"]: r for r in rows("trips.txt") if r["service_id"] in running}
        times = [r for r in rows("stop_times.txt") if r["trip_id"] in trips]
    midnight = gtfs_midnight(service_date, timezone)

    def coords(stop_id: str) -> tuple[float, float]:
        stop = stops[stop_id]
        if not stop["stop_lat"]:
            stop = stops[stop["parent_station"]]
        lat, lon = float(stop["stop_lat"]), float(stop["stop_lon"])
        # A stop with latitude and longitude swapped (Hunndalen): the vehicle's GPS is right.
        return (lon, lat) if not 57 < lat < 72 else (lat, lon)

    out: list[StaticTrip] = []
    for trip_id, trip in trips.items():
        mine = sorted((r for r in times if r["trip_id"] == trip_id), key=_sequence)
        calls = []
        for position, row in enumerate(mine):
            clock = row["arrival_time" if position == len(mine) - 1 else "departure_time"]
            hours, minutes, seconds = (int(p) for p in clock.split(":"))
            lat, lon = coords(row["stop_id"])
            calls.append(
                StaticCall(
                    sequence=int(row["stop_sequence"]),
                    stop_id=row["stop_id"],
                    scheduled=midnight + timedelta(hours=hours, minutes=minutes, seconds=seconds),
                    lat=lat,
                    lon=lon,
                    kommune_nr=EXPECTED_KOMMUNE.get(row["stop_id"]),
                )
            )
        out.append(StaticTrip(trip_id, trip["route_id"], service_date, tuple(calls)))
    return sorted(out, key=lambda t: (t.calls[0].scheduled, t.trip_id))


def _sequence(row: dict[str, str]) -> int:
    return int(row["stop_sequence"])
