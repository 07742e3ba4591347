"""Which datasets serve a region: every operator's trips in Entur's national static feed.

Entur's national GTFS (``rb_norway-aggregated-gtfs.zip``) holds every codespace's timetable;
each id carries its codespace as a prefix (``INN:ServiceJourney:…``, ``VYG:Line:…``,
``SJN:Authority:SJN``). A region's transit is every codespace whose trips call at its stops:
Innlandstrafikk's buses (``INN``) in Mjøsbyen, and the trains of Vy (``VYG``) and SJ Norge
(``SJN``) on Dovrebanen, Gjøvikbanen and Rørosbanen. Their real-time data come from the SIRI
dataset of the same codespace, except rail: Bane NOR (``BNR``) publishes every passenger train.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from byflyt.models.gtfs import StaticFeed
from byflyt.models.kommuner import Region

RAIL_REALTIME = "BNR"
"""The SIRI dataset of every passenger train in Norway (Bane NOR)."""

_CODESPACE = re.compile(r"^([A-Z]{3}):")
FIELDS = (
    "codespace",
    "mode",
    "realtime_dataset",
    "routes",
    "stops",
    "trips_a_day",
    "departures_a_day",
)
"""The columns of ``byflyt transit sources`` (CSV and JSON)."""


@dataclass(frozen=True)
class Source:
    """One codespace and mode serving the region, with its volume there.

    ``stops``: stop places (a quay's ``parent_station``, else the stop) in the region it calls
    at; ``trips_a_day``: its trips calling in the region; ``departures_a_day``: their calls at
    the region's stops that are not a trip's last (a departure). A day is ``on`` when given, else
    the mean over every date from the feed's first to its last service date.
    """

    codespace: str
    mode: str
    realtime_dataset: str
    routes: int
    stops: int
    trips_a_day: float
    departures_a_day: float

    def record(self) -> dict[str, object]:
        """The row as a dict in :data:`FIELDS` order."""
        return asdict(self)


def codespace_of(*ids: object) -> str:
    """The codespace of the first id that has one (``VYG:ServiceJourney:1`` → ``VYG``)."""
    for value in ids:
        match = _CODESPACE.match(value) if isinstance(value, str) else None
        if match:
            return match[1]
    return "?"


def region_sources(
    static: StaticFeed, region: Region, *, on: date | None = None
) -> tuple[list[Source], tuple[date, date] | None]:
    """The datasets serving ``region`` in ``static``, busiest first, and the days averaged over.

    ``on`` counts that one day; without it, the mean over the feed's date range (None when the
    feed has no service date).
    """
    span = static.date_range()
    if on is not None:
        days: tuple[date, date] | None = (on, on)
    else:
        days = span
    if days is None:
        return [], None
    n_days = (days[1] - days[0]).days + 1
    times = static.stop_times
    trip = times["trip_id"].astype("str")
    last = (trip != trip.shift(-1)).to_numpy()
    stops = static.stops.set_index("stop_id")
    kommune = times["stop_id"].astype("str").map(stops["kommune_nr"])
    inside = kommune.isin(set(region.kommuner)).to_numpy()
    station = stops["parent_station"].where(stops["parent_station"].notna(), stops.index)
    calls = pd.DataFrame(
        {
            "trip_id": trip,
            "departure": inside & ~last,
            "inside": inside,
            "station": times["stop_id"].astype("str").map(station),
        }
    )
    per_trip = calls.groupby("trip_id", sort=False).agg(
        departures=("departure", "sum"), inside=("inside", "any")
    )
    trips = static.trips.set_index("trip_id").join(per_trip, how="inner")
    trips = trips[trips["inside"]]
    routes = static.routes.set_index("route_id")
    trips = trips.assign(
        mode=trips["route_id"].map(routes["mode"]).fillna("other"),
        codespace=[
            codespace_of(t, r, a)
            for t, r, a in zip(
                trips.index,
                trips["route_id"],
                trips["route_id"].map(routes["agency_id"]),
                strict=True,
            )
        ],
        days=[_running(static, str(s), days) for s in trips["service_id"]],
    )
    station_of_trip = calls[calls["inside"]].groupby("trip_id")["station"].agg(set)
    trips = trips[trips["days"] > 0]
    out: list[Source] = []
    for (codespace, mode), group in trips.groupby(["codespace", "mode"], sort=True):
        stations: set[str] = set()
        for trip_id in group.index:
            stations |= station_of_trip.get(trip_id, set())
        running = group["days"].to_numpy(dtype=np.int64)
        departures = group["departures"].to_numpy(dtype=np.int64)
        out.append(
            Source(
                codespace=str(codespace),
                mode=str(mode),
                realtime_dataset=RAIL_REALTIME if mode == "rail" else str(codespace),
                routes=int(group["route_id"].nunique()),
                stops=len(stations),
                trips_a_day=round(float(running.sum()) / n_days, 1),
                departures_a_day=round(float((departures * running).sum()) / n_days, 1),
            )
        )
    out.sort(key=lambda s: (-s.departures_a_day, s.codespace, s.mode))
    return out, days


def _running(static: StaticFeed, service_id: str, days: tuple[date, date]) -> int:
    """How many of ``days`` (first and last, inclusive) ``service_id`` runs on."""
    first, last = days
    return sum(1 for d in static.service_dates(service_id) if first <= d <= last)
