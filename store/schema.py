"""The store's tables, its UTC timestamp type, and versioned schema creation and migration.

A new database gets the whole current schema and is stamped with :data:`SCHEMA_VERSION`. An
existing one at an older version gets the functions in :data:`MIGRATIONS` for every newer
version, in order, in the same transaction as the stamp. To change the schema: edit the tables
below, bump :data:`SCHEMA_VERSION`, and add ``MIGRATIONS[n]`` that brings a version ``n - 1``
database to the same shape (for instance ``ALTER TABLE … ADD COLUMN``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from byflyt.errors import ConfigError

SCHEMA_VERSION = 3
"""The version of the tables defined in this module."""

Migration = Callable[[Connection], None]
"""Brings a database from version ``n - 1`` to version ``n`` (n is its key in MIGRATIONS)."""

# Any constant works; it only has to be the same in every byflyt process.
_PG_SCHEMA_LOCK = 0x6279_666C_7974


def to_utc(value: object) -> datetime:
    """``value`` as an aware UTC datetime; a naive datetime is a programming error."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store: add a timezone")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """The fixed-width text SQLite stores: ``2025-10-26T01:00:00.000000Z`` (sorts as time)."""
    return to_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``; SQLite, which has no time type, stores
    :func:`format_utc` text, whose string order is time order. Values read back are aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Fixed-width text on SQLite, ``timestamptz`` elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(27))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Check awareness, convert to UTC (and to text on SQLite)."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_utc(value)
        return to_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Aware UTC, whatever the session's time zone."""
        if value is None:
            return None
        if isinstance(value, str):
            return parse_utc(value)
        return to_utc(value)


@lru_cache(maxsize=65_536)
def parse_utc(text: str) -> datetime:
    """The aware UTC datetime of stored text; memoised, as hours repeat across the rows read."""
    return to_utc(datetime.fromisoformat(text))


def _key(length: int) -> TypeEngine[str]:
    # Byte order ("C") on PostgreSQL, as SQLite and Python sort: the same ORDER BY everywhere.
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _point_key() -> tuple[Column[str], Column[str]]:
    """``source`` and ``point_id``, the leading primary key of every table about one point."""
    return (
        Column("source", _key(64), primary_key=True),
        Column("point_id", _key(128), primary_key=True),
    )


def _kommune_nr(name: str = "kommune_nr", **options: Any) -> Column[str]:
    """A kommune number column ("0301": four characters)."""
    return Column(name, _key(4), **options)


def _mode(**options: Any) -> Column[str]:
    """The ``mode`` column (``bicycle``, ``bus`` … of :data:`byflyt.models.base.Mode`)."""
    return Column("mode", _key(16), **options)


def _updated_at() -> Column[datetime]:
    """When byflyt last wrote the row."""
    return Column("updated_at", UtcDateTime, nullable=False)


metadata = MetaData()

points = Table(
    "points",
    metadata,
    *_point_key(),
    Column("name", Text, nullable=False, default=""),
    _kommune_nr(nullable=False),
    _mode(nullable=False),
    Column("lat", Double),
    Column("lon", Double),
    Column("first_data", UtcDateTime),
    Column("latest_data", UtcDateTime),
    Column("operational_status", Text),
    _updated_at(),
)

point_hourly = Table(
    "point_hourly",
    metadata,
    *_point_key(),
    Column("hour_start", UtcDateTime, primary_key=True),
    _kommune_nr(nullable=False),
    _mode(nullable=False),
    Column("volume", Integer),
    Column("coverage", Double, nullable=False),
    _updated_at(),
    # Keyed hour first: a flush's point-hours (new hours, every point) go in at the end of
    # the key, and a read of kommune-hours is a range of it. On SQLite the table is that
    # key's B-tree alone (no rowid table, no second index): one B-tree written a row, not
    # three (schema version 3; before, the key led with the point, beside an hour index).
    PrimaryKeyConstraint("hour_start", "source", "point_id"),
    sqlite_with_rowid=False,
)
"""Each point's latest value per UTC hour (the durable copy of the cycling agents' state)."""

