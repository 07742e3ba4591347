"""The cycling (and transit) index: a period against the same period a year earlier.

This follows Statens vegvesen's sykkelindeks / annual city index method, as issue 8 writes it:

* Hours are compared **date for date and hour for hour** (the rule is below). Only hours where a
  point has a value with coverage ≥ 95 % (:data:`MIN_COVERAGE`) in *both* years count.
* For each point *i*: ``B_i`` is the sum of its counted hours in the base year, ``C_i`` in the
  current year, and its index ``p_i = 100·(C_i/B_i − 1)``. A point takes part only with at least
  ``min_hours`` matched hours (the setting ``BYFLYT_INDEX_MIN_HOURS``) and ``B_i > 0``.
* The area (kommune or region) index is ``P = 100·(ΣC/ΣB − 1)``, with weights ``w_i = B_i/ΣB``.
* Spread: ``SD² = Σ w_i (p_i − P)² / (1 − Σ w_i²)``, ``SE = SD·√(Σ w_i²)``, and the 95 %
  confidence interval ``P ± t(0.975, n − 1)·SE`` over ``n`` points; none when ``n < 2``.
* Over several years the indices chain: ``Π(1 + P_y/100) − 1`` (:func:`chained_index`).

**What "a year earlier" means.** An hour is named by its Europe/Oslo wall clock: the local date,
the local hour, and which occurrence of that hour it is (Python's ``fold``: 1 only for the
repeated 02:00 of the autumn change). Its base hour is the hour with the same name on the same
calendar date a year earlier. So:

* 29 February has no partner on either side (2024-02-29 is not compared with anything, and a
  2028-02-29 would not be); 28 February and 1 March compare as usual.
* On the spring change the missing 02:00 simply has no partner; the other year's 02:00 of that
  date (a normal day there) is left out too. No hour is shifted to fill the gap.
* On the autumn change the first 02:00 (summer time) pairs with the other year's 02:00, and the
  repeated 02:00 (winter time) pairs only with another repeated 02:00 — which exists only if the
  other year changed clocks on the same date — so a 25-hour day adds no unmatched volume.

Because both years are named the same way, a day of the week is *not* matched: 2025-10-06 (a
Monday) is compared with 2024-10-06 (a Sunday), as "date for date" says. Over a month or a year
the weekday mix is nearly the same in both years.

**Transit** uses the same structure on the kommune-hour metric ``departures`` (served calls):
each kommune (for one mode) plays the part of a point. The store keeps transit by UTC hour, so
the service date is taken as the hour's local date (night trips after midnight belong to the
next date here).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from byflyt.clock import OSLO

MIN_COVERAGE = 95.0
"""Coverage (percent) an hour needs in both years to count."""
CONFIDENCE = 0.95
TRANSIT_METRIC = "departures"
"""The kommune-hour metric the transit index compares."""

HourKey = tuple[date, int, int]
"""An hour's Europe/Oslo name: (local date, local hour, fold)."""

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_YTD = re.compile(r"^ytd(?::(\d{4}-\d{2}-\d{2}))?$")


# -- periods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """Europe/Oslo calendar dates ``[start, end)`` and a label such as ``2025-10``."""

    label: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"period {self.label}: {self.start} is not before {self.end}")

    def contains(self, day: date) -> bool:
        """Whether the local date ``day`` lies in the period."""
        return self.start <= day < self.end

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as aware UTC instants ``[start, end)``."""
        return local_midnight(self.start), local_midnight(self.end)

    def base_dates(self) -> tuple[date, date]:
        """The base year's local dates ``[start, end)``: the same dates a year earlier."""
        return _year_before(self.start), _year_before(self.end)

    def base_bounds(self) -> tuple[datetime, datetime]:
        """UTC instants that hold every base-year hour of the period (a year earlier)."""
        start, end = self.base_dates()
        return local_midnight(start), local_midnight(end)

    def describe(self) -> str:
        """``2025-10-01..2025-10-31 vs 2024-10-01..2024-10-31`` (inclusive local dates)."""
        base_start, base_end = self.base_dates()
        last, base_last = self.end - timedelta(days=1), base_end - timedelta(days=1)
        return f"{self.start}..{last} vs {base_start}..{base_last}"


