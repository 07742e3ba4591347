"""Fault 2: the store goes away while the worker flushes (PostgreSQL stopped, SQLite locked).

The worker must keep the batch it could not write unacknowledged, retry with back-off, say so
(``byflyt_store_failures_total`` on /metrics), and converge once the store is back.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.cycling_expect import expected_rows
from tests.faults.conftest import RunFactory
from tests.faults.harness import (
    PrivatePostgres,
    assert_exact,
    free_port,
    metric_sum,
    no_tracebacks,
    observations,
    scrape,
    send,
    store_rows,
)
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kafka]
PG_DOWN_S = 30.0
SQLITE_LOCKED_S = 15.0


def failures(port: int) -> float:
    return metric_sum(scrape(port), "byflyt_store_failures_total")


@pytest.mark.postgres
def test_postgres_stopped_for_30s_while_the_worker_flushes(
    fault_run: RunFactory, fault_pg: PrivatePostgres, pg_database: str
) -> None:
    run = fault_run(store_url=pg_database)
    workload = observations(seed=21)
    half = len(workload) // 2
    truth = expected_rows(workload)
    port = free_port()
    send(run.settings, workload[:half])
    worker = run.worker("worker", web_port=port)
    wait_until(lambda: store_rows(run.settings), 120, "the first rows in the store")

    fault_pg.halt()
    stopped = time.monotonic()
    try:
        send(run.settings, workload[half:])
        wait_until(lambda: failures(port) > 0, PG_DOWN_S, "the worker to report failed writes")
        time.sleep(max(0.0, PG_DOWN_S - (time.monotonic() - stopped)))
        assert worker.alive(), f"the worker exited while the database was down:\n{worker.output()}"
    finally:
        fault_pg.resume()
    failed_during_outage = failures(port)

    wait_until(
        lambda: store_rows(run.settings),
        90,
        "the store to converge",
        until=lambda rows: rows == truth,
    )
    assert_exact(run.settings, truth)
    assert failed_during_outage >= 2, "one failure and no retry is not a retry with back-off"
    assert worker.alive()
    no_tracebacks([worker])


def test_sqlite_held_locked_by_another_writer(fault_run: RunFactory, tmp_path: Path) -> None:
    # A 2 s busy timeout (the URL's documented override) instead of 30 s keeps the test short.
    path = tmp_path / "store.sqlite"
    run = fault_run(store_url=f"sqlite:///{path}?timeout=2")
    workload = observations(seed=22)
    half = len(workload) // 2
    truth = expected_rows(workload)
    port = free_port()
    send(run.settings, workload[:half])
    worker = run.worker("worker", web_port=port)
    wait_until(lambda: store_rows(run.settings), 120, "the first rows in the store")

    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    locked = time.monotonic()
    try:
        send(run.settings, workload[half:])
        wait_until(lambda: failures(port) > 0, 60, "the worker to report failed writes")
        time.sleep(max(0.0, SQLITE_LOCKED_S - (time.monotonic() - locked)))
        assert worker.alive(), f"the worker exited while the store was locked:\n{worker.output()}"
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    wait_until(
        lambda: store_rows(run.settings),
        90,
        "the store to converge",
        until=lambda rows: rows == truth,
    )
    assert_exact(run.settings, truth)
    assert worker.alive()
    no_tracebacks([worker])
