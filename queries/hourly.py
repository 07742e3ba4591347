"""Hourly values and Europe/Oslo daily totals, in the record shapes every caller prints.

``query hourly`` CSV/JSON, ``/api/v1/hourly`` and the live page use :func:`hourly_record`;
``query daily`` uses :func:`daily_totals` and the report's months :func:`local_sums`, the one
Europe/Oslo day rule (a day is 23, 24 or 25 hours; an hour without a value lowers the day's
coverage, never its value silently).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
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


@dataclass(frozen=True)
class LocalSum:
    """Hourly values summed over one Europe/Oslo day (or month): the parts of every total.

    ``value`` and ``coverage_sum`` add up the rows; ``hours`` counts the rows (hours with a
    value); ``period_hours`` counts every hour of the day or month inside the range asked for
    (23, 24 or 25 a whole day), with a value or not: the denominator of a mean coverage.
    """

    value: float
    coverage_sum: float
    hours: int
    period_hours: int


def local_sums(
    rows: Iterable[HourlyVolume],
    start: datetime,
    end: datetime,
    period: Callable[[date], date] | None = None,
) -> dict[tuple[str, str, str, date], LocalSum]:
    """Sum hourly rows per kommune, mode, metric and Europe/Oslo day: the one day rule.

    ``period`` maps a local date to the first date of its period to sum months (or weeks)
    instead of days. ``start`` and ``end`` bound the hours counted in ``period_hours``.
    """
    group = period or (lambda day: day)
    period_hours: Counter[date] = Counter()
    for day, n in local_day_hours(start, end).items():
        period_hours[group(day)] += n
    groups: dict[tuple[str, str, str, date], list[HourlyVolume]] = defaultdict(list)
    for row in rows:
        first = group(row.hour_start.astimezone(OSLO).date())
        groups[(row.kommune_nr, row.mode, row.metric, first)].append(row)
    return {
        key: LocalSum(
            value=sum(r.value for r in members),
            coverage_sum=sum(r.coverage for r in members),
            hours=len(members),
            period_hours=period_hours[key[3]],
        )
        for key, members in sorted(groups.items())
    }


def daily_totals(rows: Iterable[HourlyVolume], start: datetime, end: datetime) -> list[DailyTotal]:
    """Sum hourly rows (all within ``[start, end)``) into Europe/Oslo days."""
    return [
        DailyTotal(
            kommune_nr=kommune_nr,
            mode=mode,
            metric=metric,
            date=day,
            value=total.value,
            coverage=round(total.coverage_sum / total.period_hours, 2),
            hours=total.hours,
        )
        for (kommune_nr, mode, metric, day), total in local_sums(rows, start, end).items()
    ]
