"""A small synthetic GTFS static feed in Entur's shape, for Innlandstrafikk (codespace INN).

The network is made up (agency "Innlandstrafikk (syntetisk)", see :data:`SYNTHETIC_NOTICE`) but
stops sit at real coordinates in Mjøsbyen and just outside it, and the files carry Entur's
quirks: ``calendar_dates.txt`` without ``calendar.txt``, ``stop_sequence`` from 0, quays
``NSR:Quay:n`` under ``NSR:StopPlace:n``, extended route types (106, 700, 701, 714, 1000),
extra columns (``vehicle_type`` in stops, ``boarding_type`` in stop times) and columns in an
order of their own. Service runs on 2025-10-25/26/27 (the 25-hour day in the middle).

Stops with a known role (keys of :data:`SYNTHETIC_STOPS`):

- ``lillehammer_bus`` has no coordinates: it inherits its stop place's;
- ``morokulien_bus`` lies on the Swedish side, ~255 m outside Eidskog's (3416) coarse polygon
  (kommune polygons cover lakes such as Mjøsa, so the border is where a point falls outside
  every polygon inland); it snaps to 3416;
- ``hunndalen_bus`` (and its stop place) has latitude and longitude swapped, which puts it in
  the Arabian Sea: it cannot be placed;
- ``jaren_bus`` (Gran 3446) and ``kongsvinger_bus``/``morokulien_bus`` are outside Mjøsbyen.

Trips by role are in :data:`SYNTHETIC_TRIPS`: ``crossing`` (Gjøvik → Jaren) and
``crossing_reverse`` cross the region edge, ``outside`` never enters Mjøsbyen, ``rail_night``
runs 23:40 → 24:35:00 every day, ``night_bus_dst`` leaves at 01:30:00 on the 25-hour day.
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: a made-up Innlandstrafikk network in Entur's GTFS "
    "shape, not a timetable of Innlandstrafikk or Entur."
)
AGENCY_NAME = "Innlandstrafikk (syntetisk)"
TIMEZONE = "Europe/Oslo"
SERVICE_DATES = (date(2025, 10, 25), date(2025, 10, 26), date(2025, 10, 27))
_ZIP_TIME = (2025, 10, 1, 0, 0, 0)


@dataclass(frozen=True)
class SyntheticStop:
    """A quay of the synthetic feed and the kommune it should be placed in (None: nowhere)."""

    role: str
    stop_id: str
    name: str
    lat: float | None
    lon: float | None
    parent_station: str
    kommune_nr: str | None


# fmt: off
# Stop places: key → (id, name, lat, lon, vehicle_type). Hunndalen's coordinates are swapped.
_PLACES: dict[str, tuple[str, str, float, float, str]] = {
    "hamar_st": ("NSR:StopPlace:91001", "Hamar stasjon", 60.7920, 11.0760, "railStation"),
    "hamar_skyss": ("NSR:StopPlace:91002", "Hamar skysstasjon", 60.7915, 11.0740, "busStation"),
    "hamar_brygge": ("NSR:StopPlace:91003", "Hamar brygge", 60.7955, 11.0647, "ferryStop"),
    "stange_st": ("NSR:StopPlace:91004", "Stange stasjon", 60.7164, 11.1899, "railStation"),
    "stange_sentrum": ("NSR:StopPlace:91005", "Stange sentrum", 60.7180, 11.1930, "onstreetBus"),
    "brumunddal": ("NSR:StopPlace:91006", "Brumunddal stasjon", 60.8810, 10.9395, "railStation"),
    "moelv": ("NSR:StopPlace:91007", "Moelv stasjon", 60.9317, 10.6963, "railStation"),
    "lillehammer_st": (
        "NSR:StopPlace:91008", "Lillehammer stasjon", 61.1146, 10.4606, "railStation"),
    "lillehammer_skyss": (
        "NSR:StopPlace:91009", "Lillehammer skysstasjon", 61.1150, 10.4620, "busStation"),
    "lillehammer_brygge": (
        "NSR:StopPlace:91010", "Lillehammer brygge", 61.1055, 10.4565, "ferryStop"),
    "gjovik_skyss": ("NSR:StopPlace:91011", "Gjøvik skysstasjon", 60.7975, 10.6920, "busStation"),
    "gjovik_brygge": ("NSR:StopPlace:91012", "Gjøvik brygge", 60.7985, 10.6960, "ferryStop"),
    "hunndalen": ("NSR:StopPlace:91013", "Hunndalen", 10.6430, 60.7740, "onstreetBus"),
    "raufoss": ("NSR:StopPlace:91014", "Raufoss skysstasjon", 60.7260, 10.6130, "busStation"),
    "jaren": ("NSR:StopPlace:91015", "Jaren skysstasjon", 60.3950, 10.5620, "busStation"),
    "kongsvinger": ("NSR:StopPlace:91016", "Kongsvinger stasjon", 60.1905, 11.9990, "busStation"),
    "morokulien": ("NSR:StopPlace:91017", "Morokulien", 59.9350, 12.2605, "onstreetBus"),
}

# Quays: role → (id, stop place, platform, own coordinates (None: inherit), kommune expected).
_QUAYS: dict[str, tuple[str, str, str, tuple[float, float] | None, str | None]] = {
    "hamar_rail": ("NSR:Quay:92001", "hamar_st", "1", (60.7921, 11.0762), "3403"),
    "hamar_bus": ("NSR:Quay:92002", "hamar_skyss", "A", (60.7914, 11.0741), "3403"),
    "hamar_pier": ("NSR:Quay:92003", "hamar_brygge", "", (60.7956, 11.0645), "3403"),
    "stange_rail": ("NSR:Quay:92004", "stange_st", "1", (60.7165, 11.1898), "3413"),
    "stange_bus": ("NSR:Quay:92005", "stange_sentrum", "", (60.7181, 11.1931), "3413"),
    "brumunddal_rail": ("NSR:Quay:92006", "brumunddal", "1", (60.8811, 10.9394), "3411"),
    "brumunddal_bus": ("NSR:Quay:92007", "brumunddal", "B", (60.8820, 10.9410), "3411"),
    "moelv_rail": ("NSR:Quay:92008", "moelv", "1", (60.9318, 10.6962), "3411"),
    "moelv_bus": ("NSR:Quay:92009", "moelv", "B", (60.9330, 10.6985), "3411"),
    "lillehammer_rail": ("NSR:Quay:92010", "lillehammer_st", "1", (61.1145, 10.4607), "3405"),
    "lillehammer_bus": ("NSR:Quay:92011", "lillehammer_skyss", "C", None, "3405"),
    "lillehammer_pier": ("NSR:Quay:92012", "lillehammer_brygge", "", (61.1056, 10.4566), "3405"),
    "gjovik_bus": ("NSR:Quay:92013", "gjovik_skyss", "A", (60.7976, 10.6921), "3407"),
    "gjovik_pier": ("NSR:Quay:92014", "gjovik_brygge", "", (60.7986, 10.6961), "3407"),
    "hunndalen_bus": ("NSR:Quay:92015", "hunndalen", "", (10.6431, 60.7741), None),
    "raufoss_bus": ("NSR:Quay:92016", "raufoss", "A", (60.7261, 10.6131), "3443"),
    "jaren_bus": ("NSR:Quay:92017", "jaren", "A", (60.3951, 10.5621), "3446"),
    "kongsvinger_bus": ("NSR:Quay:92018", "kongsvinger", "A", (60.1906, 11.9991), "3401"),
    "morokulien_bus": ("NSR:Quay:92019", "morokulien", "", (59.9350, 12.2605), "3416"),
}

# fmt: on

SYNTHETIC_STOPS: dict[str, str] = {role: quay[0] for role, quay in _QUAYS.items()}
"""Quay role → stop_id (``NSR:Quay:…``)."""

STOP_PLACES: dict[str, str] = {key: place[0] for key, place in _PLACES.items()}
"""Stop place key → stop_id (``NSR:StopPlace:…``), the quays' ``parent_station``."""

