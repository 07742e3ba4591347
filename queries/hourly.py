"""Hourly values and Europe/Oslo daily totals, in the record shapes every caller prints.

``query hourly`` CSV/JSON, ``/api/v1/hourly`` and the live page use :func:`hourly_record`;
``query daily`` and the report's day sums use :func:`daily_totals` (a day is 23, 24 or 25
hours; an hour without a value lowers the day's coverage, never its value silently).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from byflyt.clock import OSLO
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.kommuner import kommune_name
from byflyt.models.volumes import HourlyVolume

HOURLY_FIELDS = (
    "kommune_nr",
    "kommune",
    "mode",
    "metric",
    "hour_start",
    "value",
    "coverage",
    "n_sources",
)
"""The columns of ``query hourly`` CSV and JSON (a contract: scripts read them by name)."""
DAILY_FIELDS = ("kommune_nr", "kommune", "mode", "metric", "date", "value", "coverage", "hours")
"""The columns of ``query daily`` CSV and JSON."""


def number(value: float) -> int | float:
    """``153.0`` as ``153``; fractions stay as they are."""
    return int(value) if float(value).is_integer() else value


def hourly_record(row: HourlyVolume) -> dict[str, Any]:
    """One ``query hourly`` row with the contract's fields, in the contract's order."""
    return {
        "kommune_nr": row.kommune_nr,
        "kommune": kommune_name(row.kommune_nr),
        "mode": row.mode,
        "metric": row.metric,
        "hour_start": iso_z(row.hour_start),
        "value": number(row.value),
        "coverage": number(round(row.coverage, 2)),
        "n_sources": row.n_sources,
    }


@dataclass(frozen=True)
class DailyTotal:
    """A kommune's total of one metric over one Europe/Oslo day.

    ``hours`` counts the hours with a value; ``coverage`` is the mean hourly coverage over
    every hour of the day inside the queried range (23, 24 or 25 for whole days), an hour
    without a value counting 0: missing hours lower the coverage, never the value silently.
    """

    kommune_nr: str
    mode: str
    metric: str
    date: date
    value: float
    coverage: float
    hours: int

    def record(self) -> dict[str, Any]:
        """The row with :data:`DAILY_FIELDS`."""
        return {
            "kommune_nr": self.kommune_nr,
            "kommune": kommune_name(self.kommune_nr),
            "mode": self.mode,
            "metric": self.metric,
            "date": self.date.isoformat(),
            "value": number(self.value),
            "coverage": number(self.coverage),
            "hours": self.hours,
        }


def local_day_hours(start: datetime, end: datetime) -> Counter[date]:
    """How many UTC hours ``h`` with ``start <= h < end`` fall on each Europe/Oslo date."""
    hour = hour_floor(start)
    if hour < start:
        hour += timedelta(hours=1)
    counts: Counter[date] = Counter()
    while hour < end:
        counts[hour.astimezone(OSLO).date()] += 1
        hour += timedelta(hours=1)
    return counts


def daily_totals(rows: Iterable[HourlyVolume], start: datetime, end: datetime) -> list[DailyTotal]:
    """Sum hourly rows (all within ``[start, end)``) into Europe/Oslo days."""
    day_hours = local_day_hours(start, end)
    groups: dict[tuple[str, str, str, date], list[HourlyVolume]] = defaultdict(list)
    for row in rows:
        day = row.hour_start.astimezone(OSLO).date()
        groups[(row.kommune_nr, row.mode, row.metric, day)].append(row)
    return [
        DailyTotal(
            kommune_nr=kommune_nr,
            mode=mode,
            metric=metric,
            date=day,
            value=sum(r.value for r in members),
            coverage=round(sum(r.coverage for r in members) / day_hours[day], 2),
            hours=len(members),
        )
        for (kommune_nr, mode, metric, day), members in sorted(groups.items())
    ]
