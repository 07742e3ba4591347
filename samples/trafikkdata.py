"""A synthetic Mjøsbyen week of Statens vegvesen Trafikkdata, deterministic from a seed.

The data is made up (see ``SYNTHETIC_NOTICE``) but shaped like the real API's: traffic
registration points with kommune and county numbers as integers, hourly volumes with coverage,
and the real API's quirks. Every quirk has a known place, so tests can assert on it:

- weekday rush-hour peaks, a weekend midday hump, real zeros at 3 a.m. with coverage 100;
- hours with partial coverage and a volume; coverage 0 with ``volumeNumbers: null``; coverage 0
  with ``volume: null``;
- ``SILENT_POINT`` sends nothing for the third local day; ``MIDWEEK_POINT`` starts mid-week;
- data lags: each point's last one to three hours are missing in version 1;
- version 2 corrects ten (point, hour) values (listed in ``TrafikkdataDataset.corrected``) and
  delivers the lagging hours; everything else is identical.

Hours are keyed by their UTC start. Days are Europe/Oslo calendar days, so a week across the
autumn change has 169 hours.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args

from byflyt.clock import OSLO

HOUR = timedelta(hours=1)

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: made-up Trafikkdata counts in the API's shape, "
    "not measurements by Statens vegvesen."
)

TrafficType = Literal["BICYCLE", "VEHICLE"]
Shape = Literal["numbers", "null_numbers", "null_volume"]

SILENT_POINT = "73520B2561034"
MIDWEEK_POINT = "61275B2719433"
VEHICLE_POINT = "44656V72811"
OUTSIDE_POINT = "18930B1632209"
OSLO_POINT = "95016B1049317"

COUNTIES = {34: "Innlandet", 3: "Oslo"}
KOMMUNER = {
    301: "Oslo",
    3401: "Kongsvinger",
    3403: "Hamar",
    3405: "Lillehammer",
    3407: "Gjøvik",
    3411: "Ringsaker",
    3413: "Stange",
    3420: "Elverum",
    3442: "Østre Toten",
    3443: "Vestre Toten",
}

# id, place, lat, lon, kommune number, type, weekday peak volume per hour
_POINTS: tuple[tuple[str, str, float, float, int, TrafficType, int], ...] = (
    ("10795B1743428", "Strandvegen", 60.7925, 11.0620, 3403, "BICYCLE", 55),
    ("29403B1743560", "Børstad", 60.7990, 11.1050, 3403, "BICYCLE", 30),
    ("40178B2102711", "Storgata", 61.1150, 10.4660, 3405, "BICYCLE", 45),
    ("52231B2102960", "Vingnes bru", 61.1040, 10.4420, 3405, "BICYCLE", 18),
    ("66842B2561207", "Hunnselva", 60.7990, 10.6930, 3407, "BICYCLE", 40),
    (SILENT_POINT, "Kallerud", 60.7770, 10.6650, 3407, "BICYCLE", 20),
    ("81564B1811903", "Brumunddal sentrum", 60.8830, 10.9400, 3411, "BICYCLE", 25),
    ("87102B1812044", "Moelv", 60.9330, 10.6970, 3411, "BICYCLE", 14),
    ("30877B1790652", "Stange stasjon", 60.7160, 11.1880, 3413, "BICYCLE", 16),
    ("47329B1450985", "Glomma bru", 60.8820, 11.5580, 3420, "BICYCLE", 35),
    ("58890B2245716", "Lena", 60.6720, 10.8130, 3442, "BICYCLE", 12),
    (MIDWEEK_POINT, "Raufoss", 60.7260, 10.6130, 3443, "BICYCLE", 22),
    (VEHICLE_POINT, "Rv 25 Hamar", 60.7960, 11.0900, 3403, "VEHICLE", 950),
    (OUTSIDE_POINT, "Kongsvinger sentrum", 60.1900, 12.0000, 3401, "BICYCLE", 28),
    (OSLO_POINT, "Akerselva", 59.9200, 10.7590, 301, "BICYCLE", 140),
)

# Share of the weekday rush-hour peak by local hour; zero at 3 a.m. on purpose (real zeros).
# fmt: off
_WEEKDAY = (0.02, 0.01, 0.01, 0.0, 0.01, 0.05, 0.25, 0.85, 1.0, 0.55, 0.35, 0.35,
            0.4, 0.4, 0.45, 0.75, 0.95, 0.8, 0.5, 0.35, 0.25, 0.15, 0.08, 0.04)
_WEEKEND = (0.03, 0.02, 0.01, 0.0, 0.0, 0.01, 0.03, 0.08, 0.15, 0.3, 0.45, 0.55,
            0.6, 0.6, 0.55, 0.5, 0.4, 0.3, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03)
# fmt: on
_VEHICLE_NIGHT = 0.03
_PARTIAL_COVERAGE = (50.0, 62.5, 75.0, 87.5, 91.7, 95.0)
_LAGS = (1, 2, 2, 3, 3)


@dataclass(frozen=True)
class HourValue:
    """One published hour: ``volume`` is None exactly when the shape is a null one."""

    volume: int | None
    coverage: float
    shape: Shape = "numbers"

    def __post_init__(self) -> None:
        if (self.volume is None) != (self.shape != "numbers"):
            raise ValueError(f"volume {self.volume!r} does not fit shape {self.shape!r}")
        if not 0.0 <= self.coverage <= 100.0:
            raise ValueError(f"coverage {self.coverage} is outside 0–100")


@dataclass(frozen=True)
class TrafikkdataPoint:
    """A traffic registration point; data times are aware, ``latest_data`` is an hour start."""

    id: str
    name: str
    lat: float
    lon: float
    municipality_number: int
    municipality_name: str
    county_number: int
    traffic_type: TrafficType
    first_data: datetime
    latest_data: datetime
    operational_status: str = "OPERATIONAL"

    @property
    def county_name(self) -> str:
        """The county's name."""
        return COUNTIES[self.county_number]


