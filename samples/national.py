"""A synthetic slice of Entur's national GTFS with rail, and a Bane NOR (BNR) SIRI ET day for it.

SYNTHETIC DATA (see :data:`SYNTHETIC_NOTICE`): made-up timetables and real-time data, not Vy's,
SJ Norge's, Bane NOR's or Entur's. The slice is what Entur's national feed looks like around
Mjøsbyen: several codespaces in one zip, each id prefixed by its codespace. It holds the
synthetic Innlandstrafikk network of :mod:`byflyt.samples.gtfs` (its buses and boats; INN runs
no trains, so its made-up R10 rail line stays out) and three railway lines at real station
coordinates with NSR-style ids of their own (``NSR:StopPlace:930nn``, ``NSR:Quay:940nn``; the
Mjøsbyen stations reuse the INN slice's stop places):

- Dovrebanen: Vy's regional ``VYG:Line:R10`` Oslo S–Lillestrøm–Oslo lufthavn–Eidsvoll–Tangen–
  Stange–Hamar–Brumunddal–Moelv–Lillehammer and SJ Norge's ``SJN:Line:F6`` Oslo S–Hamar–
  Lillehammer–Otta–Dombås–Trondheim S (with a night train across midnight);
- Gjøvikbanen: ``VYG:Line:R31`` Oslo S–Hakadal–Jaren–Eina–Raufoss–Gjøvik;
- Rørosbanen: ``SJN:Line:R60`` Hamar–Løten–Elverum–Rena–Røros.

Every rail trip carries its train number as ``trip_short_name``; train 2101 runs as one trip on
weekdays and as another on Saturdays, so only the date tells them apart.

:func:`bnr_day` serves the rail trips of Monday 2025-10-27 as Bane NOR does in Entur's SIRI:
journeys named by train number and date (``2101:2025-10-27``, bare or framed), the train number
as ``VehicleRef``, and by role (:attr:`~byflyt.samples.siri.SiriDay.roles`): a railway station
code instead of a quay (``railway_code``), a call served at another platform
(``platform_change``), a skipped station (``skipped``), a cancelled train (``cancelled``), the
night train of the day before (``night``), a train number the static feed does not know
(``unknown_train``) and a Saturday-only train on a Monday (``not_running``).
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from byflyt.samples.gtfs import (
    SERVICE_DATES,
    STOP_PLACES,
    given_or_synthetic,
    synthetic_files,
    write_zip,
)
from byflyt.samples.siri import (
    FIRST_TICK,
    SERVICE_DATE,
    JourneyPlan,
    PlannedCall,
    SiriDay,
    day_ticks,
    serve,
)
from byflyt.samples.static_trips import read_static_trips

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: a made-up slice of Entur's national GTFS (Innlandstrafikk's "
    "buses, Vy's and SJ Norge's trains) and made-up Bane NOR SIRI, not real timetables or "
    "real-time data."
)
RAIL_CODESPACES = ("VYG", "SJN")
DATASET = "BNR"

# fmt: off
# New stop places: key → (id, name, lat, lon). Mjøsbyen's stations are the INN slice's.
_PLACES: dict[str, tuple[str, str, float, float]] = {
    "oslo": ("NSR:StopPlace:93001", "Oslo S", 59.9111, 10.7528),
    "lillestrom": ("NSR:StopPlace:93002", "Lillestrøm stasjon", 59.9530, 11.0450),
    "gardermoen": ("NSR:StopPlace:93003", "Oslo lufthavn stasjon", 60.1934, 11.0975),
    "eidsvoll": ("NSR:StopPlace:93004", "Eidsvoll stasjon", 60.3297, 11.2612),
    "tangen": ("NSR:StopPlace:93005", "Tangen stasjon", 60.6069, 11.2714),
    "hakadal": ("NSR:StopPlace:93006", "Hakadal stasjon", 60.1170, 10.8300),
    "jaren": ("NSR:StopPlace:93007", "Jaren stasjon", 60.3990, 10.5600),
    "eina": ("NSR:StopPlace:93008", "Eina stasjon", 60.6330, 10.6030),
    "raufoss": ("NSR:StopPlace:93009", "Raufoss stasjon", 60.7262, 10.6125),
    "gjovik": ("NSR:StopPlace:93010", "Gjøvik stasjon", 60.7965, 10.6930),
    "loten": ("NSR:StopPlace:93011", "Løten stasjon", 60.8170, 11.3440),
    "elverum": ("NSR:StopPlace:93012", "Elverum stasjon", 60.8820, 11.5640),
    "rena": ("NSR:StopPlace:93013", "Rena stasjon", 61.1340, 11.3660),
    "roros": ("NSR:StopPlace:93014", "Røros stasjon", 62.5747, 11.3840),
    "otta": ("NSR:StopPlace:93015", "Otta stasjon", 61.7726, 9.5370),
    "dombas": ("NSR:StopPlace:93016", "Dombås stasjon", 62.0740, 9.1250),
    "trondheim": ("NSR:StopPlace:93017", "Trondheim S", 63.4364, 10.3990),
}

# Rail quays: key → (id, stop place (a key of _PLACES or of the INN slice's STOP_PLACES),
# platform, lat, lon). Existing INN rail quays are used as they are (see _INN_RAIL).
_QUAYS: dict[str, tuple[str, str, str, float, float]] = {
    **{
        key: (f"NSR:Quay:{94001 + i}", key, "1", lat + 0.0001, lon + 0.0001)
        for i, (key, (_, _, lat, lon)) in enumerate(_PLACES.items())
    },
    "hamar_2": ("NSR:Quay:94101", "hamar_st", "2", 60.7919, 11.0765),
}
_INN_RAIL = {
    "stange": "NSR:Quay:92004",
    "hamar": "NSR:Quay:92001",
    "brumunddal": "NSR:Quay:92006",
    "moelv": "NSR:Quay:92008",
    "lillehammer": "NSR:Quay:92010",
}

# Lines: route_id → (agency, short name, long name, route_type).
_LINES: dict[str, tuple[str, str, str, int]] = {
    "VYG:Line:R10": ("VYG:Authority:VYG", "R10", "Oslo S–Lillehammer (syntetisk)", 106),
    "VYG:Line:R31": ("VYG:Authority:VYG", "R31", "Oslo S–Gjøvik (syntetisk)", 106),
    "SJN:Line:F6": ("SJN:Authority:SJN", "F6", "Oslo S–Trondheim S (syntetisk)", 102),
    "SJN:Line:R60": ("SJN:Authority:SJN", "R60", "Hamar–Røros (syntetisk)", 106),
}
_AGENCIES = {
    "VYG:Authority:VYG": ("Vy (syntetisk)", "https://www.vy.no"),
    "SJN:Authority:SJN": ("SJ Norge (syntetisk)", "https://www.sj.no"),
}

# Stopping patterns: line → [(quay key, minutes from the first stop)], northbound.
_PATTERNS: dict[str, tuple[tuple[str, int], ...]] = {
    "VYG:Line:R10": (
        ("oslo", 0), ("lillestrom", 10), ("gardermoen", 22), ("eidsvoll", 33), ("tangen", 50),
        ("stange", 60), ("hamar", 68), ("brumunddal", 80), ("moelv", 90), ("lillehammer", 112)),
    "VYG:Line:R31": (
        ("oslo", 0), ("hakadal", 30), ("jaren", 65), ("eina", 95), ("raufoss", 110),
        ("gjovik", 125)),
    "SJN:Line:F6": (
        ("oslo", 0), ("lillestrom", 10), ("gardermoen", 22), ("eidsvoll", 33), ("hamar", 64),
        ("lillehammer", 104), ("otta", 160), ("dombas", 200), ("trondheim", 400)),
    "SJN:Line:R60": (
        ("hamar", 0), ("loten", 15), ("elverum", 28), ("rena", 60), ("roros", 230)),
}

# Service id → dates (calendar_dates.txt). SERVICE_DATES: Saturday, Sunday, Monday.
_SERVICES: dict[str, tuple[date, ...]] = {
    "VYG:DayType:Hverdag": (SERVICE_DATES[2],),
    "VYG:DayType:Lordag": (SERVICE_DATES[0],),
    "VYG:DayType:Alle": SERVICE_DATES,
    "SJN:DayType:Alle": SERVICE_DATES,
}

# Trains: (codespace, line, day type, train number, first departure "HH:MM", northbound?); a
# trip's id is "<codespace>:ServiceJourney:<line>-<number>[-<day type> when the number repeats]".
_TRAINS: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("VYG", "R10", "Hverdag", "2101", "06:02", True),
    ("VYG", "R10", "Lordag", "2101", "07:32", True),
    ("VYG", "R10", "Alle", "2105", "08:02", True),
    ("VYG", "R10", "Alle", "2117", "16:02", True),
    ("VYG", "R10", "Alle", "2110", "07:15", False),
    ("VYG", "R10", "Hverdag", "2122", "13:15", False),
    ("VYG", "R31", "Alle", "3611", "07:10", True),
    ("VYG", "R31", "Lordag", "3615", "09:10", True),
    ("VYG", "R31", "Hverdag", "3620", "06:30", False),
    ("SJN", "F6", "Alle", "41", "08:02", True),
    ("SJN", "F6", "Alle", "46", "07:55", False),
    ("SJN", "F6", "Alle", "405", "23:05", True),
    ("SJN", "R60", "Alle", "2301", "09:12", True),
    ("SJN", "R60", "Alle", "2304", "06:00", False),
)
# fmt: on


def _trip_id(codespace: str, line: str, day_type: str, number: str) -> str:
    repeated = sum(1 for t in _TRAINS if t[3] == number) > 1
    tail = f"-{day_type.lower()}" if repeated else ""
    return f"{codespace}:ServiceJourney:{line}-{number}{tail}"


TRAINS: dict[str, tuple[str, str, str, str, bool]] = {
    _trip_id(c, line, kind, number): (f"{c}:Line:{line}", f"{c}:DayType:{kind}", number, at, up)
    for c, line, kind, number, at, up in _TRAINS
}
"""Rail trip_id → (route_id, service_id, train number, first departure, northbound?)."""

RAIL_STOPS: dict[str, str] = {**_INN_RAIL, **{k: q[0] for k, q in _QUAYS.items()}}
"""Station key → its (first) rail quay id, and ``hamar_2`` for Hamar's platform 2."""


