"""Kommune-hours and flows: what every aggregation writes and the query layer reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Unpack

from sqlalchemy import func, select

from byflyt.models.transit import FlowHour
from byflyt.models.volumes import HourlyVolume
from byflyt.store.base import StoreBase
from byflyt.store.rows import (
    VolumeKey,
    latest_by_key,
    unique_keys,
    volume_row,
)
from byflyt.store.schema import (
    flows_hourly,
    kommune_hourly,
)

# Relative: mypy finds ``store.filters`` by this name only (``byflyt.store`` is the installed
# package's), and ``Unpack`` needs to see the ``TypedDict``.
from .filters import (
    HourlyFilters,
    aggregate_time,
    filtered,
    hourly_select,
    strings,
    where_hourly,
)


class VolumesStore(StoreBase):
    """``kommune_hourly`` and ``flows_hourly``."""

    def upsert_kommune_hourly(self, rows: Iterable[HourlyVolume]) -> int:
        """Insert or replace kommune-hour values; return how many were written."""
        now = datetime.now(UTC)
        return self._write_rows(kommune_hourly, (volume_row(r, now) for r in rows))

    def delete_kommune_hourly(self, keys: Iterable[VolumeKey]) -> int:
        """Delete kommune-hours by ``(kommune_nr, mode, metric, hour_start)``; return how many."""
        unique = unique_keys(keys)
        if not unique:
            return 0
        with self._write(kommune_hourly.name) as conn:
            deleted = self._delete_volumes(conn, unique)
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(deleted)
        return deleted

    def write_hourly(self, upserts: Iterable[HourlyVolume], deletes: Iterable[VolumeKey]) -> None:
        """Apply a batch of kommune-hour deletes and upserts in one transaction (all or none).

        Deletes go first, so a key given in both ends up with the upserted value.
        """
        now = datetime.now(UTC)
        rows = latest_by_key(kommune_hourly, (volume_row(r, now) for r in upserts))
        gone = unique_keys(deletes)
        if not rows and not gone:
            return
        with self._write(kommune_hourly.name) as conn:
            deleted = self._delete_volumes(conn, gone)
            self._upsert(conn, kommune_hourly, rows)
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(len(rows) + deleted)

    def write_transit(self, hourly: Iterable[HourlyVolume], flows: Iterable[FlowHour]) -> None:
        """Upsert transit kommune-hours and kommune-to-kommune flows in one transaction."""
        now = datetime.now(UTC)
        rows = latest_by_key(kommune_hourly, (volume_row(r, now) for r in hourly))
        flow_rows = latest_by_key(flows_hourly, (f.model_dump() for f in flows))
        if not rows and not flow_rows:
            return
        with self._write(kommune_hourly.name) as conn:
            self._upsert(conn, kommune_hourly, rows)
            self._upsert(conn, flows_hourly, flow_rows)
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(len(rows))
        self.metrics.store_writes.labels(table=flows_hourly.name).inc(len(flow_rows))

    def query_hourly(self, **filters: Unpack[HourlyFilters]) -> list[HourlyVolume]:
        """Kommune-hours with ``start <= hour_start < end``, by kommune, mode, metric, hour.

        ``None`` means no filter; an empty ``kommuner`` matches nothing.
        """
        return [HourlyVolume(**row._mapping) for row in self._read(hourly_select(**filters))]

    def query_hourly_page(
        self, *, limit: int, offset: int = 0, **filters: Unpack[HourlyFilters]
    ) -> tuple[list[HourlyVolume], int]:
        """One page of :meth:`query_hourly` (same filters and order) and the total row count."""
        counted = where_hourly(select(func.count()), **filters)
        query = hourly_select(**filters)
        rows = self._read(query.limit(limit).offset(offset))
        total = int(self._read(counted)[0][0])
        return [HourlyVolume(**row._mapping) for row in rows], total

    def total_hourly(self, **filters: Unpack[HourlyFilters]) -> list[HourlyTotal]:
        """Kommune-hours with ``start <= hour_start < end`` summed per kommune, mode and metric.

        Summed in the database, so a year of transit metrics never crosses the wire hour by hour.
        """
        c = kommune_hourly.c
        query = (
            select(
                c.kommune_nr,
                c.mode,
                c.metric,
                func.sum(c.value).label("value"),
                func.sum(c.coverage).label("coverage_sum"),
                func.count().label("hours"),
            )
            .group_by(c.kommune_nr, c.mode, c.metric)
            .order_by(c.kommune_nr, c.mode, c.metric)
        )
        query = where_hourly(query, **filters)
        return [
            HourlyTotal(
                kommune_nr=row.kommune_nr,
                mode=row.mode,
                metric=row.metric,
                value=float(row.value),
                coverage_sum=float(row.coverage_sum),
                hours=int(row.hours),
            )
            for row in self._read(query)
        ]

    def query_flows(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[FlowHour]:
        """Flows with either end in ``kommuner`` (None: all), ``start <= hour_start < end``."""
        c = flows_hourly.c
        query = select(
            c.from_kommune, c.to_kommune, c.mode, c.hour_start, c.trips, c.occupancy
        ).order_by(c.hour_start, c.from_kommune, c.to_kommune, c.mode)
        if kommuner is not None:
            chosen = strings(kommuner, "kommuner")
            query = query.where(c.from_kommune.in_(chosen) | c.to_kommune.in_(chosen))
        query = filtered(query, flows_hourly, None, mode, start, end)
        return [FlowHour(**row._mapping) for row in self._read(query)]

    def modes(self, *, kommuner: Sequence[str] | None = None) -> list[str]:
        """The modes that have kommune-hours (for ``kommuner``), sorted."""
        query = filtered(select(kommune_hourly.c.mode).distinct(), kommune_hourly, kommuner)
        return sorted(str(row[0]) for row in self._read(query))

    def newest_hour(
        self, *, kommuner: Sequence[str] | None = None, mode: str | None = None
    ) -> datetime | None:
        """The latest ``hour_start`` in the kommune-hours (None when there are none)."""
        newest = select(func.max(kommune_hourly.c.hour_start))
        query = filtered(newest, kommune_hourly, kommuner, mode)
        return aggregate_time(self._read(query)[0][0])


@dataclass(frozen=True)
class HourlyTotal:
    """A kommune's sum of one metric over a range: value, coverage summed, hours with a value."""

    kommune_nr: str
    mode: str
    metric: str
    value: float
    coverage_sum: float
    hours: int
