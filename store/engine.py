"""Engines for the store's two backends, and which database errors are worth retrying.

SQLite runs in WAL mode (readers never block the writer), ``synchronous=NORMAL`` (durable at
checkpoints, safe with WAL), foreign keys on, and a busy timeout. Write transactions start with
``BEGIN IMMEDIATE``: they take the write lock up front and wait for it for the busy timeout,
instead of failing at once when a read transaction would have to upgrade to a write. That
makes concurrent writers, in threads or processes, wait their turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from byflyt.errors import ConfigError, RetriableError

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer's lock (override: ``?timeout=`` in the URL)."""

WRITE = "byflyt_write"
"""Execution option that marks a connection's transactions as writes."""

_SQLITE_RETRIABLE = ("locked", "busy")


def parse_url(url: str) -> URL:
    """The URL as SQLAlchemy parses it; ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("BYFLYT_STORE_URL", f"cannot parse {url!r}", "see the README") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            "BYFLYT_STORE_URL",
            f"{parsed.get_backend_name()} is not supported",
            "use sqlite:///path/byflyt.sqlite or postgresql+psycopg://user:pass@host/db",
        )
    return parsed


def describe(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with the store's connection settings."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Connections dropped by a server restart or a proxy are replaced, not reported.
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not parsed.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {}
    if "timeout" not in parsed.query:
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
    engine = create_engine(parsed, connect_args=connect_args)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is turned off so that _sqlite_begin chooses the mode.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def is_retriable(exc: BaseException, dialect: str) -> bool:
    """Whether ``exc`` is transient: a lock or busy timeout, a lost connection, a deadlock."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if dialect == "sqlite":
        # sqlite3 raises OperationalError for SQL mistakes too; only contention is transient.
        message = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
        return isinstance(exc, OperationalError) and any(w in message for w in _SQLITE_RETRIABLE)
    return isinstance(exc, (OperationalError, InterfaceError))


def retriable(exc: BaseException, what: str, url: str) -> RetriableError:
    """A :class:`RetriableError` for ``exc`` (raise it ``from exc``), naming the store."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    reason = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else type(orig).__name__
    return RetriableError(f"{what} failed: {type(orig).__name__}: {reason}", url=describe(url))
