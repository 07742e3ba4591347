"""Fault 2: the store goes away while the worker flushes (PostgreSQL stopped, SQLite locked).

The worker must keep the batch it could not write unacknowledged, retry with back-off, say so
(``byflyt_store_failures_total`` on /metrics), and converge once the store is back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kafka]
PG_DOWN_S = 30.0
SQLITE_LOCKED_S = 15.0


def failures(port: int) -> float:
    return harness.scraped(port, "byflyt_store_failures_total")


def survives(
    run: harness.Run,
    seed: int,
    outage: AbstractContextManager[object],
    lasting: float,
    report_s: float,
) -> float:
    """Half the workload stored, the rest sent while ``outage`` holds the store away for
    ``lasting`` s: the worker reports failed writes within ``report_s``, stays up and converges
    to the exact result once the store is back. The failed writes it counted during the outage."""
    workload = harness.observations(seed=seed)
    half = len(workload) // 2
    truth = expected_rows(workload)
    port = harness.free_port()
    harness.send(run.settings, workload[:half])
    worker = run.worker("worker", web_port=port)
    wait_until(lambda: harness.store_rows(run.settings), 120, "the first rows in the store")

    with outage:
        began = time.monotonic()
        harness.send(run.settings, workload[half:])
        wait_until(lambda: failures(port) > 0, report_s, "the worker to report failed writes")
        time.sleep(max(0.0, lasting - (time.monotonic() - began)))
        assert worker.alive(), f"the worker exited while the store was away:\n{worker.output()}"
    failed_during_outage = failures(port)

    harness.wait_for_store(run.settings, truth, 90)
    harness.assert_exact(run.settings, truth)
    assert worker.alive()
    harness.no_tracebacks([worker])
    return failed_during_outage


@contextmanager
def stopped(pg: harness.PrivatePostgres) -> Iterator[None]:
    """PostgreSQL stopped (its data kept), started again on leaving."""
    pg.halt()
    try:
        yield
    finally:
        pg.resume()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """The SQLite file held by another writer's exclusive transaction."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.postgres
def test_postgres_stopped_for_30s_while_the_worker_flushes(
    fault_run: RunFactory, fault_pg: harness.PrivatePostgres, pg_database: str
) -> None:
    run = fault_run(store_url=pg_database)
    failed_during_outage = survives(run, 21, stopped(fault_pg), PG_DOWN_S, report_s=PG_DOWN_S)
    assert failed_during_outage >= 2, "one failure and no retry is not a retry with back-off"


def test_sqlite_held_locked_by_another_writer(fault_run: RunFactory, tmp_path: Path) -> None:
    # A 2 s busy timeout (the URL's documented override) instead of 30 s keeps the test short.
    path = tmp_path / "store.sqlite"
    run = fault_run(store_url=f"sqlite:///{path}?timeout=2")
    survives(run, 22, locked(path), SQLITE_LOCKED_S, report_s=60)