def local_midnight(day: date) -> datetime:
    """The UTC instant of 00:00 Europe/Oslo on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=OSLO).astimezone(UTC)


def _year_before(day: date) -> date:
    # A bound on 29 February moves to 1 March, so the base range still covers the period.
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return date(day.year - 1, 3, 1)


def parse_period(text: str, today: date | None = None) -> Period:
    """A period from ``2025-10`` (a month), ``2025`` (a year), ``ytd`` or ``ytd:2025-10-15``.

    ``ytd`` runs from 1 January to the end of yesterday (Europe/Oslo; today is not complete),
    ``ytd:DATE`` through ``DATE``, inclusive. Raises :class:`ValueError` fit for the user.
    """
    value = text.strip().lower()
    if m := _MONTH.match(value):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r}: month {month} is not 01–12")
        start = date(year, month, 1)
        end = date(year + (month == 12), month % 12 + 1, 1)
        return Period(f"{year:04d}-{month:02d}", start, end)
    if m := _YEAR.match(value):
        year = int(m[1])
        return Period(f"{year:04d}", date(year, 1, 1), date(year + 1, 1, 1))
    if m := _YTD.match(value):
        if m[1]:
            try:
                last = date.fromisoformat(m[1])
            except ValueError:
                raise ValueError(f"{text!r}: {m[1]} is not a date") from None
        else:
            now = today if today is not None else datetime.now(OSLO).date()
            last = now - timedelta(days=1)
            if last.year != now.year:
                raise ValueError(
                    f"{text!r}: on 1 January the year so far is empty; use {last.year}"
                )
        return Period(
            f"{last.year:04d}-01-01..{last.isoformat()}",
            date(last.year, 1, 1),
            last + timedelta(days=1),
        )
    raise ValueError(
        f"{text!r} is not a period: use a month (2025-10), a year (2025), ytd or ytd:2025-10-15"
    )


@lru_cache(maxsize=65_536)  # an index names each hour once per point: memoise
def hour_key(hour: datetime) -> HourKey:
    """The Europe/Oslo name of the UTC hour starting at ``hour``."""
    local = hour.astimezone(OSLO)
    return (local.date(), local.hour, local.fold)


@lru_cache(maxsize=65_536)
def base_hour_key(hour: datetime) -> HourKey | None:
    """The name of the current-year hour that the base-year ``hour`` is compared with.

    None for an hour on 29 February, which has no date a year later.
    """
    day, clock, fold = hour_key(hour)
    try:
        return (day.replace(year=day.year + 1), clock, fold)
    except ValueError:
        return None


# -- the computation -------------------------------------------------------------------------
@dataclass(frozen=True)
class Count:
    """One point's value for one UTC hour (``volume`` None: no count)."""

    point: str
    hour_start: datetime
    volume: float | None
    coverage: float


@dataclass(frozen=True)
class PointIndex:
    """One point's matched totals: ``base`` is B_i, ``current`` C_i."""

    point: str
    matched_hours: int
    base: float
    current: float

    @property
    def index(self) -> float | None:
        """``p_i = 100·(C_i/B_i − 1)``; None when ``B_i`` is 0."""
        if self.base <= 0:
            return None
        return 100.0 * (self.current / self.base - 1.0)


@dataclass(frozen=True)
class Exclusion:
    """A point left out of the area index, and why (``reason`` is a key, see :data:`REASONS`)."""

    point: str
    reason: str
    matched_hours: int


REASONS = {
    "few_hours": "fewer matched hours than the minimum",
    "zero_base": "no volume in the base year's matched hours",
}
"""Why a point can be excluded."""


@dataclass(frozen=True)
class AreaIndex:
    """The area index over the points that take part, with its spread and confidence interval.

    ``index`` is None when no point takes part; ``sd``, ``se`` and the interval are None when
    fewer than two do.
    """

    points: tuple[PointIndex, ...]
    excluded: tuple[Exclusion, ...]
    index: float | None
    sd: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    t: float | None
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """How many points take part."""
        return len(self.points)

    @property
    def matched_hours(self) -> int:
        """Matched hours summed over the points that take part."""
        return sum(p.matched_hours for p in self.points)

    @property
    def base(self) -> float:
        """ΣB over the points that take part."""
        return sum(p.base for p in self.points)

    @property
    def current(self) -> float:
        """ΣC over the points that take part."""
        return sum(p.current for p in self.points)


