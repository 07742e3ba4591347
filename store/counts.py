"""Counter points, their point-hours and fetched windows: what the cycling agents write and read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, or_, select

from byflyt.models.base import hour_floor
from byflyt.models.counts import CountObservation, CountPoint, FetchedWindow
from byflyt.models.volumes import VolumeFields
from byflyt.store.base import StoreBase
from byflyt.store.filters import by_points, filtered
from byflyt.store.rows import (
    POINT_FIELDS,
    Fetched,
    PointHour,
    VolumeKey,
    latest_by_key,
    unique_keys,
    volume_row,
)
from byflyt.store.schema import (
    fetched_windows,
    format_utc,
    kommune_hourly,
    point_hourly,
    to_utc,
)
from byflyt.store.schema import points as points_table

_POINT_HOUR_FIELDS = tuple(f.name for f in fields(PointHour))
_POINT_HOUR_COLUMNS = [c.name for c in point_hourly.c]
_HOUR = timedelta(hours=1)
_RUNS_A_QUERY = 100
"""Runs of consecutive hours read by one query of :meth:`CountsStore.point_hours_of`."""
_SQLITE_EPOCH_HOUR_TEXT = "strftime('%Y-%m-%dT%H:%M:%S.000000Z', {}, 'unixepoch')"
"""SQL of :func:`format_utc`'s text of a whole second given in epoch seconds."""
_SQLITE_POINT_HOUR_SELECT = [
    _SQLITE_EPOCH_HOUR_TEXT.format("column3") if i == 2 else f"column{i + 1}"
    for i in range(len(_POINT_HOUR_COLUMNS) - 1)
] + ["?"]
"""Each ``point_hourly`` column's SQL from a point-hour tuple (the hour as epoch seconds),
``updated_at`` bound once a write."""
PointHourValues = tuple[str, str, int, str, str, int | None, float]
"""A ``point_hourly`` row's values but ``updated_at``, in the table's column order; the hour
as UTC epoch seconds (a whole hour)."""