STOP_INFO: dict[str, SyntheticStop] = {
    role: SyntheticStop(
        role=role,
        stop_id=quay_id,
        name=_PLACES[place][1],
        lat=coords[0] if coords else None,
        lon=coords[1] if coords else None,
        parent_station=STOP_PLACES[place],
        kommune_nr=kommune,
    )
    for role, (quay_id, place, _, coords, kommune) in _QUAYS.items()
}
"""Quay role → the quay as written (coordinates ``None`` when it has none) and its kommune."""

EXPECTED_KOMMUNE: dict[str, str | None] = {
    stop.stop_id: stop.kommune_nr for stop in STOP_INFO.values()
}
"""Quay stop_id → the kommune it should be placed in (None: unplaceable)."""

# Lines: key → (route_id, short name, long name, route_type).
_LINES: dict[str, tuple[str, str, str, int]] = {
    "R10": ("INN:Line:R10", "R10", "Lillehammer–Hamar–Stange (syntetisk)", 106),
    "R10B": ("INN:Line:R10B", "R10", "Buss for tog Hamar–Stange (syntetisk)", 714),
    "150": ("INN:Line:150", "150", "Hamar–Brumunddal–Moelv–Lillehammer", 701),
    "5": ("INN:Line:5", "5", "Hamar–Stange", 700),
    "130": ("INN:Line:130", "130", "Gjøvik–Raufoss–Jaren", 701),
    "340": ("INN:Line:340", "340", "Kongsvinger–Morokulien", 701),
    "M1": ("INN:Line:M1", "M1", "Mjøsferja Hamar–Gjøvik–Lillehammer (syntetisk)", 1000),
}