def _quay(key: str) -> str:
    return _INN_RAIL.get(key) or _QUAYS[key][0]


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def _write(header: list[str], rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _national_files(seed: int) -> dict[str, str]:
    inn = {name: _table(text) for name, text in synthetic_files(seed).items()}
    header, routes = inn["routes.txt"]
    rail_routes = {r["route_id"] for r in routes if 100 <= int(r["route_type"]) <= 117}
    files: dict[str, str] = {"feed_info.txt": synthetic_files(seed)["feed_info.txt"]}
    header, agencies = inn["agency.txt"]
    rows: list[dict[str, object]] = [dict(a) for a in agencies]
    for agency_id, (name, url) in _AGENCIES.items():
        rows.append({**agencies[0], "agency_id": agency_id, "agency_name": name, "agency_url": url})
    files["agency.txt"] = _write(header, rows)
    header, stops = inn["stops.txt"]
    rows = [dict(s) for s in stops]
    for place_id, name, lat, lon in _PLACES.values():
        rows.append({"stop_id": place_id, "stop_name": name, "stop_lat": lat, "stop_lon": lon,
                     "location_type": 1, "vehicle_type": "railStation"})  # fmt: skip
    places = {**STOP_PLACES, **{k: p[0] for k, p in _PLACES.items()}}
    names = {p[0]: p[1] for p in _PLACES.values()} | {s["stop_id"]: s["stop_name"] for s in stops}
    for quay_id, place, platform, lat, lon in _QUAYS.values():
        rows.append({"stop_id": quay_id, "stop_name": names[places[place]], "stop_lat": lat,
                     "stop_lon": lon, "location_type": 0, "parent_station": places[place],
                     "vehicle_type": "railStation", "platform_code": platform})  # fmt: skip
    files["stops.txt"] = _write(header, rows)
    quay_names = {str(r["stop_id"]): str(r["stop_name"]) for r in rows}
    header, _ = inn["routes.txt"]
    rows = [dict(r) for r in routes if r["route_id"] not in rail_routes]
    for route_id, (agency, short, long, kind) in _LINES.items():
        rows.append({"agency_id": agency, "route_id": route_id, "route_short_name": short,
                     "route_long_name": long, "route_type": kind})  # fmt: skip
    files["routes.txt"] = _write(header, rows)
    header, trips = inn["trips.txt"]
    kept = [dict(t) for t in trips if t["route_id"] not in rail_routes]
    kept_ids = {t["trip_id"] for t in kept}
    rows = [dict(t) for t in kept]
    times_header, times = inn["stop_times.txt"]
    time_rows: list[dict[str, object]] = [dict(t) for t in times if t["trip_id"] in kept_ids]
    for trip_id, (line, service, number, start, north) in TRAINS.items():
        pattern = _PATTERNS[line]
        stations = pattern if north else tuple(reversed(pattern))
        total = pattern[-1][1]
        hours, minutes = (int(p) for p in start.split(":"))
        first = hours * 60 + minutes
        rows.append({"route_id": line, "service_id": service, "trip_id": trip_id,
                     "trip_headsign": quay_names[_quay(stations[-1][0])],
                     "direction_id": 0 if north else 1, "trip_short_name": number})  # fmt: skip
        for sequence, (key, offset) in enumerate(stations):
            at = first + (offset if north else total - offset)
            dwell = 1 if 0 < sequence < len(stations) - 1 else 0
            time_rows.append({"trip_id": trip_id, "stop_id": _quay(key),
                              "arrival_time": _clock(at - dwell), "departure_time": _clock(at),
                              "stop_sequence": sequence, "pickup_type": 0, "drop_off_type": 0,
                              "boarding_type": "any"})  # fmt: skip
    files["trips.txt"] = _write([*header, "trip_short_name"], rows)
    files["stop_times.txt"] = _write(times_header, time_rows)
    header, dates = inn["calendar_dates.txt"]
    rows = [dict(d) for d in dates]
    for service_id, days in _SERVICES.items():
        rows += [{"service_id": service_id, "date": d.strftime("%Y%m%d"), "exception_type": 1}
                 for d in days]  # fmt: skip
    files["calendar_dates.txt"] = _write(header, rows)
    return files


def write_national_gtfs(path: Path, *, seed: int = 7) -> Path:
    """Write the synthetic national slice (a GTFS zip in Entur's shape) to ``path``."""
    return write_zip(path, _national_files(seed))


def bnr_day(static_zip: Path | None = None, *, seed: int = 11) -> SiriDay:
    """Bane NOR's SIRI ET for the slice's trains on 2025-10-27 (same arguments, same bytes)."""
    with given_or_synthetic(static_zip, write_national_gtfs) as path:
        numbers = {trip_id: train[2] for trip_id, train in TRAINS.items()}
        today = read_static_trips(path, SERVICE_DATE)
        night = [
            t
            for t in read_static_trips(path, SERVICE_DATE - timedelta(days=1))
            if t.calls[-1].scheduled >= FIRST_TICK
        ]
    rng = random.Random(seed)
    plans: dict[str, JourneyPlan] = {}
    for n, trip in enumerate(t for t in [*night, *today] if t.trip_id in numbers):
        number = numbers[trip.trip_id]
        ref = f"{number}:{trip.service_date}"
        count = len(trip.calls)
        plan = JourneyPlan(
            key=f"{trip.service_date}:{ref}",
            trip_id=ref,
            service_date=trip.service_date,
            line_ref=trip.route_id,
            calls=[PlannedCall(c.stop_id, c.scheduled, c.lat, c.lon, None) for c in trip.calls],
            delays=[rng.randint(-30, 420) for _ in range(count)],
            first_guess=[rng.randint(-60, 120) for _ in range(count)],
            framed=n % 2 == 0,
            vehicle_ref=number,
            mode="rail",
            operator_ref=f"{trip.route_id[:3]}:Operator:synthetic",
        )
        plans[plan.key] = plan
    roles = _roles(plans)
    return serve(plans, roles, day_ticks(), rng)


def _roles(plans: dict[str, JourneyPlan]) -> dict[str, str]:
    def plan_of(number: str, day: date = SERVICE_DATE) -> JourneyPlan:
        return plans[f"{day}:{number}:{day}"]

    hamar = _INN_RAIL["hamar"]
    coded = plan_of("2105")
    coded.stop_refs = {[c.stop_id for c in coded.calls].index(hamar): "HMR"}
    moved = plan_of("41")
    moved.stop_refs = {[c.stop_id for c in moved.calls].index(hamar): _QUAYS["hamar_2"][0]}
    skipped = plan_of("2117")
    skipped.cancelled_calls = frozenset({[c.stop_id for c in skipped.calls].index(_quay("tangen"))})
    cancelled = plan_of("2304")
    cancelled.cancel_from = cancelled.calls[0].aimed - timedelta(minutes=40)
    cancelled.vehicle_ref = None
    template = plan_of("3611")
    day = SERVICE_DATE
    for number in ("9931", "3615"):  # unknown to the feed; runs on Saturdays only
        ref = f"{number}:{day}"
        plans[f"{day}:{ref}"] = replace(
            template,
            key=f"{day}:{ref}",
            trip_id=ref,
            calls=[replace(c, aimed=c.aimed + timedelta(minutes=7)) for c in template.calls],
            vehicle_ref=number,
        )
    return {
        "railway_code": coded.key,
        "platform_change": moved.key,
        "skipped": skipped.key,
        "cancelled": cancelled.key,
        "night": f"{SERVICE_DATE - timedelta(days=1)}:405:{SERVICE_DATE - timedelta(days=1)}",
        "weekday_2101": f"{day}:2101:{day}",
        "unknown_train": f"{day}:9931:{day}",
        "not_running": f"{day}:3615:{day}",
    }