class CountsStore(StoreBase):
    """``points``, ``point_hourly`` and ``fetched_windows``."""

    def upsert_points(self, points: Iterable[CountPoint]) -> int:
        """Insert or replace counting points; return how many distinct points were written."""
        now = datetime.now(UTC)
        return self._write_rows(
            points_table,
            ({**p.model_dump(include=POINT_FIELDS), "updated_at": now} for p in points),
        )

    def upsert_point_hourly(self, observations: Iterable[CountObservation]) -> int:
        """Store each point's latest observation per UTC hour (key: source, point, hour).

        An observation shorter than an hour lands in the hour its interval starts in, and the
        last one given for an hour replaces earlier ones. Returns the number of point-hours.
        """
        now = datetime.now(UTC)
        rows = (
            {
                "source": o.source,
                "point_id": o.point_id,
                "hour_start": hour_floor(o.start),
                "kommune_nr": o.kommune_nr,
                "mode": o.mode,
                "volume": o.volume,
                "coverage": o.coverage,
                "updated_at": now,
            }
            for o in observations
        )
        return self._write_rows(point_hourly, rows)

    def write_counts(
        self,
        points: Iterable[CountPoint],
        point_hours: Iterable[PointHourValues],
        upserts: Iterable[VolumeFields],
        deletes: Iterable[VolumeKey],
    ) -> None:
        """One cycling flush in one transaction: points, point-hours, kommune-hours.

        ``point_hours`` are ``point_hourly`` values as tuples (``source, point_id, hour_start,
        kommune_nr, mode, volume, coverage``, the hour in UTC epoch seconds; ``updated_at`` is
        set here), in the order counted: a key given more than once keeps the last. A flush
        writes tens of thousands: a tuple costs a fraction of a row mapping, and each distinct
        hour is converted to what the driver stores once, not once a row.
        Deletes of kommune-hours go first, so a key given in both ends up with the upserted
        value.
        """
        now = datetime.now(UTC)
        point_rows = latest_by_key(
            points_table,
            ({**p.model_dump(include=POINT_FIELDS), "updated_at": now} for p in points),
        )
        # As given: SQLite writes them in that order, PostgreSQL's COPY upsert in key order.
        given = list(point_hours)
        rows = latest_by_key(kommune_hourly, (volume_row(r, now) for r in upserts))
        gone = unique_keys(deletes)
        if not (point_rows or given or rows or gone):
            return
        with self._write(kommune_hourly.name) as conn:
            self._upsert(conn, points_table, point_rows)
            if given:
                self._write_point_hours(conn, given, now)
            deleted = self._delete_volumes(conn, gone)
            self._upsert(conn, kommune_hourly, rows)
        self.metrics.store_writes.labels(table=points_table.name).inc(len(point_rows))
        self.metrics.store_writes.labels(table=point_hourly.name).inc(len(given))
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(len(rows) + deleted)

    def _write_point_hours(
        self, conn: Connection, given: list[PointHourValues], now: datetime
    ) -> None:
        """Upsert point-hour tuples (the hour in epoch seconds), ``updated_at`` = ``now``.

        On SQLite the rows go as given, with no Python work a row: SQL turns the epoch hour
        into :func:`format_utc`'s text (a whole hour has no fraction) while the writer
        thread runs without the GIL. On PostgreSQL each distinct hour becomes a datetime
        once, for the ``COPY``.
        """
        if self._dialect == "sqlite":
            self._values_upsert(
                conn,
                point_hourly,
                _POINT_HOUR_COLUMNS,
                given,
                select=_SQLITE_POINT_HOUR_SELECT,
                bind=(format_utc(now),),
            )
            return
        convert = self._time_converter()
        stamp = convert(now)
        hours = {h: convert(datetime.fromtimestamp(h, UTC)) for h in {r[2] for r in given}}
        rows = [
            (source, point_id, hours[hour], kommune_nr, mode, volume, coverage, stamp)
            for source, point_id, hour, kommune_nr, mode, volume, coverage in given
        ]
        self._bulk_execute(conn, point_hourly, _POINT_HOUR_COLUMNS, rows)

    def point_hours_of(
        self, cells: Iterable[tuple[str, str, datetime]]
    ) -> list[tuple[str, str, datetime, str, int | None, float]]:
        """Stored point-hours of the kommune-hours ``(kommune_nr, mode, hour_start)``.

        Rows are ``(kommune_nr, mode, hour_start, "source:point_id", volume, coverage)``: what
        an aggregation needs to recompute those kommune-hours after it evicted them.
        """
        wanted = set(cells)
        if not wanted:
            return []
        c = point_hourly.c
        # One query for every kommune, over each kommune's runs of consecutive hours asked for:
        # not the span from its first hour to its last (a correction in a backfill may be
        # months older), nor another kommune's hours (its partition may be ahead or behind).
        runs: list[tuple[str, str, datetime, datetime]] = []
        for kommune_nr, mode, hour in sorted(wanted):
            last = runs[-1] if runs else None
            if last and last[:2] == (kommune_nr, mode) and hour - last[3] <= _HOUR:
                runs[-1] = (kommune_nr, mode, last[2], hour)
            else:
                runs.append((kommune_nr, mode, hour, hour))
        out: list[tuple[str, str, datetime, str, int | None, float]] = []
        for i in range(0, len(runs), _RUNS_A_QUERY):
            spans = [
                and_(c.kommune_nr == k, c.mode == m, c.hour_start.between(first, last))
                for k, m, first, last in runs[i : i + _RUNS_A_QUERY]
            ]
            query = select(
                c.kommune_nr, c.mode, c.hour_start, c.source, c.point_id, c.volume, c.coverage
            ).where(or_(*spans))
            out.extend(
                (kommune_nr, mode, to_utc(hour), f"{source}:{point_id}", volume, coverage)
                for kommune_nr, mode, hour, source, point_id, volume, coverage in self._read(query)
            )
        return out

    def point_sources(self) -> list[str]:
        """The sources that have stored point-hours."""
        c = point_hourly.c
        return [row[0] for row in self._read(select(c.source).distinct().order_by(c.source))]

    def point_kommuner(self) -> list[str]:
        """The kommuner that have stored point-hours."""
        c = point_hourly.c
        query = select(c.kommune_nr).distinct().order_by(c.kommune_nr)
        return [row[0] for row in self._read(query)]

    def point_history(
        self, kommuner: Sequence[str], days: dict[str, int]
    ) -> list[tuple[str, datetime, str, str, int | None, float]]:
        """Each source's point-hours in ``kommuner`` of its last ``days[source]`` days.

        Rows are ``(source, hour_start, point_id, kommune_nr, volume, coverage)``; "last" is
        counted back from the source's newest stored hour in those kommuner (event time).
        """
        if not kommuner:
            return []
        c = point_hourly.c
        out: list[tuple[str, datetime, str, str, int | None, float]] = []
        for source, n_days in sorted(days.items()):
            where = (c.source == source, c.kommune_nr.in_(list(kommuner)))
            newest = self._read(select(func.max(c.hour_start)).where(*where))[0][0]
            if newest is None:
                continue
            since = to_utc(newest) - timedelta(days=n_days)
            query = select(
                c.source, c.hour_start, c.point_id, c.kommune_nr, c.volume, c.coverage
            ).where(*where, c.hour_start >= since)
            out.extend(
                (source, to_utc(hour), point_id, kommune_nr, volume, coverage)
                for source, hour, point_id, kommune_nr, volume, coverage in self._read(query)
            )
        return out

    def add_fetched(self, windows: Iterable[FetchedWindow]) -> int:
        """Record the hours each point's source was asked for; return the windows given.

        A point's windows are kept merged: a new one joins every stored window it overlaps or
        touches, so the table holds disjoint windows with the gaps between them (hours nobody
        fetched). Replaying windows changes nothing.
        """
        by_point: dict[tuple[str, str], list[FetchedWindow]] = {}
        for w in windows:
            by_point.setdefault((w.source, w.point_id), []).append(w)
        if not by_point:
            return 0
        c = fetched_windows.c
        now = datetime.now(UTC)
        written = 0
        with self._write(fetched_windows.name) as conn:
            for (source, point_id), given in sorted(by_point.items()):
                for w in sorted(given, key=lambda w: w.since):
                    point = and_(c.source == source, c.point_id == point_id)
                    touching = point & (c.since <= to_utc(w.until)) & (c.until >= to_utc(w.since))
                    rows = conn.execute(select(c.since, c.until).where(touching)).all()
                    since = min([to_utc(w.since), *(r.since for r in rows)])
                    until = max([to_utc(w.until), *(r.until for r in rows)])
                    conn.execute(delete(fetched_windows).where(touching))
                    conn.execute(
                        fetched_windows.insert(),
                        {
                            "source": source,
                            "point_id": point_id,
                            "since": since,
                            "until": until,
                            "kommune_nr": w.kommune_nr,
                            "mode": w.mode,
                            "updated_at": now,
                        },
                    )
                    written += 1
        self.metrics.store_writes.labels(table=fetched_windows.name).inc(written)
        return written

    def query_fetched(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        source: str | None = None,
        point_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Fetched]:
        """Fetched windows overlapping ``[start, end)``, by source, point and start."""
        c = fetched_windows.c
        query = select(c.source, c.point_id, c.since, c.until, c.kommune_nr, c.mode).order_by(
            c.source, c.point_id, c.since
        )
        query = filtered(query, fetched_windows, kommuner)
        query = by_points(query, fetched_windows, source, point_ids)
        if start is not None:
            query = query.where(c.until > to_utc(start))
        if end is not None:
            query = query.where(c.since < to_utc(end))
        return [Fetched(**row._mapping) for row in self._read(query)]

    def query_points(
        self, *, kommuner: Sequence[str] | None = None, mode: str | None = None
    ) -> list[CountPoint]:
        """Counting points, by source and point id."""
        c = points_table.c
        query = select(*(c[name] for name in sorted(POINT_FIELDS))).order_by(c.source, c.point_id)
        query = filtered(query, points_table, kommuner, mode)
        return [CountPoint(**row._mapping) for row in self._read(query)]

    def query_point_hourly(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        source: str | None = None,
        point_ids: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[PointHour]:
        """Point-hours with ``start <= hour_start < end``, by source, point and hour."""
        c = point_hourly.c
        query = select(*(c[name] for name in _POINT_HOUR_FIELDS)).order_by(
            c.source, c.point_id, c.hour_start
        )
        query = filtered(query, point_hourly, kommuner, mode, start, end)
        query = by_points(query, point_hourly, source, point_ids)
        # Positional: a row's mapping view costs more than the row (an index reads 10⁵ rows).
        return [PointHour(*row) for row in self._read(query)]