# Service id → the dates it runs (calendar_dates.txt, exception_type 1).
SERVICES: dict[str, tuple[date, ...]] = {
    "INN:DayType:Alle": SERVICE_DATES,
    "INN:DayType:Lordag": (SERVICE_DATES[0],),
    "INN:DayType:Sondag": (SERVICE_DATES[1],),
    "INN:DayType:Mandag": (SERVICE_DATES[2],),
}

# fmt: off
# Trips: role → (line, service, departure "HH:MM" of the first stop, jitter?, [(quay, minutes)]).
_TRIPS: dict[str, tuple[str, str, str, bool, tuple[tuple[str, int], ...]]] = {
    "rail_morning": ("R10", "Alle", "06:10", False, (
        ("lillehammer_rail", 0), ("moelv_rail", 25), ("brumunddal_rail", 35),
        ("hamar_rail", 48), ("stange_rail", 55))),
    "rail_midday": ("R10", "Alle", "12:10", True, (
        ("lillehammer_rail", 0), ("moelv_rail", 25), ("brumunddal_rail", 35),
        ("hamar_rail", 48), ("stange_rail", 55))),
    "rail_night": ("R10", "Alle", "23:40", False, (
        ("lillehammer_rail", 0), ("moelv_rail", 25), ("brumunddal_rail", 35),
        ("hamar_rail", 48), ("stange_rail", 55))),
    "rail_replacement": ("R10B", "Mandag", "09:00", False, (
        ("hamar_bus", 0), ("stange_bus", 20))),
    "bus_150_morning": ("150", "Alle", "07:15", False, (
        ("hamar_bus", 0), ("brumunddal_bus", 20), ("moelv_bus", 45), ("lillehammer_bus", 80))),
    "bus_150_afternoon": ("150", "Alle", "15:15", True, (
        ("lillehammer_bus", 0), ("moelv_bus", 35), ("brumunddal_bus", 60), ("hamar_bus", 80))),
    "bus_5_day": ("5", "Alle", "10:00", True, (("hamar_bus", 0), ("stange_bus", 22))),
    "night_bus_dst": ("5", "Sondag", "01:30", False, (("hamar_bus", 0), ("stange_bus", 22))),
    "crossing": ("130", "Alle", "08:00", False, (
        ("gjovik_bus", 0), ("hunndalen_bus", 8), ("raufoss_bus", 18), ("jaren_bus", 55))),
    "crossing_reverse": ("130", "Alle", "16:00", True, (
        ("jaren_bus", 0), ("raufoss_bus", 37), ("hunndalen_bus", 47), ("gjovik_bus", 55))),
    "outside": ("340", "Alle", "11:00", True, (("kongsvinger_bus", 0), ("morokulien_bus", 30))),
    "ferry": ("M1", "Lordag", "10:00", False, (
        ("hamar_pier", 0), ("gjovik_pier", 80), ("lillehammer_pier", 240))),
}

# fmt: on

SYNTHETIC_TRIPS: dict[str, str] = {role: f"INN:ServiceJourney:{role}" for role in _TRIPS}
"""Trip role → trip_id (``INN:ServiceJourney:…``)."""

TRIP_SERVICE: dict[str, str] = {
    SYNTHETIC_TRIPS[role]: f"INN:DayType:{trip[1]}" for role, trip in _TRIPS.items()
}
"""Trip id → service_id."""

TRIP_STOPS: dict[str, tuple[str, ...]] = {
    SYNTHETIC_TRIPS[role]: tuple(SYNTHETIC_STOPS[q] for q, _ in trip[4])
    for role, trip in _TRIPS.items()
}
"""Trip id → its quays in order (``stop_sequence`` 0, 1, …)."""


