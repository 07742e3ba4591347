"""The index read from the store: which hours of which points, for a mode, area and period.

Counters (``bicycle``, ``pedestrian``) come from ``point_hourly``: each counting point is a point
of the index, keyed ``source:point_id``. Transit modes come from ``kommune_hourly`` metric
:data:`~byflyt.queries.index.TRANSIT_METRIC`: each kommune is a point, keyed by its number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from byflyt.models.base import COUNTER_MODES
from byflyt.models.kommuner import kommune_name
from byflyt.queries.index import (
    MIN_COVERAGE,
    TRANSIT_METRIC,
    AreaIndex,
    Count,
    Period,
    PointIndex,
    area_index,
    match_hours,
)
from byflyt.store import Store

"""Modes counted at points (``point_hourly``); every other mode is transit (``kommune_hourly``)."""


def round_or_none(value: float | None, digits: int) -> float | None:
    """``value`` rounded to ``digits`` decimals; missing stays missing (never 0)."""
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class IndexPoint:
    """Who a point of the index is: a counter, or a kommune for transit."""

    key: str
    source: str
    point_id: str
    name: str
    kommune_nr: str


@dataclass(frozen=True)
class IndexResult:
    """An area's index, with every point considered (taking part or not) and what they are."""

    mode: str
    period: Period
    kommuner: tuple[str, ...]
    min_hours: int
    min_coverage: float
    matched: tuple[PointIndex, ...]
    points: dict[str, IndexPoint]
    area: AreaIndex

    def for_kommune(self, kommune_nr: str) -> AreaIndex:
        """The index of one kommune's points alone."""
        mine = [p for p in self.matched if self.points[p.point].kommune_nr == kommune_nr]
        return area_index(mine, min_hours=self.min_hours)

    def status(self, key: str) -> str:
        """``included`` or the exclusion reason of a point."""
        for exclusion in self.area.excluded:
            if exclusion.point == key:
                return exclusion.reason
        return "included"


def load_index(
    store: Store,
    *,
    mode: str,
    kommuner: Sequence[str],
    period: Period,
    min_hours: int,
    min_coverage: float = MIN_COVERAGE,
) -> IndexResult:
    """The index of ``kommuner`` (together) for ``mode`` over ``period`` from ``store``."""
    part = matched_points(
        store, mode=mode, kommuner=kommuner, period=period, min_coverage=min_coverage
    )
    return assemble_index(
        store,
        mode=mode,
        kommuner=kommuner,
        period=period,
        min_hours=min_hours,
        min_coverage=min_coverage,
        parts=[part],
    )


@dataclass(frozen=True)
class MatchedPoints:
    """Each point's matched totals (the costly part of an index), and each point's kommune."""

    matched: tuple[PointIndex, ...]
    kommuner: dict[str, str]


def matched_points(
    store: Store,
    *,
    mode: str,
    kommuner: Sequence[str],
    period: Period,
    min_coverage: float = MIN_COVERAGE,
) -> MatchedPoints:
    """Every point of ``kommuner`` seen in ``period`` or its base, with its B_i and C_i.

    A point's totals depend on its own hours only, so the points of several kommuner are the
    union of each kommune's (``byflyt serve`` reuses them per kommune).
    """
    start, end = period.bounds()
    base_start, base_end = period.base_bounds()
    chosen = list(kommuner)
    if mode in COUNTER_MODES:
        current, seen = _counter_counts(store, mode, chosen, start, end)
        base, base_seen = _counter_counts(store, mode, chosen, base_start, base_end)
        seen = {**base_seen, **seen}
    else:
        current = _transit_counts(store, mode, chosen, start, end)
        base = _transit_counts(store, mode, chosen, base_start, base_end)
        seen = {c.point: c.point for c in (*current, *base)}
    matched = match_hours(current, base, period, min_coverage=min_coverage)
    return MatchedPoints(tuple(matched), seen)


def assemble_index(
    store: Store,
    *,
    mode: str,
    kommuner: Sequence[str],
    period: Period,
    min_hours: int,
    min_coverage: float,
    parts: Sequence[MatchedPoints],
) -> IndexResult:
    """The index of ``kommuner`` from the matched points of ``parts`` (which cover them)."""
    chosen = list(kommuner)
    matched = sorted((p for part in parts for p in part.matched), key=lambda p: p.point)
    seen = {key: nr for part in parts for key, nr in part.kommuner.items()}
    if mode in COUNTER_MODES:
        stored = {
            f"{p.source}:{p.point_id}": p for p in store.query_points(kommuner=chosen, mode=mode)
        }
        info = {}
        for key, kommune_nr in seen.items():
            meta = stored.get(key)
            source, point_id = key.split(":", 1)
            info[key] = IndexPoint(
                key=key,
                source=source,
                point_id=point_id,
                name=meta.name if meta is not None else "",
                kommune_nr=meta.kommune_nr if meta is not None else kommune_nr,
            )
    else:
        info = {k: IndexPoint(k, "transit", k, f"{kommune_name(k)} ({mode})", k) for k in seen}
    return IndexResult(
        mode=mode,
        period=period,
        kommuner=tuple(chosen),
        min_hours=min_hours,
        min_coverage=min_coverage,
        matched=tuple(matched),
        points=info,
        area=area_index(matched, min_hours=min_hours),
    )


def _counter_counts(
    store: Store, mode: str, kommuner: list[str], start: datetime, end: datetime
) -> tuple[list[Count], dict[str, str]]:
    rows = store.query_point_hourly(kommuner=kommuner, mode=mode, start=start, end=end)
    counts = [Count(f"{r.source}:{r.point_id}", r.hour_start, r.volume, r.coverage) for r in rows]
    return counts, {f"{r.source}:{r.point_id}": r.kommune_nr for r in rows}


def _transit_counts(
    store: Store, mode: str, kommuner: list[str], start: datetime, end: datetime
) -> list[Count]:
    rows = store.query_hourly(
        kommuner=kommuner, mode=mode, metric=TRANSIT_METRIC, start=start, end=end
    )
    return [Count(r.kommune_nr, r.hour_start, r.value, r.coverage) for r in rows]