kommune_hourly = Table(
    "kommune_hourly",
    metadata,
    _kommune_nr(primary_key=True),
    _mode(primary_key=True),
    Column("metric", _key(64), primary_key=True),
    Column("hour_start", UtcDateTime, primary_key=True),
    Column("value", Double, nullable=False),
    Column("coverage", Double, nullable=False),
    Column("n_sources", Integer, nullable=False),
    _updated_at(),
    Index("ix_kommune_hourly_mode_metric_hour", "mode", "metric", "hour_start"),
)

outages = Table(
    "outages",
    metadata,
    *_point_key(),
    Column("kind", _key(32), primary_key=True),
    Column("started", UtcDateTime, primary_key=True),
    Column("ended", UtcDateTime),
    _kommune_nr(),
    Column("details", Text, nullable=False, default=""),
)

flows_hourly = Table(
    "flows_hourly",
    metadata,
    _kommune_nr("from_kommune", primary_key=True),
    _kommune_nr("to_kommune", primary_key=True),
    _mode(primary_key=True),
    Column("hour_start", UtcDateTime, primary_key=True),
    Column("trips", Integer, nullable=False),
    Column("occupancy", Text),
)

fetched_windows = Table(
    "fetched_windows",
    metadata,
    *_point_key(),
    Column("since", UtcDateTime, primary_key=True),
    Column("until", UtcDateTime, nullable=False),
    _kommune_nr(nullable=False),
    _mode(nullable=False),
    _updated_at(),
)
"""The hours each counter point's source was asked for, merged into disjoint windows."""

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)


def _add_fetched_windows(conn: Connection) -> None:
    fetched_windows.create(conn, checkfirst=True)


def _key_point_hours_by_hour(conn: Connection) -> None:
    """Version 3: ``point_hourly`` keyed ``(hour_start, source, point_id)``, no hour index.

    SQLite cannot change a table's key in place: the rows move to a new table (without
    rowid), which then takes the old one's name. PostgreSQL swaps the key's constraint.
    """
    name = point_hourly.name
    if conn.dialect.name == "sqlite":
        rebuilt = point_hourly.to_metadata(MetaData(), name=f"{name}_v3")
        rebuilt.create(conn)
        columns = ", ".join(c.name for c in point_hourly.c)
        # Identifiers from this module's own metadata.
        conn.execute(text(f"INSERT INTO {rebuilt.name} ({columns}) SELECT {columns} FROM {name}"))  # noqa: S608
        conn.execute(text(f"DROP TABLE {name}"))
        conn.execute(text(f"ALTER TABLE {rebuilt.name} RENAME TO {name}"))
        return
    key = inspect(conn).get_pk_constraint(name)["name"]
    conn.execute(text(f'ALTER TABLE {name} DROP CONSTRAINT "{key}"'))
    conn.execute(text(f"ALTER TABLE {name} ADD PRIMARY KEY (hour_start, source, point_id)"))
    conn.execute(text("DROP INDEX IF EXISTS ix_point_hourly_hour"))


MIGRATIONS: Mapping[int, Migration] = {2: _add_fetched_windows, 3: _key_point_hours_by_hour}
"""Upgrade steps keyed by the version they produce; version 1 is the baseline."""


def stored_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when it has none yet)."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one()


def ensure_schema(
    conn: Connection,
    *,
    version: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
) -> int:
    """Create or migrate the schema inside the caller's write transaction; return the version.

    Several processes may start at once: PostgreSQL serialises them with an advisory lock,
    SQLite with the caller's ``BEGIN IMMEDIATE``.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
    current = stored_version(conn)
    if current > version:
        raise ConfigError(
            "BYFLYT_STORE_URL",
            f"the store's schema is version {current}, newer than this byflyt knows ({version})",
            "upgrade byflyt, or point it at another database",
        )
    now = datetime.now(UTC)
    if current == 0:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(schema_version.insert(), {"version": version, "applied_at": now})
        return version
    for step in range(current + 1, version + 1):
        if step not in migrations:
            raise ConfigError(
                "BYFLYT_STORE_URL",
                f"no migration from schema version {step - 1} to {step}",
                "this is a bug in byflyt: report it",
            )
        migrations[step](conn)
        conn.execute(schema_version.insert(), {"version": step, "applied_at": now})
    return version
