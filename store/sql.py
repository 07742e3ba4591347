"""The SQL store: SQLAlchemy Core tables, natural-key upserts and the analysts' queries.

SQLite (WAL) by default, PostgreSQL in deployments. Every datetime is stored as UTC and read back
timezone-aware. Upserts are keyed by each table's natural key, so a replay converges to the same
rows. The schema is created or migrated at start from a versioned ``schema_version`` table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from byflyt.errors import RetriableError
from byflyt.metrics import Metrics
from byflyt.models.base import hour_floor
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings

SCHEMA_VERSION = 1
CHUNK = 2000
VolumeKey = tuple[str, str, str, datetime]


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps fixed-width ISO text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        """Text on SQLite (sorts as time), TIMESTAMP WITH TIME ZONE elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(27))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Refuse naive datetimes; write UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


metadata = MetaData()
schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True))
points = Table(
    "points",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("point_id", String(128), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("kommune_nr", String(4), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("first_data", UtcDateTime()),
    Column("latest_data", UtcDateTime()),
    Column("operational_status", String(64)),
    Column("updated_at", UtcDateTime(), nullable=False),
)
point_hourly = Table(
    "point_hourly",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("point_id", String(128), primary_key=True),
    Column("hour_start", UtcDateTime(), primary_key=True),
    Column("kommune_nr", String(4), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("volume", Integer),
    Column("coverage", Float, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_point_hourly_hour", "hour_start"),
)
kommune_hourly = Table(
    "kommune_hourly",
    metadata,
    Column("kommune_nr", String(4), primary_key=True),
    Column("mode", String(16), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("hour_start", UtcDateTime(), primary_key=True),
    Column("value", Float, nullable=False),
    Column("coverage", Float, nullable=False),
    Column("n_sources", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_kommune_hourly_mode_metric_hour", "mode", "metric", "hour_start"),
)
outages = Table(
    "outages",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("point_id", String(128), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("started", UtcDateTime(), primary_key=True),
    Column("ended", UtcDateTime()),
    Column("kommune_nr", String(4)),
    Column("details", Text, nullable=False, default=""),
)
flows_hourly = Table(
    "flows_hourly",
    metadata,
    Column("from_kommune", String(4), primary_key=True),
    Column("to_kommune", String(4), primary_key=True),
    Column("mode", String(16), primary_key=True),
    Column("hour_start", UtcDateTime(), primary_key=True),
    Column("trips", Integer, nullable=False),
    Column("occupancy", Text),
)

Migration = Callable[[Connection], None]
# Version → the step that brings a database from version-1 to it. Version 1 is the baseline.
MIGRATIONS: dict[int, Migration] = {1: lambda conn: metadata.create_all(conn)}


@dataclass(frozen=True)
class Outage:
    """One outage of a counting point or feed; ``ended`` is None while it is open."""

    source: str
    point_id: str
    kind: str
    started: datetime
    ended: datetime | None
    kommune_nr: str | None
    details: str


class Store:
    """The byflyt SQL store."""

    def __init__(self, url: str, *, metrics: Metrics | None = None) -> None:
        self.url = url
        self.metrics = metrics or Metrics(CollectorRegistry())
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=True, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: Metrics | None = None) -> Store:
        """The store that ``settings`` name."""
        return cls(settings.database_url, metrics=metrics)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(select(schema_version.c.version)).scalar() or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
            if current < SCHEMA_VERSION:
                conn.execute(delete(schema_version))
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))

    # -- writes ------------------------------------------------------------------------------
    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        keys = [c.name for c in table.primary_key.columns]
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i : i + CHUNK]
            stmt = insert(table)
            updates = {c: stmt.excluded[c] for c in chunk[0] if c not in keys}
            conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), chunk)

    def _write(self, table: str, work: Callable[[Connection], int]) -> int:
        try:
            with self.engine.begin() as conn:
                count = work(conn)
        except OperationalError as exc:
            self.metrics.store_failures.labels(table).inc()
            raise RetriableError(f"store write to {table} failed: {exc.orig}") from exc
        except SQLAlchemyError:
            self.metrics.store_failures.labels(table).inc()
            raise
        self.metrics.store_writes.labels(table).inc(count)
        return count

    def upsert_points(self, items: Iterable[CountPoint]) -> int:
        """Insert or update counting points."""
        now = datetime.now(UTC)
        rows = [
            {
                "source": p.source, "point_id": p.point_id, "name": p.name,
                "kommune_nr": p.kommune_nr, "mode": p.mode, "lat": p.lat, "lon": p.lon,
                "first_data": p.first_data, "latest_data": p.latest_data,
                "operational_status": p.operational_status, "updated_at": now,
            }
            for p in items
        ]  # fmt: skip
        return self._write("points", lambda conn: self._rows(conn, points, rows))

    def upsert_point_hourly(self, observations: Iterable[CountObservation]) -> int:
        """Each observation as its point's value for its UTC hour (latest wins)."""
        now = datetime.now(UTC)
        latest: dict[tuple[str, str, datetime], dict[str, Any]] = {}
        for o in observations:
            hour = hour_floor(o.start)
            latest[(o.source, o.point_id, hour)] = {
                "source": o.source, "point_id": o.point_id, "hour_start": hour,
                "kommune_nr": o.kommune_nr, "mode": o.mode, "volume": o.volume,
                "coverage": o.coverage, "updated_at": now,
            }  # fmt: skip
        rows = list(latest.values())
        return self._write("point_hourly", lambda conn: self._rows(conn, point_hourly, rows))

    def _rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
        if rows:
            self._upsert(conn, table, rows)
        return len(rows)

    def upsert_kommune_hourly(self, rows: Iterable[HourlyVolume]) -> int:
        """Insert or replace kommune-hour values."""
        return self.write_hourly(rows, ())

    def delete_kommune_hourly(self, keys: Iterable[VolumeKey]) -> int:
        """Delete kommune-hour values by natural key."""
        return self.write_hourly((), keys)

    def write_hourly(self, upserts: Iterable[HourlyVolume], deletes: Iterable[VolumeKey]) -> int:
        """Upsert and delete kommune-hour values in one transaction."""
        now = datetime.now(UTC)
        rows = [
            {
                "kommune_nr": r.kommune_nr, "mode": r.mode, "metric": r.metric,
                "hour_start": r.hour_start, "value": r.value, "coverage": r.coverage,
                "n_sources": r.n_sources, "updated_at": now,
            }
            for r in upserts
        ]  # fmt: skip
        gone = list(deletes)

        def work(conn: Connection) -> int:
            self._rows(conn, kommune_hourly, rows)
            t = kommune_hourly.c
            for i in range(0, len(gone), 500):
                conn.execute(
                    delete(kommune_hourly).where(
                        tuple_(t.kommune_nr, t.mode, t.metric, t.hour_start).in_(gone[i : i + 500])
                    )
                )
            return len(rows) + len(gone)

        return self._write("kommune_hourly", work)

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
        """Record an outage (open while ``ended`` is None)."""
        row = {
            "source": source, "point_id": point_id, "kind": kind, "started": started,
            "ended": ended, "kommune_nr": kommune_nr, "details": details,
        }  # fmt: skip
        self._write("outages", lambda conn: self._rows(conn, outages, [row]))

    # -- reads -------------------------------------------------------------------------------
    def query_hourly(
        self,
        *,
        kommuner: Sequence[str] | None = None,
        mode: str | None = None,
        metric: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[HourlyVolume]:
        """Kommune-hour values with ``start <= hour_start < end``, in key order."""
        t = kommune_hourly.c
        conditions: list[ColumnElement[bool]] = []
        if kommuner is not None:
            conditions.append(t.kommune_nr.in_(list(kommuner)))
        if mode is not None:
            conditions.append(t.mode == mode)
        if metric is not None:
            conditions.append(t.metric == metric)
        if start is not None:
            conditions.append(t.hour_start >= start)
        if end is not None:
            conditions.append(t.hour_start < end)
        query = (
            select(kommune_hourly)
            .where(and_(True, *conditions))
            .order_by(t.kommune_nr, t.mode, t.metric, t.hour_start)
        )
        with self.engine.connect() as conn:
            return [
                HourlyVolume(
                    kommune_nr=r.kommune_nr, mode=r.mode, metric=r.metric,
                    hour_start=r.hour_start, value=r.value, coverage=r.coverage,
                    n_sources=r.n_sources,
                )
                for r in conn.execute(query)
            ]  # fmt: skip

    def query_points(
        self, *, kommuner: Sequence[str] | None = None, mode: str | None = None
    ) -> list[CountPoint]:
        """Counting points, optionally of some kommuner and one mode."""
        t = points.c
        conditions: list[ColumnElement[bool]] = []
        if kommuner is not None:
            conditions.append(t.kommune_nr.in_(list(kommuner)))
        if mode is not None:
            conditions.append(t.mode == mode)
        query = select(points).where(and_(True, *conditions)).order_by(t.source, t.point_id)
        with self.engine.connect() as conn:
            return [
                CountPoint(
                    source=r.source, point_id=r.point_id, name=r.name, kommune_nr=r.kommune_nr,
                    mode=r.mode, lat=r.lat, lon=r.lon, first_data=r.first_data,
                    latest_data=r.latest_data, operational_status=r.operational_status,
                )
                for r in conn.execute(query)
            ]  # fmt: skip

    def query_outages(
        self, *, kommuner: Sequence[str] | None = None, open_only: bool = False
    ) -> list[Outage]:
        """Outages, newest first."""
        t = outages.c
        conditions: list[ColumnElement[bool]] = []
        if kommuner is not None:
            conditions.append(t.kommune_nr.in_(list(kommuner)))
        if open_only:
            conditions.append(t.ended.is_(None))
        query = select(outages).where(and_(True, *conditions)).order_by(t.started.desc())
        with self.engine.connect() as conn:
            return [
                Outage(r.source, r.point_id, r.kind, r.started, r.ended, r.kommune_nr, r.details)
                for r in conn.execute(query)
            ]


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
