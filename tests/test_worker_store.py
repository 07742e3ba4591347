"""The sinks' writer thread and their reads, against a write held up by a locked store.

Here a write meets a real SQLite file locked by another writer (a transient failure, retried),
and a read is asked for between two of its attempts. ``WorkerStore.read`` runs behind the
write, so it must wait for the write to go through and see it. ``read_committed`` (the
cycling sink's reads for its next batch, which hold in memory what a write in flight
carries) must not wait: it answers from what is committed, and sees the write once it is.
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


async def _write_beside_read(
    shared: WorkerStore, holder: sqlite3.Connection, registry: CollectorRegistry
) -> tuple[list[object], list[object]]:
    cells = [("3403", "bicycle", HOUR)]
    write = asyncio.ensure_future(
        shared.run(lambda store: store.upsert_point_hourly([_observation(17)]))
    )
    while not _failures(registry):  # the first attempt has timed out on the lock
        await asyncio.sleep(0.01)
    before = await asyncio.wait_for(
        shared.read_committed(lambda store: store.point_hours_of(cells)), 5
    )
    assert not write.done(), "the write went through while the store was locked"
    holder.execute("ROLLBACK")
    await write
    after = await shared.read_committed(lambda store: store.point_hours_of(cells))
    return list(before), list(after)


def test_a_committed_read_does_not_wait_for_a_write_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    registry = CollectorRegistry()
    store = Store(f"sqlite:///{path}?timeout=0.2", metrics=Metrics(registry))
    shared = WorkerStore(store)
    assert store.reads_beside_writes
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        before, after = asyncio.run(_write_beside_read(shared, holder, registry))
    finally:
        holder.close()
        shared.executor.shutdown()
        shared.reader.shutdown()
        store.close()
    assert before == []
    assert after == [("3403", "bicycle", HOUR, "trafikkdata:P1", 17, 100.0)]


def test_an_in_memory_store_reads_on_the_writer_thread() -> None:
    store = Store("sqlite:///:memory:", metrics=Metrics(CollectorRegistry()))
    try:
        assert not store.reads_beside_writes
    finally:
        store.close()
