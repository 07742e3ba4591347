"""The store's connection, transactions and natural-key upserts, shared by every table family.

Every write is one transaction; batches go through the dialect's ``INSERT … ON CONFLICT DO
UPDATE`` (bulk: a JSON array a statement on SQLite, a binary ``COPY`` on PostgreSQL), so a
replay or a correction rewrites the same rows and never adds. Within one call the last row given
for a key wins, and rows are written in key order, so concurrent PostgreSQL writers lock rows in
the same order and cannot deadlock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from operator import itemgetter
from types import TracebackType
from typing import Any, Self, cast

import psycopg
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Select, Table, delete, func, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from byflyt.metrics import Metrics
from byflyt.settings import Settings
from byflyt.store.engine import WRITE, create_store_engine, describe, is_retriable, retriable
from byflyt.store.rows import (
    Row,
    VolumeKey,
    latest_by_key,
)
from byflyt.store.schema import (
    SCHEMA_VERSION,
    UtcDateTime,
    ensure_schema,
    format_utc,
    kommune_hourly,
    outages,
    stored_version,
    to_utc,
)

CHUNK_ROWS = 1000
"""Rows per ``executemany`` (and keys per ``DELETE … IN``) within one transaction."""
BULK_ROWS = 4096
"""Rows per statement of a bulk upsert on SQLite, at most (fewer where the variable limit
is lower)."""


class StoreBase:
    """The connection, transactions and upserts that the table families of the store share.

    Thread-safe: each call takes its own pooled connection and transaction.
    """

    def __init__(self, url: str, *, metrics: Metrics | None = None) -> None:
        """Connect to ``url`` and create or migrate the schema."""
        self.url = url
        self.metrics = metrics if metrics is not None else Metrics(CollectorRegistry())
        self.engine = create_store_engine(url)
        self._writer = self.engine.execution_options(**{WRITE: True})
        self._dialect = self.engine.dialect.name
        self._bulk_sql: dict[tuple[object, ...], str] = {}
        self._copy_plans: dict[tuple[str, ...], tuple[str, str, str, list[int]]] = {}
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
    def from_settings(cls, settings: Settings, *, metrics: Metrics | None = None) -> Self:
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

    @property
    def reads_beside_writes(self) -> bool:
        """Whether a read on another connection can run while a write is in flight.

        PostgreSQL and a SQLite file (write-ahead log: a reader sees the last commit) can;
        an in-memory SQLite database is one connection's own.
        """
        in_memory = self.engine.url.database in (None, "", ":memory:")
        return self._dialect == "postgresql" or not in_memory

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
        """``INSERT … ON CONFLICT DO UPDATE`` of whole rows, through :meth:`_bulk_execute`.

        Rows become plain tuples (times converted as :class:`UtcDateTime` stores them): no
        per-row parameter processing by SQLAlchemy.
        """
        times = {c.name for c in table.c if isinstance(c.type, UtcDateTime)}
        at = [i for i, c in enumerate(columns) if c in times]
        values_of = itemgetter(*columns)
        convert = self._time_converter()
        params: list[tuple[object, ...]] = []
        for row in rows:
            values = list(values_of(row))
            for i in at:
                values[i] = convert(values[i])
            params.append(tuple(values))
        self._bulk_execute(conn, table, columns, params)

    def _time_converter(self) -> Callable[[datetime | None], object]:
        """Aware times to what the driver stores, each distinct time converted once.

        A batch repeats few distinct times (its hours, one ``updated_at``).
        """
        to_time = format_utc if self._dialect == "sqlite" else to_utc
        converted: dict[datetime | None, object] = {None: None}

        def convert(value: datetime | None) -> object:
            done = converted.get(value, converted)
            if done is converted:
                assert value is not None  # None is converted from the start
                done = converted[value] = to_time(value)
            return done

        return convert

    def _bulk_execute(
        self,
        conn: Connection,
        table: Table,
        columns: list[str],
        params: Sequence[tuple[object, ...]],
    ) -> None:
        """The upsert of ``params`` (values of ``columns``, times converted), last per key wins.

        SQLite: :meth:`_values_upsert`, one statement a chunk that runs without the GIL.
        PostgreSQL: :meth:`_copy_upsert`, a binary ``COPY`` and one ``INSERT … SELECT``.
        """
        if not params:
            return
        if self._dialect == "postgresql":
            self._copy_upsert(conn, table, columns, params)
            return
        self._values_upsert(conn, table, columns, params)

    def _values_upsert(
        self,
        conn: Connection,
        table: Table,
        columns: list[str],
        params: Sequence[tuple[object, ...]],
        *,
        select: Sequence[str] | None = None,
        bind: tuple[object, ...] = (),
    ) -> None:
        """SQLite's bulk upsert: thousands of rows a statement, in the order given.

        ``INSERT … SELECT column1, … FROM (VALUES (?, …), (?, …), …) WHERE true ON CONFLICT
        DO UPDATE``. The driver binds a chunk's values in C and runs the statement as one
        ``sqlite3_step`` with the GIL released, so the writer thread takes the GIL back once
        a chunk, not once a row as with ``executemany`` (which, beside a busy event loop,
        waited up to a switch interval a row: a convoy). Rows go in the order given and one
        after another, so the last one given for a key wins. Measured against rows as a JSON
        array read with ``json_each`` (``value ->> i`` parses a row's text per column): 1.7
        against 3.1 µs a point-hour.

        A chunk is a power of two of rows (the largest the variable limit allows, then the
        rest by halves): a handful of statement shapes a table, which the driver's statement
        cache keeps prepared. ``select``: each column's SQL where a row gives a value in
        another form than the one stored (default ``column<i>``); its ``?`` are bound, in
        order, from ``bind``.
        """
        if not params:
            return
        values = list(select or (f"column{i + 1}" for i in range(len(columns))))
        width = len(params[0])
        driver = cast(sqlite3.Connection, conn.connection.driver_connection)
        room = (driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - len(bind)) // width
        size = min(BULK_ROWS, 1 << (room.bit_length() - 1))
        at = 0
        while at < len(params):
            while len(params) - at < size:
                size //= 2
            flat = (*bind, *chain.from_iterable(params[at : at + size]))
            conn.exec_driver_sql(self._values_sql(table, columns, values, width, size), flat)
            at += size

    def _values_sql(
        self, table: Table, columns: list[str], values: list[str], width: int, rows: int
    ) -> str:
        """The statement of :meth:`_values_upsert` for ``rows`` rows (made once, then kept)."""
        key = (table.name, *values, width, rows)
        sql = self._bulk_sql.get(key)
        if sql is None:
            keys = [c.name for c in table.primary_key]
            row = "(" + ", ".join("?" * width) + ")"
            # Identifiers from the schema's own metadata; values only ever as parameters.
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
                f"SELECT {', '.join(values)} FROM (VALUES {', '.join([row] * rows)}) "
                f"WHERE true ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
            )
            self._bulk_sql[key] = sql
        return sql

    def _copy_upsert(
        self,
        conn: Connection,
        table: Table,
        columns: list[str],
        params: Sequence[tuple[object, ...]],
    ) -> None:
        """PostgreSQL's bulk upsert: three statements whatever the number of rows.

        The rows are copied (binary ``COPY``, no per-row statement) into a temporary table
        shaped like ``table`` (one per session, emptied at commit), then one
        ``INSERT … SELECT DISTINCT ON (key) … ORDER BY key … ON CONFLICT DO UPDATE`` moves
        them: the last row given for a key wins (a serial number keeps the order given), and
        rows are written in key order, so concurrent writers lock them in the same order.
        The staged rows are deleted by the same statement, so a second upsert of the table in
        one transaction starts empty.
        """
        staged, copy_sql, insert_sql, types = self._copy_plan(conn, table, columns)
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        try:
            with driver.cursor() as cursor:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} "
                    f"(LIKE {table.name}, byflyt_n BIGSERIAL) ON COMMIT DELETE ROWS"
                )
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(types)
                    for row in params:
                        copy.write_row(row)
                cursor.execute(insert_sql)
        except psycopg.Error as exc:
            broken = driver.broken
            if broken:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                insert_sql, None, exc, psycopg.Error, connection_invalidated=broken
            ) from exc

    def _copy_plan(
        self, conn: Connection, table: Table, columns: list[str]
    ) -> tuple[str, str, str, list[int]]:
        """The staging table, the ``COPY``, the ``INSERT … SELECT`` and the columns' type oids."""
        plan = self._copy_plans.get((table.name, *columns))
        if plan is not None:
            return plan
        staged = f"byflyt_in_{table.name}"
        oids: dict[str, int] = dict(
            conn.exec_driver_sql(
                "SELECT attname, atttypid::int FROM pg_attribute "
                "WHERE attrelid = %(table)s::regclass AND attnum > 0 AND NOT attisdropped",
                {"table": table.name},
            ).all()
        )
        keys = [c.name for c in table.primary_key]
        listed = ", ".join(columns)
        key_list = ", ".join(keys)
        # Identifiers from the schema's own metadata; values only ever through COPY.
        insert_sql = (
            f"WITH staged AS (DELETE FROM {staged} RETURNING *) "  # noqa: S608
            f"INSERT INTO {table.name} ({listed}) "
            f"SELECT DISTINCT ON ({key_list}) {listed} FROM staged "
            f"ORDER BY {key_list}, byflyt_n DESC "
            f"ON CONFLICT ({key_list}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        )
        copy_sql = f"COPY {staged} ({listed}) FROM STDIN (FORMAT BINARY)"
        plan = (staged, copy_sql, insert_sql, [oids[c] for c in columns])
        self._copy_plans[(table.name, *columns)] = plan
        return plan

    def _write_rows(self, table: Table, rows: Iterable[Row]) -> int:
        latest = latest_by_key(table, rows)
        if not latest:
            return 0
        with self._write(table.name) as conn:
            self._upsert(conn, table, latest)
        self.metrics.store_writes.labels(table=table.name).inc(len(latest))
        return len(latest)

    def _delete_volumes(self, conn: Connection, keys: list[VolumeKey]) -> int:
        c = kommune_hourly.c
        columns = tuple_(c.kommune_nr, c.mode, c.metric, c.hour_start)
        deleted = 0
        for i in range(0, len(keys), CHUNK_ROWS):
            result = conn.execute(
                delete(kommune_hourly).where(columns.in_(keys[i : i + CHUNK_ROWS]))
            )
            deleted += result.rowcount
        return deleted