def match_hours(
    current: Iterable[Count],
    base: Iterable[Count],
    period: Period,
    *,
    min_coverage: float = MIN_COVERAGE,
) -> list[PointIndex]:
    """Each point's B_i and C_i over the period's hours that count in both years.

    Every point seen in either year is returned (with 0 matched hours if none match), sorted
    by point. A count with no volume or with coverage below ``min_coverage`` does not count.
    """
    # Every point seen is reported, even one with nothing that counts.
    now: dict[str, dict[HourKey, float]] = {}
    before: dict[str, dict[HourKey, float]] = {}
    for c in current:
        key = hour_key(c.hour_start)
        now.setdefault(c.point, {})
        if c.volume is not None and c.coverage >= min_coverage and period.contains(key[0]):
            now[c.point][key] = float(c.volume)
    for c in base:
        shifted = base_hour_key(c.hour_start)
        before.setdefault(c.point, {})
        if (
            shifted is not None
            and c.volume is not None
            and c.coverage >= min_coverage
            and period.contains(shifted[0])
        ):
            before[c.point][shifted] = float(c.volume)
    result = []
    for point in sorted(set(now) | set(before)):
        this, last = now.get(point, {}), before.get(point, {})
        keys = this.keys() & last.keys()
        result.append(
            PointIndex(
                point=point,
                matched_hours=len(keys),
                base=sum(last[k] for k in keys),
                current=sum(this[k] for k in keys),
            )
        )
    return result


def _student_t_quantile(q: float, df: int) -> float:
    """Student's t quantile, from scipy.

    Imported here: a worker never computes an index and should not pay scipy's start-up
    time (about a second) and memory (about 60 MB).
    """
    from scipy.stats import t as student_t

    return float(student_t.ppf(q, df))


def area_index(
    points: Sequence[PointIndex], *, min_hours: int, confidence: float = CONFIDENCE
) -> AreaIndex:
    """The area index over ``points``; those short of ``min_hours`` or with B_i = 0 drop out."""
    taking: list[PointIndex] = []
    excluded: list[Exclusion] = []
    for p in points:
        if p.matched_hours < min_hours:
            excluded.append(Exclusion(p.point, "few_hours", p.matched_hours))
        elif p.base <= 0:
            excluded.append(Exclusion(p.point, "zero_base", p.matched_hours))
        else:
            taking.append(p)
    total_base = sum(p.base for p in taking)
    if not taking:
        return AreaIndex((), tuple(excluded), None, None, None, None, None, None)
    index = 100.0 * (sum(p.current for p in taking) / total_base - 1.0)
    weights = {p.point: p.base / total_base for p in taking}
    if len(taking) < 2:
        return AreaIndex(
            tuple(taking), tuple(excluded), index, None, None, None, None, None, weights
        )
    sum_w2 = sum(w * w for w in weights.values())
    variance = sum(weights[p.point] * ((p.index or 0.0) - index) ** 2 for p in taking) / (
        1.0 - sum_w2
    )
    sd = math.sqrt(variance)
    se = sd * math.sqrt(sum_w2)
    t = _student_t_quantile(1.0 - (1.0 - confidence) / 2.0, len(taking) - 1)
    return AreaIndex(
        points=tuple(taking),
        excluded=tuple(excluded),
        index=index,
        sd=sd,
        se=se,
        ci_low=index - t * se,
        ci_high=index + t * se,
        t=t,
        weights=weights,
    )


def chained_index(indices: Iterable[float]) -> float:
    """Year-on-year indices (percent) chained: ``100·(Π(1 + P_y/100) − 1)``."""
    product = 1.0
    for value in indices:
        product *= 1.0 + value / 100.0
    return 100.0 * (product - 1.0)


def compute_index(
    current: Iterable[Count],
    base: Iterable[Count],
    period: Period,
    *,
    min_hours: int,
    min_coverage: float = MIN_COVERAGE,
) -> AreaIndex:
    """Match the two years' counts and compute the area index in one step."""
    matched = match_hours(current, base, period, min_coverage=min_coverage)
    return area_index(matched, min_hours=min_hours)
