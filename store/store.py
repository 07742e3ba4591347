"""The SQL store: natural-key upserts of points, point-hours and kommune-hours, and queries.

Every write is one transaction; batches go through ``executemany`` of the dialect's
``INSERT … ON CONFLICT DO UPDATE`` in chunks, so a replay or a correction rewrites the same rows
and never adds. Within one call the last row given for a key wins, and rows are written in key
order, so concurrent PostgreSQL writers lock rows in the same order and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Select, Table, and_, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from byflyt.metrics import Metrics
from byflyt.models.base import hour_floor
from byflyt.models.counts import CountObservation, CountPoint, FetchedWindow
from byflyt.models.transit import FlowHour
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store.engine import WRITE, create_store_engine, describe, is_retriable, retriable
from byflyt.store.rows import (
    POINT_FIELDS,
    Fetched,
    Outage,
    PointHour,
    Row,
    VolumeKey,
    latest_by_key,
    unique_keys,
    volume_row,
)
from byflyt.store.schema import (
    SCHEMA_VERSION,
    UtcDateTime,
    ensure_schema,
    fetched_windows,
    flows_hourly,
    format_utc,
    kommune_hourly,
    outages,
    point_hourly,
    stored_version,
    to_utc,
)
from byflyt.store.schema import points as points_table

CHUNK_ROWS = 1000
"""Rows per ``executemany`` (and keys per ``DELETE … IN``) within one transaction."""
BULK_ROWS = 10_000
"""Rows per driver-level ``executemany`` of a bulk upsert."""


class Store:
    """The SQL store behind the sinks, ``byflyt query``, the API and the reports.

    Thread-safe: each call takes its own pooled connection and transaction.
    """

    def __init__(self, url: str, *, metrics: Metrics | None = None) -> None:
        """Connect to ``url`` and create or migrate the schema."""
        self.url = url
        self.metrics = metrics if metrics is not None else Metrics(CollectorRegistry())
        self.engine = create_store_engine(url)
        self._writer = self.engine.execution_options(**{WRITE: True})
        self._dialect = self.engine.dialect.name
        self._bulk_sql: dict[str, str] = {}
        try:
            self._open_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def _open_schema(self) -> None:
        # Read first: readers (queries, the API) should not queue for SQLite's write lock.
        try:
            with self.engine.connect() as conn:
                current = stored_version(conn)
        except SQLAlchemyError as exc:
            if is_retriable(exc, self._dialect):
                raise retriable(exc, "opening the store", self.url) from exc
            raise
        if current != SCHEMA_VERSION:
            with self._write("schema_version") as conn:
                ensure_schema(conn)

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: Metrics | None = None) -> Store:
        """The store ``settings`` name (``BYFLYT_STORE_URL`` or the SQLite file in the data dir)."""
        return cls(settings.database_url, metrics=metrics)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({describe(self.url)!r})"

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def _write(self, table: str) -> Iterator[Connection]:
        """One write transaction; failures are counted and transient ones made retriable."""
        try:
            with self._writer.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            self.metrics.store_failures.labels(table=table).inc()
            if is_retriable(exc, self._dialect):
                raise retriable(exc, f"store write to {table}", self.url) from exc
            raise
        except Exception:
            self.metrics.store_failures.labels(table=table).inc()
            raise

    def _read(self, query: Select[*tuple[Any, ...]]) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query).all())
        except SQLAlchemyError as exc:
            self.metrics.store_failures.labels(table="(read)").inc()
            if is_retriable(exc, self._dialect):
                raise retriable(exc, "store read", self.url) from exc
            raise

    def _upsert(self, conn: Connection, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        columns = [c.name for c in table.c]
        if table is not outages and set(rows[0]) == set(columns):
            self._bulk_upsert(conn, table, columns, rows)
            return
        keys = [c.name for c in table.primary_key]
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        changes: dict[str, Any] = {
            c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys
        }
        if table is outages:
            # Closing an outage without knowing its kommune keeps the kommune already stored.
            changes["kommune_nr"] = func.coalesce(stmt.excluded.kommune_nr, outages.c.kommune_nr)
        upsert = stmt.on_conflict_do_update(index_elements=keys, set_=changes)
        for i in range(0, len(rows), CHUNK_ROWS):
            conn.execute(upsert, rows[i : i + CHUNK_ROWS])

    def _bulk_upsert(
        self, conn: Connection, table: Table, columns: list[str], rows: list[Row]
    ) -> None:
        """``INSERT … ON CONFLICT DO UPDATE`` through the driver's own ``executemany``.

        Rows become plain tuples (times converted as :class:`UtcDateTime` stores them), so a
        batch costs one C-level loop on SQLite and one pipelined round trip on PostgreSQL,
        instead of SQLAlchemy's per-row parameter processing.
        """
        sql = self._bulk_sql.get(table.name)
        if sql is None:
            keys = [c.name for c in table.primary_key]
            mark = "?" if self._dialect == "sqlite" else "%s"
            # Identifiers from the schema's own metadata; values only ever as parameters.
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
                f"VALUES ({', '.join(mark for _ in columns)}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
            )
            self._bulk_sql[table.name] = sql
        to_time = format_utc if self._dialect == "sqlite" else to_utc
        times = {c.name for c in table.c if isinstance(c.type, UtcDateTime)}
        at = [i for i, c in enumerate(columns) if c in times]
        values_of = itemgetter(*columns)
        # A batch repeats few distinct times (its hours, one updated_at): convert each once.
        converted: dict[datetime | None, object] = {None: None}

        def convert(value: datetime | None) -> object:
            done = converted.get(value, converted)
            if done is converted:
                done = converted[value] = to_time(value)
            return done

        params: list[tuple[object, ...]] = []
        for row in rows:
            values = list(values_of(row))
            for i in at:
                values[i] = convert(values[i])
            params.append(tuple(values))
        for i in range(0, len(params), BULK_ROWS):
            conn.exec_driver_sql(sql, params[i : i + BULK_ROWS])

    def _write_rows(self, table: Table, rows: Iterable[Row]) -> int:
        latest = latest_by_key(table, rows)
        if not latest:
            return 0
        with self._write(table.name) as conn:
            self._upsert(conn, table, latest)
        self.metrics.store_writes.labels(table=table.name).inc(len(latest))
        return len(latest)

    # -- writes ------------------------------------------------------------------------------
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
            deleted = self._delete(conn, unique)
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
            deleted = self._delete(conn, gone)
            self._upsert(conn, kommune_hourly, rows)
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(len(rows) + deleted)

    def write_counts(
        self,
        points: Iterable[CountPoint],
        point_hours: Iterable[Row],
        upserts: Iterable[HourlyVolume],
        deletes: Iterable[VolumeKey],
    ) -> None:
        """One cycling flush in one transaction: points, point-hours, kommune-hours.

        ``point_hours`` are ``point_hourly`` rows (``source, point_id, hour_start, kommune_nr,
        mode, volume, coverage``; ``updated_at`` is set here), at most one per key. Deletes of
        kommune-hours go first, so a key given in both ends up with the upserted value.
        """
        now = datetime.now(UTC)
        point_rows = latest_by_key(
            points_table,
            ({**p.model_dump(include=POINT_FIELDS), "updated_at": now} for p in points),
        )
        hour_rows = [{**row, "updated_at": now} for row in point_hours]
        hour_rows.sort(key=lambda r: (r["source"], r["point_id"], r["hour_start"]))
        rows = latest_by_key(kommune_hourly, (volume_row(r, now) for r in upserts))
        gone = unique_keys(deletes)
        if not (point_rows or hour_rows or rows or gone):
            return
        with self._write(kommune_hourly.name) as conn:
            self._upsert(conn, points_table, point_rows)
            self._upsert(conn, point_hourly, hour_rows)
            deleted = self._delete(conn, gone)
            self._upsert(conn, kommune_hourly, rows)
        self.metrics.store_writes.labels(table=points_table.name).inc(len(point_rows))
        self.metrics.store_writes.labels(table=point_hourly.name).inc(len(hour_rows))
        self.metrics.store_writes.labels(table=kommune_hourly.name).inc(len(rows) + deleted)

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
        by_kommune: dict[tuple[str, str], list[datetime]] = {}
        for kommune_nr, mode, hour in wanted:
            by_kommune.setdefault((kommune_nr, mode), []).append(hour)
        out = []
        for (kommune_nr, mode), hours in sorted(by_kommune.items()):
            query = select(c.hour_start, c.source, c.point_id, c.volume, c.coverage).where(
                c.hour_start >= min(hours),
                c.hour_start <= max(hours),
                c.kommune_nr == kommune_nr,
                c.mode == mode,
            )
            for hour, source, point_id, volume, coverage in self._read(query):
                hour = to_utc(hour)
                if (kommune_nr, mode, hour) in wanted:
                    out.append((kommune_nr, mode, hour, f"{source}:{point_id}", volume, coverage))
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

    def _delete(self, conn: Connection, keys: list[VolumeKey]) -> int:
        c = kommune_hourly.c
        columns = tuple_(c.kommune_nr, c.mode, c.metric, c.hour_start)
        deleted = 0
        for i in range(0, len(keys), CHUNK_ROWS):
            result = conn.execute(
                delete(kommune_hourly).where(columns.in_(keys[i : i + CHUNK_ROWS]))
            )
            deleted += result.rowcount
        return deleted

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
        query = _filter(query, fetched_windows, kommuner, None, None, None)
        if source is not None:
            query = query.where(c.source == source)
        if point_ids is not None:
            query = query.where(c.point_id.in_(_strings(point_ids, "point_ids")))
        if start is not None:
            query = query.where(c.until > to_utc(start))
        if end is not None:
            query = query.where(c.since < to_utc(end))
        return [Fetched(**row._mapping) for row in self._read(query)]

    def upsert_outage(
        self,
        source: str,
        point_id: str,
        kind: str,
        started: datetime,
        ended: datetime | None,
        kommune_nr: str | None = None,
        details: str = "",
    ) -> None:
        """Open (``ended`` None) or close an outage, keyed by source, point, kind and start."""
        row = {
            "source": source,
            "point_id": point_id,
            "kind": kind,
            "started": to_utc(started),
            "ended": None if ended is None else to_utc(ended),
            "kommune_nr": kommune_nr,
            "details": details,
        }
        self._write_rows(outages, [row])

    # -- queries -----------------------------------------------------------------------------
    def query_hourly(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[HourlyVolume]:
        """Kommune-hours with ``start <= hour_start < end``, by kommune, mode, metric, hour.

        ``None`` means no filter; an empty ``kommuner`` matches nothing.
        """
        query = _hourly(kommuner, mode, metric, start, end)
        return [HourlyVolume(**row._mapping) for row in self._read(query)]

    def query_points(
        self, *, kommuner: Sequence[str] | None = None, mode: str | None = None
    ) -> list[CountPoint]:
        """Counting points, by source and point id."""
        c = points_table.c
        query = select(*(c[name] for name in sorted(POINT_FIELDS))).order_by(c.source, c.point_id)
        query = _filter(query, points_table, kommuner, mode, None, None)
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
        query = select(
            c.source, c.point_id, c.hour_start, c.kommune_nr, c.mode, c.volume, c.coverage
        ).order_by(c.source, c.point_id, c.hour_start)
        query = _filter(query, point_hourly, kommuner, mode, start, end)
        if source is not None:
            query = query.where(c.source == source)
        if point_ids is not None:
            query = query.where(c.point_id.in_(_strings(point_ids, "point_ids")))
        return [PointHour(**row._mapping) for row in self._read(query)]

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
            chosen = _strings(kommuner, "kommuner")
            query = query.where(c.from_kommune.in_(chosen) | c.to_kommune.in_(chosen))
        query = _filter(query, flows_hourly, None, mode, start, end)
        return [FlowHour(**row._mapping) for row in self._read(query)]

    def query_outages(
        self, *, kommuner: Sequence[str] | None = None, open_only: bool = False
    ) -> list[Outage]:
        """Outages by start time; ``open_only`` keeps those not ended yet."""
        c = outages.c
        query = select(
            c.source, c.point_id, c.kind, c.started, c.ended, c.kommune_nr, c.details
        ).order_by(c.started, c.source, c.point_id, c.kind)
        query = _filter(query, outages, kommuner, None, None, None)
        if open_only:
            query = query.where(c.ended.is_(None))
        return [Outage(**row._mapping) for row in self._read(query)]

    def total_hourly(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[HourlyTotal]:
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
        query = _where_hourly(query, kommuner, mode, metric, start, end)
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

    def query_hourly_page(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[HourlyVolume], int]:
        """One page of :meth:`query_hourly` (same filters and order) and the total row count."""
        counted = _where_hourly(select(func.count()), kommuner, mode, metric, start, end)
        query = _hourly(kommuner, mode, metric, start, end)
        rows = self._read(query.limit(limit).offset(offset))
        total = int(self._read(counted)[0][0])
        return [HourlyVolume(**row._mapping) for row in rows], total

    def modes(self, *, kommuner: Sequence[str] | None = None) -> list[str]:
        """The modes that have kommune-hours (for ``kommuner``), sorted."""
        query = _filter(
            select(kommune_hourly.c.mode).distinct(), kommune_hourly, kommuner, None, None, None
        )
        return sorted(str(row[0]) for row in self._read(query))

    def newest_hour(
        self, *, kommuner: Sequence[str] | None = None, mode: str | None = None
    ) -> datetime | None:
        """The latest ``hour_start`` in the kommune-hours (None when there are none)."""
        query = _filter(
            select(func.max(kommune_hourly.c.hour_start)),
            kommune_hourly,
            kommuner,
            mode,
            None,
            None,
        )
        return _aggregate_time(self._read(query)[0][0])

    def query_freshness(self, *, kommuner: Sequence[str] | None = None) -> list[Freshness]:
        """The newest hour with data per counter source and per transit mode (``departures``).

        ``n`` counts the points (counters) or kommuner (transit) that have data at all.
        """
        ph = point_hourly.c
        counters = _filter(
            select(
                ph.source,
                func.max(ph.hour_start).label("newest"),
                func.count(func.distinct(ph.point_id)).label("n"),
            ).where(ph.volume.is_not(None)),
            point_hourly,
            kommuner,
            None,
            None,
            None,
        ).group_by(ph.source)
        kh = kommune_hourly.c
        transit = _filter(
            select(
                kh.mode,
                func.max(kh.hour_start).label("newest"),
                func.count(func.distinct(kh.kommune_nr)).label("n"),
            ).where(kh.metric == "departures"),
            kommune_hourly,
            kommuner,
            None,
            None,
            None,
        ).group_by(kh.mode)
        found = [
            Freshness("counter", row[0], _aggregate_time(row[1]), int(row[2]))
            for row in self._read(counters)
        ]
        found += [
            Freshness("transit", row[0], _aggregate_time(row[1]), int(row[2]))
            for row in self._read(transit)
        ]
        return sorted(found, key=lambda f: (f.kind, f.name))


@dataclass(frozen=True)
class HourlyTotal:
    """A kommune's sum of one metric over a range: value, coverage summed, hours with a value."""

    kommune_nr: str
    mode: str
    metric: str
    value: float
    coverage_sum: float
    hours: int


