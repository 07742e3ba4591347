"""The WHERE clauses every store query shares (kommuner, mode, half-open hour range)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Select, Table, select

from byflyt.store.schema import (
    kommune_hourly,
    to_utc,
)


def aggregate_time(value: object) -> datetime | None:
    """An aggregate (``MAX``) of a time column as an aware UTC datetime, or None."""
    # MAX() over a UtcDateTime column: SQLite may hand back the stored text.
    if value is None:
        return None
    return to_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def strings(values: Sequence[str], name: str) -> list[str]:
    """``values`` as a list; a bare string (a likely slip for a list of one) is a TypeError."""
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of strings, not the string {values!r}")
    return list(values)


class HourlyFilters(TypedDict, total=False):
    """The filters of the kommune-hour queries; one left out (or None) does not filter."""

    kommuner: Sequence[str] | None
    mode: str | None
    metric: str | None
    start: datetime | None
    end: datetime | None


def hourly_select(**filters: Unpack[HourlyFilters]) -> Select[*tuple[Any, ...]]:
    """Kommune-hours as :class:`HourlyVolume` fields, in the order every caller shows them."""
    c = kommune_hourly.c
    query = select(
        c.kommune_nr, c.mode, c.metric, c.hour_start, c.value, c.coverage, c.n_sources
    ).order_by(c.kommune_nr, c.mode, c.metric, c.hour_start)
    return where_hourly(query, **filters)


def where_hourly(
    query: Select[*tuple[Any, ...]], **filters: Unpack[HourlyFilters]
) -> Select[*tuple[Any, ...]]:
    """:func:`filtered` on ``kommune_hourly``, and its metric."""
    if unknown := filters.keys() - HourlyFilters.__optional_keys__:  # a typo must not widen
        raise TypeError(f"unexpected filter(s): {', '.join(sorted(unknown))}")
    kommuner, mode, metric = filters.get("kommuner"), filters.get("mode"), filters.get("metric")
    start, end = filters.get("start"), filters.get("end")
    query = filtered(query, kommune_hourly, kommuner, mode, start, end)
    return query if metric is None else query.where(kommune_hourly.c.metric == metric)


def filtered(
    query: Select[*tuple[Any, ...]],
    table: Table,
    kommuner: Sequence[str] | None,
    mode: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select[*tuple[Any, ...]]:
    """The filters every query shares (None: none); ``start``/``end`` bound ``hour_start``."""
    if kommuner is not None:
        query = query.where(table.c.kommune_nr.in_(strings(kommuner, "kommuner")))
    if mode is not None:
        query = query.where(table.c.mode == mode)
    if start is not None:
        query = query.where(table.c.hour_start >= to_utc(start))
    if end is not None:
        query = query.where(table.c.hour_start < to_utc(end))
    return query


def by_points(
    query: Select[*tuple[Any, ...]],
    table: Table,
    source: str | None,
    point_ids: Sequence[str] | None,
) -> Select[*tuple[Any, ...]]:
    """``query`` on ``table`` kept to one ``source`` and to ``point_ids`` (None: no filter)."""
    if source is not None:
        query = query.where(table.c.source == source)
    if point_ids is not None:
        query = query.where(table.c.point_id.in_(strings(point_ids, "point_ids")))
    return query