def _clock(minutes: int) -> str:
    """GTFS time: hours run past 24 for trips after midnight."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def _files(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    files: dict[str, str] = {}
    files["agency.txt"] = _csv(
        ["agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang"],
        [["INN:Authority:INN", AGENCY_NAME, "https://www.innlandstrafikk.no", TIMEZONE, "nor"]],
    )
    files["feed_info.txt"] = _csv(
        ["feed_publisher_name", "feed_publisher_url", "feed_lang", "feed_version"],
        [
            [
                "Entur-stil syntetisk feed (byflyt)",
                "https://www.entur.org",
                "no",
                f"synthetic-{seed}",
            ]
        ],
    )
    stop_rows: list[list[object]] = [
        [sid, name, lat, lon, "", 1, "", 1, vtype, ""]
        for sid, name, lat, lon, vtype in _PLACES.values()
    ]
    for quay_id, place, platform, coords, _ in _QUAYS.values():
        place_id, name, _, _, vtype = _PLACES[place]
        lat, lon = coords if coords else (None, None)
        stop_rows.append([quay_id, name, lat, lon, "", 0, place_id, 1, vtype, platform])
    files["stops.txt"] = _csv(
        [
            "stop_id",
            "stop_name",
            "stop_lat",
            "stop_lon",
            "stop_desc",
            "location_type",
            "parent_station",
            "wheelchair_boarding",
            "vehicle_type",
            "platform_code",
        ],
        stop_rows,
    )
    files["routes.txt"] = _csv(
        [
            "agency_id",
            "route_id",
            "route_short_name",
            "route_long_name",
            "route_type",
            "route_color",
            "route_text_color",
        ],
        [
            ["INN:Authority:INN", rid, short, long, rtype, "", ""]
            for rid, short, long, rtype in _LINES.values()
        ],
    )
    trip_rows: list[list[object]] = []
    call_rows: list[list[object]] = []
    for role, (line, service, start, jitter, calls) in _TRIPS.items():
        trip_id = SYNTHETIC_TRIPS[role]
        last = _PLACES[_QUAYS[calls[-1][0]][1]][1]
        trip_rows.append([_LINES[line][0], f"INN:DayType:{service}", trip_id, last, 0, ""])
        hours, minutes = (int(part) for part in start.split(":"))
        first = hours * 60 + minutes + (rng.randint(0, 20) if jitter else 0)
        for sequence, (quay, offset) in enumerate(calls):
            departure = first + offset
            dwell = 1 if 0 < sequence < len(calls) - 1 else 0
            call_rows.append(
                [
                    trip_id,
                    SYNTHETIC_STOPS[quay],
                    _clock(departure - dwell),
                    _clock(departure),
                    sequence,
                    "",
                    0,
                    0,
                    "",
                    rng.choice(["any", "front_door"]),
                ]
            )
    files["trips.txt"] = _csv(
        ["route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "shape_id"],
        trip_rows,
    )
    files["stop_times.txt"] = _csv(
        [
            "trip_id",
            "stop_id",
            "arrival_time",
            "departure_time",
            "stop_sequence",
            "stop_headsign",
            "pickup_type",
            "drop_off_type",
            "shape_dist_traveled",
            "boarding_type",
        ],
        call_rows,
    )
    files["calendar_dates.txt"] = _csv(
        ["service_id", "date", "exception_type"],
        [[sid, day.strftime("%Y%m%d"), 1] for sid, days in SERVICES.items() for day in days],
    )
    return files


def write_synthetic_gtfs(path: Path, *, seed: int = 7) -> Path:
    """Write the synthetic GTFS zip to ``path`` and return it.

    The same seed gives the same bytes. The seed only moves the departures of the trips without
    a fixed role time (``rail_midday``, ``bus_150_afternoon``, ``bus_5_day``,
    ``crossing_reverse``, ``outside``) by 0–20 minutes and picks ``boarding_type`` values.
    """
    return write_zip(path, synthetic_files(seed))


@contextmanager
def given_or_synthetic(
    static_zip: Path | None, write: Callable[[Path], Path] = write_synthetic_gtfs
) -> Iterator[Path]:
    """``static_zip`` if given, else a zip ``write`` puts in a folder removed after the block."""
    if static_zip is not None:
        yield static_zip
        return
    with tempfile.TemporaryDirectory(prefix="byflyt-gtfs-") as tmp:
        yield write(Path(tmp) / "static.zip")


def synthetic_files(seed: int = 7) -> dict[str, str]:
    """The synthetic feed's files (name → CSV text), as :func:`write_synthetic_gtfs` zips them."""
    return _files(seed)


def write_zip(path: Path, files: dict[str, str]) -> Path:
    """Zip ``files`` (name → text) to ``path`` with fixed timestamps: same files, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return path