@dataclass(frozen=True)
class Freshness:
    """The newest hour with data of a counter source or a transit mode."""

    kind: str
    """``counter`` (``name`` is a source) or ``transit`` (``name`` is a mode)."""
    name: str
    newest_hour: datetime | None
    n: int
    """Points (counters) or kommuner (transit) with data."""


def _aggregate_time(value: object) -> datetime | None:
    # MAX() over a UtcDateTime column: SQLite may hand back the stored text.
    if value is None:
        return None
    return to_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _strings(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of strings, not the string {values!r}")
    return list(values)


def _hourly(
    kommuner: Sequence[str] | None,
    mode: str | None,
    metric: str | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[*tuple[Any, ...]]:
    """Kommune-hours as :class:`HourlyVolume` fields, in the order every caller shows them."""
    c = kommune_hourly.c
    query = select(
        c.kommune_nr, c.mode, c.metric, c.hour_start, c.value, c.coverage, c.n_sources
    ).order_by(c.kommune_nr, c.mode, c.metric, c.hour_start)
    return _where_hourly(query, kommuner, mode, metric, start, end)


def _where_hourly(
    query: Select[*tuple[Any, ...]],
    kommuner: Sequence[str] | None,
    mode: str | None,
    metric: str | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[*tuple[Any, ...]]:
    """:func:`_filter` on ``kommune_hourly``, and its metric."""
    query = _filter(query, kommune_hourly, kommuner, mode, start, end)
    return query if metric is None else query.where(kommune_hourly.c.metric == metric)


def _filter(
    query: Select[*tuple[Any, ...]],
    table: Table,
    kommuner: Sequence[str] | None,
    mode: str | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[*tuple[Any, ...]]:
    """The filters every query shares; ``start``/``end`` bound ``hour_start`` half-open."""
    if kommuner is not None:
        query = query.where(table.c.kommune_nr.in_(_strings(kommuner, "kommuner")))
    if mode is not None:
        query = query.where(table.c.mode == mode)
    if start is not None:
        query = query.where(table.c.hour_start >= to_utc(start))
    if end is not None:
        query = query.where(table.c.hour_start < to_utc(end))
    return query
