"""Fault 3: every message delivered twice, and a whole topic replayed into a full store."""

from __future__ import annotations

import signal

import pytest

from byflyt.kafka import admin
from tests.cycling_expect import expected_rows
from tests.faults.conftest import RunFactory
from tests.faults.harness import (
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


def test_every_batch_twice_then_a_replay_from_offset_zero(fault_run: RunFactory) -> None:
    run = fault_run()
    workload = observations()
    truth = expected_rows(workload)
    # A producer that re-sends every batch it sent: each record arrives twice, in order.
    for i in range(0, len(workload), 50):
        batch = workload[i : i + 50]
        send(run.settings, batch)
        send(run.settings, batch)

    port = free_port()
    worker = run.worker("worker", web_port=port)
    wait_until(
        lambda: store_rows(run.settings),
        120,
        "the store to equal the truth",
        until=lambda rows: rows == truth,
    )
    # The metrics say every record was seen twice, yet the table counts each once.
    seen = wait_until(
        lambda: (
            # Every delivery of bike.counts is counted as it is read, repeats included.
            metric_sum(scrape(port), "byflyt_observations_total") == 2 * len(workload)
        ),
        30,
        "the worker to count every delivery",
    )
    assert seen
    text = scrape(port)
    assert metric_sum(text, "byflyt_observations_total") == 2 * len(workload)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()[-3000:]
    assert_exact(run.settings, truth)

    # The same group replays the whole topic from offset 0 into the store that has the results.
    client = admin(run.settings)
    try:
        assert client.delete_groups([run.settings.app_id]) == {run.settings.app_id: "OK"}
    finally:
        client.close()
    run.drain("replay-same-group")
    assert_exact(run.settings, truth)

    # A new group (fresh state, rebuilt from the input alone) replays it once more.
    replay = run.settings.model_copy(update={"app_id": run.settings.app_id + "-replay"})
    run.settings = replay
    run.drain("replay-new-group")
    assert_exact(run.settings, truth)
    no_tracebacks(run.procs)
