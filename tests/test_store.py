"""The SQL store on a real SQLite file and a real PostgreSQL: schema, upserts, time, queries."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from byflyt.errors import ConfigError, RetriableError
from byflyt.metrics import Metrics
from byflyt.models.counts import CountObservation, CountPoint, FetchedWindow
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import SCHEMA_VERSION, Fetched, Outage, PointHour, Store
from byflyt.store.engine import is_retriable
from byflyt.store.schema import (
    ensure_schema,
    format_utc,
    outages,
    point_hourly,
    schema_version,
)
from tests.helpers import kommune_hour

OSLO = ZoneInfo("Europe/Oslo")
HOUR = timedelta(hours=1)
# 2025-10-26: Oslo's clocks go from 03:00 CEST back to 02:00 CET, so 02:00 local happens twice:
# 00:00Z (02:00+02:00) and 01:00Z (02:00+01:00).
DST_END = datetime(2025, 10, 26, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'byflyt.sqlite'}"
    return str(request.getfixturevalue("pg_store_url"))


@pytest.fixture
def store(store_url: str, registry: CollectorRegistry) -> Iterator[Store]:
    with Store(store_url, metrics=Metrics(registry)) as opened:
        yield opened


def vol(
    kommune: str = "3403",
    hour: datetime = DST_END,
    value: float = 10.0,
    *,
    mode: str = "bicycle",
    metric: str = "volume",
    coverage: float = 100.0,
    n_sources: int = 1,
) -> HourlyVolume:
    return kommune_hour(
        kommune, hour, value, mode=mode, metric=metric, coverage=coverage, n_sources=n_sources
    )


def obs(
    point: str, start: datetime, volume: int | None, *, minutes: int = 60, coverage: float = 100.0
) -> CountObservation:
    return CountObservation(
        source="trafikkdata",
        point_id=point,
        kommune_nr="3403",
        start=start,
        end=start + timedelta(minutes=minutes),
        volume=volume,
        coverage=coverage,
    )


def writes(registry: CollectorRegistry, table: str) -> float:
    return registry.get_sample_value("byflyt_store_writes_total", {"table": table}) or 0.0


def failures(registry: CollectorRegistry, table: str) -> float:
    return registry.get_sample_value("byflyt_store_failures_total", {"table": table}) or 0.0


# -- schema ----------------------------------------------------------------------------------
def test_schema_is_created_once_and_reopening_keeps_the_data(store_url: str) -> None:
    with Store(store_url) as first:
        first.upsert_kommune_hourly([vol()])
    with Store(store_url) as second:
        assert second.query_hourly() == [vol()]
        names = set(inspect(second.engine).get_table_names())
        with second.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version)).scalars().all()
        indexes = {
            tuple(ix["column_names"])
            for table in ("kommune_hourly", "point_hourly")
            for ix in inspect(second.engine).get_indexes(table)
        }
        point_hour_key = inspect(second.engine).get_pk_constraint("point_hourly")
    assert {"points", "point_hourly", "kommune_hourly", "outages", "flows_hourly"} <= names
    assert versions == [SCHEMA_VERSION]
    assert ("mode", "metric", "hour_start") in indexes
    # Point-hours are keyed hour first, which serves reads by hour: no second index.
    assert point_hour_key["constrained_columns"] == ["hour_start", "source", "point_id"]
    assert ("hour_start",) not in indexes


def test_migrations_run_once_in_order_and_a_newer_schema_is_refused(store: Store) -> None:
    applied: list[int] = []

    following = SCHEMA_VERSION + 1

    def add_note(conn: Any) -> None:
        applied.append(following)
        conn.execute(text("ALTER TABLE flows_hourly ADD COLUMN note TEXT"))

    for _ in range(2):
        with store.engine.begin() as conn:
            assert ensure_schema(conn, version=following, migrations={following: add_note}) == (
                following
            )
    assert applied == [following]
    columns = {c["name"] for c in inspect(store.engine).get_columns("flows_hourly")}
    assert "note" in columns
    with pytest.raises(ConfigError, match="newer than this byflyt"):
        Store(store.url)


def test_a_version_1_store_gets_the_fetched_windows_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    with Store(url) as store, store.engine.begin() as conn:
        conn.execute(text("DROP TABLE fetched_windows"))
        conn.execute(schema_version.update().values(version=1))  # as byflyt 1 left it
    with Store(url) as store:
        assert "fetched_windows" in inspect(store.engine).get_table_names()
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version)).scalars().all()
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        assert store.query_fetched() == []


def test_a_version_2_store_gets_point_hours_keyed_by_hour_and_keeps_them(store_url: str) -> None:
    """The version 3 migration moves every stored point-hour to the hour-first key."""
    version_2 = Table(
        "point_hourly",
        MetaData(),
        *(Column(c.name, c.type, nullable=c.nullable) for c in point_hourly.c),
        PrimaryKeyConstraint("source", "point_id", "hour_start"),
        Index("ix_point_hourly_hour", "hour_start"),
    )
    t0 = datetime(2025, 10, 1, tzinfo=UTC)
    t1 = t0 + timedelta(hours=1)
    with Store(store_url) as store:
        with store.engine.begin() as conn:  # as byflyt at schema version 2 left it
            point_hourly.drop(conn)
            version_2.create(conn)
            conn.execute(schema_version.update().values(version=2))
        store.upsert_point_hourly([obs("A", t0, 5), obs("B", t1, 6), obs("B", t1, 7)])
    with Store(store_url) as store:
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version)).scalars().all()
        key = inspect(store.engine).get_pk_constraint("point_hourly")["constrained_columns"]
        indexes = [ix["name"] for ix in inspect(store.engine).get_indexes("point_hourly")]
        stored = [(p.point_id, p.hour_start, p.volume) for p in store.query_point_hourly()]
        store.upsert_point_hourly([obs("B", t1, 9)])  # the new key takes upserts
        again = [(p.point_id, p.hour_start, p.volume) for p in store.query_point_hourly()]
    assert versions == [2, 3]
    assert key == ["hour_start", "source", "point_id"]
    assert "ix_point_hourly_hour" not in indexes
    assert stored == [("A", t0, 5), ("B", t1, 7)]
    assert again == [("A", t0, 5), ("B", t1, 9)]


def test_fetched_windows_are_kept_merged_and_replays_change_nothing(store: Store) -> None:
    t0 = datetime(2025, 10, 1, tzinfo=UTC)

    def window(point: str, first: int, last: int) -> FetchedWindow:
        return FetchedWindow(
            source="telraam",
            point_id=point,
            kommune_nr="3403",
            mode="pedestrian",
            since=t0 + first * HOUR,
            until=t0 + last * HOUR,
        )

    given = [window("a", 0, 5), window("a", 10, 12), window("a", 5, 7), window("a", 3, 4)]
    given.append(window("b", 0, 1))
    for _ in range(2):
        store.add_fetched(given)
    a = [(w.since, w.until) for w in store.query_fetched(point_ids=["a"])]
    assert a == [(t0, t0 + 7 * HOUR), (t0 + 10 * HOUR, t0 + 12 * HOUR)]  # touching joins
    store.add_fetched([window("a", 6, 11)])  # bridges the gap
    assert store.query_fetched(source="telraam", start=t0, end=t0 + 2 * HOUR) == [
        Fetched("telraam", "a", t0, t0 + 12 * HOUR, "3403", "pedestrian"),
        Fetched("telraam", "b", t0, t0 + HOUR, "3403", "pedestrian"),
    ]
    assert store.query_fetched(start=t0 + 12 * HOUR) == []  # half-open
    assert store.query_fetched(kommuner=["0301"]) == []


def test_sqlite_pragmas_and_parent_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "byflyt.sqlite"
    with Store(f"sqlite:///{path}") as store, store.engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert path.is_file()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }


def test_from_settings_uses_the_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", store_url=None)
    with Store.from_settings(settings) as store:
        store.upsert_kommune_hourly([vol()])
    assert (tmp_path / "data" / "byflyt.sqlite").is_file()


# -- upserts ---------------------------------------------------------------------------------
def test_upserting_twice_converges(store: Store, registry: CollectorRegistry) -> None:
    rows = [vol(k, DST_END + timedelta(hours=h), h) for k in ("3403", "3407") for h in range(5)]
    assert store.upsert_kommune_hourly(rows) == 10
    first = store.query_hourly()
    assert store.upsert_kommune_hourly(reversed(rows)) == 10
    assert store.query_hourly() == first == sorted(rows, key=lambda r: r.key)
    assert writes(registry, "kommune_hourly") == 20


def test_a_correction_replaces_and_the_last_row_of_a_batch_wins(store: Store) -> None:
    store.upsert_kommune_hourly([vol(value=10)])
    store.upsert_kommune_hourly([vol(value=12, coverage=87.5, n_sources=2)])
    assert store.query_hourly() == [vol(value=12, coverage=87.5, n_sources=2)]
    assert store.upsert_kommune_hourly([vol(value=1), vol(value=2), vol(value=3)]) == 1
    assert [r.value for r in store.query_hourly()] == [3.0]


def test_delete_removes_only_the_given_keys(store: Store, registry: CollectorRegistry) -> None:
    hours = [DST_END + timedelta(hours=h) for h in range(3)]
    store.upsert_kommune_hourly([vol(hour=h) for h in hours])
    keys = [("3403", "bicycle", "volume", hours[0]), ("3403", "bicycle", "volume", hours[0])]
    missing = ("3403", "bicycle", "volume", hours[0] - timedelta(hours=5))
    assert store.delete_kommune_hourly([*keys, missing]) == 1
    assert store.delete_kommune_hourly([missing]) == 0
    assert [r.hour_start for r in store.query_hourly()] == hours[1:]
    assert writes(registry, "kommune_hourly") == 4


def test_write_hourly_applies_deletes_and_upserts(store: Store) -> None:
    old, new = vol(hour=DST_END), vol(hour=DST_END + timedelta(hours=1))
    store.upsert_kommune_hourly([old])
    store.write_hourly([new], [("3403", "bicycle", "volume", DST_END)])
    assert store.query_hourly() == [new]


def test_write_hourly_is_one_transaction(store: Store, registry: CollectorRegistry) -> None:
    kept = vol(hour=DST_END)
    store.upsert_kommune_hourly([kept])
    good = [vol("3407", DST_END + timedelta(hours=h)) for h in range(2500)]
    # Unvalidated on purpose: the database itself rejects it (value is NOT NULL), after the
    # delete and the first chunks of the batch have been executed.
    bad = HourlyVolume.model_construct(**{**vol("3420").model_dump(), "value": None})
    with pytest.raises(IntegrityError):
        store.write_hourly([*good, bad], [("3403", "bicycle", "volume", DST_END)])
    assert store.query_hourly() == [kept]
    assert failures(registry, "kommune_hourly") == 1
    assert writes(registry, "kommune_hourly") == 1


def test_big_batches_are_chunked(store: Store) -> None:
    calls: list[int] = []

    def count(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        calls.append(len(multiparams))

    rows = [vol("3403", DST_END + timedelta(hours=h), h) for h in range(5000)]
    event.listen(store.engine, "before_execute", count)
    try:
        assert store.upsert_kommune_hourly(rows) == 5000
    finally:
        event.remove(store.engine, "before_execute", count)
    assert len(store.query_hourly()) == 5000
    assert len(calls) <= 6  # at most five statements (plus the BEGIN on SQLite)


def test_a_point_hour_given_twice_in_one_statement_keeps_the_last(store: Store) -> None:
    """The cycling flush writes point-hours in the order counted, repeats included."""
    first = int(DST_END.timestamp())
    rows = [
        ("trafikkdata", "P1", first, "3403", "bicycle", 5, 100.0),
        ("trafikkdata", "P2", first, "3403", "bicycle", 6, 100.0),
        ("trafikkdata", "P1", first, "3403", "bicycle", None, 25.0),  # a correction
        ("trafikkdata", "P2", first + 3600, "3403", "bicycle", 8, 100.0),
        ("trafikkdata", "P1", first, "3403", "bicycle", 9, 75.0),  # corrected again
    ]
    store.write_counts([], rows, [], [])
    stored = {
        (p.point_id, p.hour_start): (p.volume, p.coverage) for p in store.query_point_hourly()
    }
    hour = datetime.fromtimestamp(first, UTC)
    assert stored == {
        ("P1", hour): (9, 75.0),
        ("P2", hour): (6, 100.0),
        ("P2", hour + timedelta(hours=1)): (8, 100.0),
    }


def test_a_correction_in_a_later_chunk_of_one_write_wins(store: Store) -> None:
    """Rows go in the order given across a write's statements (chunks of up to 4,096 rows)."""
    first = int(DST_END.timestamp())
    rows = [
        ("trafikkdata", f"P{i % 50}", first + 3600 * (i // 50), "3403", "bicycle", i, 100.0)
        for i in range(8000)
    ]
    corrections = [(*row[:5], 7 if row[5] % 2 else None, 50.0) for row in rows[:1001]]
    store.write_counts([], rows + corrections, [], [])
    stored = {
        (p.point_id, p.hour_start): (p.volume, p.coverage) for p in store.query_point_hourly()
    }
    expected = {
        (point_id, datetime.fromtimestamp(hour, UTC)): (volume, coverage)
        for _, point_id, hour, _, _, volume, coverage in rows + corrections  # the last wins
    }
    assert stored == expected
    assert stored[("P0", DST_END)] == (None, 50.0)  # corrected (the write's 8,001st row)
    assert stored[("P1", DST_END)] == (7, 50.0)
    assert stored[("P1", DST_END + timedelta(hours=20))] == (1001, 100.0)  # not corrected


def test_concurrent_writers_converge(store_url: str) -> None:
    rows = [vol(k, DST_END + timedelta(hours=h), h) for k in ("3403", "3407") for h in range(300)]
    errors: list[BaseException] = []

    shared = Store(store_url)

    def writer(seed: int) -> None:
        # Even threads open their own store, like separate processes; odd ones share one.
        try:
            mine = Store(store_url) if seed % 2 == 0 else shared
            for i in range(5):
                batch = rows[(seed * 37 + i * 53) % 300 :] + rows[: (seed * 11) % 200]
                mine.write_hourly(batch, [])
                mine.query_hourly(kommuner=["3403"])
            if mine is not shared:
                mine.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shared.query_hourly() == sorted(rows, key=lambda r: r.key)
    shared.close()


# -- time ------------------------------------------------------------------------------------
def test_aware_utc_round_trip_through_the_repeated_local_hour(store: Store) -> None:
    hours = [DST_END + timedelta(hours=h) for h in range(-2, 3)]
    store.upsert_kommune_hourly([vol(hour=h, value=i) for i, h in enumerate(hours)])
    back = store.query_hourly()
    assert [r.hour_start for r in back] == hours
    assert all(r.hour_start.tzinfo is UTC for r in back)
    local = [r.hour_start.astimezone(OSLO) for r in back]
    assert [t.strftime("%H:%M%z") for t in local[2:]] == ["02:00+0200", "02:00+0100", "03:00+0100"]


def test_local_times_are_stored_as_utc(store: Store) -> None:
    # The second 02:00 in Oslo (fold=1) is 01:00Z; the store converts it, not the caller.
    second_two = datetime(2025, 10, 26, 2, tzinfo=OSLO, fold=1)
    store.upsert_outage("trafikkdata", "P1", "silent", second_two, None, "3403")
    (outage,) = store.query_outages()
    assert outage.started == datetime(2025, 10, 26, 1, tzinfo=UTC)
    assert outage.started.tzinfo is UTC


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2025, 10, 26, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        store.query_hourly(start=naive)
    with pytest.raises(ValueError, match="naive"):
        store.delete_kommune_hourly([("3403", "bicycle", "volume", naive)])
    with pytest.raises(ValueError, match="naive"):
        store.upsert_outage("s", "p", "silent", naive, None)
    row = {"source": "s", "point_id": "p", "kind": "silent", "started": naive, "details": ""}
    with pytest.raises(StatementError, match="naive"), store.engine.begin() as conn:
        conn.execute(insert(outages), row)


# -- queries ---------------------------------------------------------------------------------
def test_query_filters_and_half_open_range(store: Store) -> None:
    hours = [DST_END + timedelta(hours=h) for h in range(4)]
    rows = [
        *(vol("3403", h, 1) for h in hours),
        *(vol("3407", h, 2) for h in hours),
        vol("3403", hours[0], 5, mode="pedestrian"),
        vol("3403", hours[0], 0.5, metric="mean_speed"),
    ]
    store.upsert_kommune_hourly(rows)
    window = store.query_hourly(start=hours[1], end=hours[3], kommuner=["3407"])
    assert [r.hour_start for r in window] == hours[1:3]
    assert len(store.query_hourly(mode="bicycle", metric="volume")) == 8
    assert [r.value for r in store.query_hourly(mode="pedestrian")] == [5.0]
    assert [r.metric for r in store.query_hourly(kommuner=["3403"], end=hours[1])] == [
        "mean_speed",
        "volume",
        "volume",
    ]
    assert store.query_hourly(kommuner=[]) == []
    assert store.query_hourly(start=hours[3], end=hours[3]) == []
    with pytest.raises(TypeError, match="sequence of strings"):
        store.query_hourly(kommuner="3403")
    with pytest.raises(TypeError, match="unexpected filter"):  # a typo never widens a query
        store.total_hourly(kommune=["3403"])


def test_point_hours_keep_the_latest_per_utc_hour(
    store: Store, registry: CollectorRegistry
) -> None:
    quarter = DST_END + timedelta(minutes=15)
    observations = [
        obs("P1", DST_END, 10),
        obs("P1", DST_END, 12),  # a correction of the same hour
        obs("P1", quarter, 4, minutes=15),  # a sub-hour interval lands in its start hour
        obs("P2", DST_END, None, coverage=0.0),  # missing stays missing, never zero
        obs("P2", DST_END + timedelta(hours=1), 7),
    ]
    assert store.upsert_point_hourly(observations) == 3
    store.upsert_point_hourly(observations[:1])  # a late replay of an old value replaces too
    assert store.query_point_hourly() == [
        PointHour("trafikkdata", "P1", DST_END, "3403", "bicycle", 10, 100.0),
        PointHour("trafikkdata", "P2", DST_END, "3403", "bicycle", None, 0.0),
        PointHour("trafikkdata", "P2", DST_END + timedelta(hours=1), "3403", "bicycle", 7, 100.0),
    ]
    assert [p.point_id for p in store.query_point_hourly(point_ids=["P2"], start=DST_END)] == [
        "P2",
        "P2",
    ]
    assert store.query_point_hourly(kommuner=["3407"]) == []
    assert store.query_point_hourly(source="other") == []
    assert len(store.query_point_hourly(end=DST_END + timedelta(hours=1))) == 2
    assert writes(registry, "point_hourly") == 4


def test_write_counts_last_point_hour_wins_in_key_order(
    store: Store, registry: CollectorRegistry
) -> None:
    # The cycling flush's shape: hours as epoch seconds, given in arrival order, not key order.
    first = int(DST_END.timestamp())
    second = first + 3600  # 02:00 local again (CET): its own UTC hour
    store.write_counts(
        [],
        [
            ("trafikkdata", "P2", second, "3403", "bicycle", 7, 100.0),
            ("trafikkdata", "P1", first, "3403", "bicycle", 10, 100.0),
            ("trafikkdata", "P2", first, "3403", "bicycle", None, 0.0),
            ("trafikkdata", "P1", first, "3403", "bicycle", 12, 87.5),  # the same key: wins
        ],
        [vol(hour=DST_END, value=12.0), vol(hour=DST_END + HOUR, value=7.0)],
        [],
    )
    store.write_counts(
        [],
        [("trafikkdata", "P2", second, "3403", "bicycle", 9, 100.0)],  # a correction
        [vol(hour=DST_END + HOUR, value=9.0)],
        [("3403", "bicycle", "volume", DST_END)],
    )
    assert store.query_point_hourly() == [
        PointHour("trafikkdata", "P1", DST_END, "3403", "bicycle", 12, 87.5),
        PointHour("trafikkdata", "P2", DST_END, "3403", "bicycle", None, 0.0),
        PointHour("trafikkdata", "P2", DST_END + HOUR, "3403", "bicycle", 9, 100.0),
    ]
    assert store.query_hourly() == [vol(hour=DST_END + HOUR, value=9.0)]
    assert writes(registry, "point_hourly") == 5  # the rows given (the flush gives one a key)
    assert writes(registry, "kommune_hourly") == 4


def test_bulk_writes_keep_every_value_exactly(store: Store) -> None:
    # A bulk upsert travels as one JSON array a statement on SQLite: text JSON must escape,
    # reals to the last bit, nulls and large integers come back exactly as given.
    first = int(DST_END.timestamp())
    points = [
        'quote " and \\ backslash',
        "Sjøgata/Ørje — «sykkel»",
        "tab\tnew\nline",
        "emoji 🚲 and \u2028",
        "apostrophe ' here",
    ]
    coverages = [0.1 + 0.2, 100 / 3, 5e-324, 99.99999999999999, 0.0]
    given = [
        PointHour("trafikkdata", point, DST_END + i * HOUR, "3403", "bicycle", volume, coverage)
        for i, (point, coverage, volume) in enumerate(
            zip(points, coverages, (None, 2**31 - 1, 0, 1, None), strict=True)
        )
    ]
    store.write_counts(
        [],
        [
            (p.source, p.point_id, first + i * 3600, p.kommune_nr, p.mode, p.volume, p.coverage)
            for i, p in enumerate(given)
        ],
        [],
        [],
    )
    assert sorted(store.query_point_hourly(), key=str) == sorted(given, key=str)
    if store.engine.dialect.name == "sqlite":
        # SQL makes the hour's text from epoch seconds: the text every other write stores.
        with store.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT hour_start FROM point_hourly").scalars()
            assert sorted(stored) == sorted(format_utc(p.hour_start) for p in given)


def test_point_hours_of_reads_exactly_the_kommune_hours_asked_for(store: Store) -> None:
    first = int(DST_END.timestamp())
    given = [
        (point, first + h * 3600, kommune, mode)
        for point, kommune, mode in (("A", "3403", "bicycle"), ("B", "3407", "bicycle"))
        for h in (0, 1, 2, 900)
    ] + [("C", first, "3403", "foot")]
    store.write_counts(
        [],
        [("trafikkdata", p, hour, k, m, hour % 7, 100.0) for p, hour, k, m in given],
        [],
        [],
    )
    asked = [
        ("3403", "bicycle", DST_END),  # a run of two hours ...
        ("3403", "bicycle", DST_END + HOUR),
        ("3403", "bicycle", DST_END + 900 * HOUR),  # ... and one 900 hours later
        ("3407", "bicycle", DST_END + 2 * HOUR),
        ("3420", "bicycle", DST_END),  # nothing stored
    ]
    assert sorted(store.point_hours_of(asked)) == sorted(
        (k, m, utc_hour, f"trafikkdata:{p}", hour % 7, 100.0)
        for p, hour, k, m in given
        for utc_hour in [datetime.fromtimestamp(hour, UTC)]
        if (k, m, utc_hour) in set(asked)
    )
    assert len(store.point_hours_of(asked)) == 4
    assert store.point_hours_of([]) == []


def test_points_upsert_and_query(store: Store) -> None:
    point = CountPoint(
        source="trafikkdata",
        point_id="12345V1234",
        name="Hamar stasjon",
        kommune_nr="3403",
        lat=60.79,
        lon=11.07,
        first_data=datetime(2020, 1, 1, tzinfo=OSLO),
        latest_data=DST_END,
        operational_status="OPERATIONAL",
    )
    other = point.model_copy(update={"point_id": "2", "kommune_nr": "3407", "mode": "pedestrian"})
    assert store.upsert_points([point, other]) == 2
    renamed = point.model_copy(update={"name": "Hamar st.", "latest_data": None})
    store.upsert_points([renamed])
    assert store.query_points() == [renamed, other]
    assert store.query_points(kommuner=["3403"]) == [renamed]
    assert store.query_points(mode="pedestrian") == [other]
    assert store.query_points()[0].first_data == datetime(2019, 12, 31, 23, tzinfo=UTC)


def test_outages_open_and_close(store: Store) -> None:
    start = DST_END - timedelta(hours=6)
    store.upsert_outage("trafikkdata", "P1", "silent", start, None, "3403", "no data for 6 h")
    store.upsert_outage("trafikkdata", "P2", "flat", start + timedelta(hours=1), None, "3407")
    assert [o.point_id for o in store.query_outages(open_only=True)] == ["P1", "P2"]
    # Closing without the kommune keeps the stored one.
    store.upsert_outage("trafikkdata", "P1", "silent", start, DST_END, None, "back")
    assert store.query_outages(open_only=True) == [
        Outage("trafikkdata", "P2", "flat", start + timedelta(hours=1), None, "3407", "")
    ]
    (closed,) = store.query_outages(kommuner=["3403"])
    assert closed == Outage("trafikkdata", "P1", "silent", start, DST_END, "3403", "back")
    assert not closed.is_open
    assert len(store.query_outages()) == 2


# -- failures --------------------------------------------------------------------------------
def test_a_locked_sqlite_database_is_retriable(tmp_path: Path) -> None:
    path = tmp_path / "byflyt.sqlite"
    registry = CollectorRegistry()
    with Store(f"sqlite:///{path}?timeout=0.2", metrics=Metrics(registry)) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(RetriableError, match="locked") as caught:
                store.upsert_kommune_hourly([vol()])
        finally:
            holder.close()
        assert isinstance(caught.value.__cause__, OperationalError)
        assert failures(registry, "kommune_hourly") == 1
        store.upsert_kommune_hourly([vol()])  # the lock is gone: the retry succeeds
        assert store.query_hourly() == [vol()]


def test_sql_mistakes_on_sqlite_are_not_retriable(tmp_path: Path) -> None:
    # sqlite3 raises OperationalError for a missing table too; retrying that would loop forever.
    with (
        Store(f"sqlite:///{tmp_path / 'byflyt.sqlite'}") as store,
        store.engine.connect() as conn,
        pytest.raises(OperationalError) as caught,
    ):
        conn.execute(text("SELECT * FROM missing"))
    assert not is_retriable(caught.value, "sqlite")


def test_an_unreachable_postgresql_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://byflyt@127.0.0.1:{port}/byflyt?connect_timeout=2"
    with pytest.raises(RetriableError, match="opening the store failed"):
        Store(url)