@dataclass(frozen=True)
class TrafikkdataDataset:
    """Points and their published hours: ``hours[point_id][utc_hour_start] -> HourValue``.

    An hour missing from ``hours[point_id]`` was never published (no node). ``corrected``
    lists the (point, hour) values version 2 changed relative to version 1; the lagging hours
    version 2 adds are not in it. Treat ``hours`` as read-only.
    """

    points: tuple[TrafikkdataPoint, ...]
    hours: dict[str, dict[datetime, HourValue]]
    start: datetime
    end: datetime
    version: int
    seed: int
    corrected: tuple[tuple[str, datetime], ...] = ()
    synthetic: bool = True

    def point(self, point_id: str) -> TrafikkdataPoint:
        """The point with this id (KeyError when unknown)."""
        for point in self.points:
            if point.id == point_id:
                return point
        raise KeyError(point_id)

    def nodes(
        self, point_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, HourValue]]:
        """The point's published hours overlapping ``[start, end)``, in time order."""
        hours = self.hours.get(point_id, {})
        return sorted((h, v) for h, v in hours.items() if h < end and h + HOUR > start)

    def to_json(self) -> str:
        """The dataset as JSON text (``from_json`` reads it back)."""
        return json.dumps(
            {
                "notice": SYNTHETIC_NOTICE,
                "synthetic": self.synthetic,
                "version": self.version,
                "seed": self.seed,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "points": [_point_to_json(p) for p in self.points],
                "hours": {
                    pid: [
                        [h.isoformat(), v.volume, v.coverage, v.shape]
                        for h, v in sorted(hs.items())
                    ]
                    for pid, hs in self.hours.items()
                },
                "corrected": [[pid, h.isoformat()] for pid, h in self.corrected],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> TrafikkdataDataset:
        """A dataset from ``to_json`` text."""
        raw = json.loads(text)
        return cls(
            points=tuple(_point_from_json(p) for p in raw["points"]),
            hours={
                pid: {
                    _utc(h): HourValue(vol, float(cov), _shape(shape)) for h, vol, cov, shape in hs
                }
                for pid, hs in raw["hours"].items()
            },
            start=_utc(raw["start"]),
            end=_utc(raw["end"]),
            version=int(raw["version"]),
            seed=int(raw["seed"]),
            corrected=tuple((pid, _utc(h)) for pid, h in raw["corrected"]),
            synthetic=bool(raw["synthetic"]),
        )


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return value.astimezone(UTC)


def _shape(text: str) -> Shape:
    for shape in get_args(Shape):
        if text == shape:
            return shape
    raise ValueError(f"unknown hour shape {text!r}")


def _point_to_json(point: TrafikkdataPoint) -> dict[str, Any]:
    times = {
        "first_data": point.first_data.isoformat(),
        "latest_data": point.latest_data.isoformat(),
    }
    return {**asdict(point), **times}


def _point_from_json(raw: dict[str, Any]) -> TrafikkdataPoint:
    if raw["traffic_type"] not in get_args(TrafficType):
        raise ValueError(f"unknown traffic type {raw['traffic_type']!r}")
    times = {"first_data": _utc(raw["first_data"]), "latest_data": _utc(raw["latest_data"])}
    return TrafikkdataPoint(**{**raw, **times})


def _utc_hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = start
    while hour < end:
        yield hour
        hour += HOUR


def _local_day_start(start: datetime, days: int) -> datetime:
    """UTC start of the local calendar day ``days`` after ``start`` (wall-clock arithmetic)."""
    return (start.astimezone(OSLO) + timedelta(days=days)).astimezone(UTC)


def _true_volumes(
    start: datetime, end: datetime, rng: random.Random
) -> dict[str, dict[datetime, int]]:
    """What each counter saw every hour of the range: profile x weather x noise."""
    weather: dict[date, float] = {}
    truth: dict[str, dict[datetime, int]] = {}
    for pid, *_, traffic_type, peak in _POINTS:
        truth[pid] = {}
        for hour in _utc_hours(start, end):
            local = hour.astimezone(OSLO)
            day = local.date()
            weather.setdefault(day, rng.uniform(0.6, 1.1))
            share = (_WEEKEND if local.weekday() >= 5 else _WEEKDAY)[local.hour]
            if traffic_type == "VEHICLE":
                share = max(share, _VEHICLE_NIGHT)
            truth[pid][hour] = round(peak * share * weather[day] * rng.uniform(0.8, 1.2))
    return truth


def _recount(volume: int, rng: random.Random) -> int:
    """A recount: up or down by 5–25 %, at least by one."""
    delta = max(1, round(volume * rng.uniform(0.05, 0.25)))
    return volume + delta if rng.random() < 0.5 else max(0, volume - delta)


def _degrade(
    hours: dict[str, dict[datetime, HourValue]],
    truth: dict[str, dict[datetime, int]],
    before: datetime,
    rng: random.Random,
) -> dict[tuple[str, datetime], HourValue]:
    """Put the API's data-quality quirks into ``hours``; return version 2's corrections.

    Quirks land on distinct busy hours of the Mjøsbyen bicycle points before ``before``: 5
    partial-coverage hours, 4 with
    ``volumeNumbers: null``, 3 with ``volume: null``. The ten corrections are 7 recounts, one
    hour of each null shape filled in and one partial hour raised to full coverage.
    """
    busy = [
        (pid, h)
        for pid, values in hours.items()
        if pid not in (VEHICLE_POINT, OUTSIDE_POINT, OSLO_POINT)
        for h, value in values.items()
        if h < before and value.volume is not None and value.volume >= 4
    ]
    picks = rng.sample(busy, 19)
    partial, null_numbers, null_volume, recounts = picks[:5], picks[5:9], picks[9:12], picks[12:]
    for pid, h in partial:
        coverage = rng.choice(_PARTIAL_COVERAGE)
        hours[pid][h] = HourValue(round(truth[pid][h] * coverage / 100), coverage)
    for pid, h in null_numbers:
        hours[pid][h] = HourValue(None, 0.0, "null_numbers")
    for pid, h in null_volume:
        hours[pid][h] = HourValue(None, 0.0, "null_volume")
    corrections = {(pid, h): HourValue(_recount(truth[pid][h], rng), 100.0) for pid, h in recounts}
    for pid, h in (null_numbers[0], null_volume[0], partial[0]):
        corrections[(pid, h)] = HourValue(truth[pid][h], 100.0)
    return corrections


def _points(
    start: datetime, hours: dict[str, dict[datetime, HourValue]], midweek_first: datetime
) -> tuple[TrafikkdataPoint, ...]:
    return tuple(
        TrafikkdataPoint(
            id=pid,
            name=f"{place}{' sykkel' if traffic_type == 'BICYCLE' else ''} (syntetisk)",
            lat=lat,
            lon=lon,
            municipality_number=kommune_nr,
            municipality_name=KOMMUNER[kommune_nr],
            county_number=kommune_nr // 100,
            traffic_type=traffic_type,
            first_data=(
                midweek_first
                if pid == MIDWEEK_POINT
                else _local_day_start(start, -(400 + 97 * index))
            ),
            latest_data=max(hours[pid]),
        )
        for index, (pid, place, lat, lon, kommune_nr, traffic_type, _) in enumerate(_POINTS)
    )


def generate(
    *, start: datetime, days: int = 7, seed: int = 7, version: int = 1
) -> TrafikkdataDataset:
    """A synthetic dataset of ``days`` local days from ``start`` (aware); version 1 or 2.

    Version 2 is version 1 with corrections applied and the lagging last hours delivered.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if days < 4:
        raise ValueError(f"days must be at least 4 (silent day and mid-week start), not {days}")
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, not {version}")
    rng = random.Random(seed)
    begin, end = start.astimezone(UTC), _local_day_start(start, days)
    truth = _true_volumes(begin, end, rng)
    silent_from, silent_to = _local_day_start(start, 2), _local_day_start(start, 3)
    local_midweek = start.astimezone(OSLO) + timedelta(days=days // 2)
    midweek_first = local_midweek.replace(hour=12, minute=0, second=0, microsecond=0)
    midweek_first = midweek_first.astimezone(UTC)
    hours = {
        pid: {
            h: HourValue(volume, 100.0)
            for h, volume in volumes.items()
            if not (pid == SILENT_POINT and silent_from <= h < silent_to)
            and not (pid == MIDWEEK_POINT and h < midweek_first)
        }
        for pid, volumes in truth.items()
    }
    lags = {pid: rng.choice(_LAGS) for pid in hours}
    corrections = _degrade(hours, truth, end - 6 * HOUR, rng)
    if version == 2:
        for (pid, h), value in corrections.items():
            hours[pid][h] = value
    else:
        for pid, values in hours.items():
            for h in [h for h in values if h >= end - lags[pid] * HOUR]:
                del values[h]
    return TrafikkdataDataset(
        points=_points(start, hours, midweek_first),
        hours=hours,
        start=begin,
        end=end,
        version=version,
        seed=seed,
        corrected=tuple(sorted(corrections)) if version == 2 else (),
    )


def mjosbyen_week(version: int = 1) -> TrafikkdataDataset:
    """The default demo and test week: 7 days from 2025-10-22 00:00 Europe/Oslo (crosses DST)."""
    return generate(start=datetime(2025, 10, 22, tzinfo=OSLO), days=7, seed=7, version=version)
