"""The sinks' writer thread: a read asked for after a write sees it, even while it is retried.

The cycling sink writes a batch while the next one is applied; a kommune-hour that batch needs
is read from ``point_hourly`` behind that write. Here the write meets a real SQLite file locked
by another writer (a transient failure, retried), and the read is asked for between two of its
attempts: it must wait for the write to go through, not read the store without it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from byflyt.metrics import Metrics
from byflyt.models.counts import CountObservation
from byflyt.store import Store
from byflyt.streams.sink import WorkerStore

HOUR = datetime(2025, 5, 6, 7, tzinfo=UTC)


def _observation(volume: int) -> CountObservation:
    return CountObservation(
        source="trafikkdata",
        point_id="P1",
        kommune_nr="3403",
        start=HOUR,
        end=HOUR + timedelta(hours=1),
        volume=volume,
        coverage=100.0,
    )


def _failures(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value("byflyt_store_failures_total", {"table": "point_hourly"})
    return value or 0.0


async def _write_then_read(
    shared: WorkerStore, holder: sqlite3.Connection, registry: CollectorRegistry
) -> list[object]:
    write = asyncio.ensure_future(
        shared.run(lambda store: store.upsert_point_hourly([_observation(17)]))
    )
    while not _failures(registry):  # the first attempt has timed out on the lock
        await asyncio.sleep(0.01)
    read = asyncio.ensure_future(
        shared.read(lambda store: store.point_hours_of([("3403", "bicycle", HOUR)]))
    )
    await asyncio.sleep(0.8)
    assert not read.done(), "the read ran while the write before it had not gone through"
    holder.execute("ROLLBACK")
    await write
    return list(await read)


def test_a_read_behind_a_retried_write_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = Store(f"sqlite:///{path}?timeout=0.2", metrics=metrics)
    shared = WorkerStore(store)
    assert store.point_hours_of([("3403", "bicycle", HOUR)]) == []  # a pooled connection, in WAL
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        rows = asyncio.run(_write_then_read(shared, holder, registry))
    finally:
        holder.close()
        shared.executor.shutdown()
        store.close()
    assert rows == [("3403", "bicycle", HOUR, "trafikkdata:P1", 17, 100.0)]
    assert _failures(registry) >= 1
