"""Fault 3: every message delivered twice, and a whole topic replayed into a full store."""

from __future__ import annotations

import signal

import pytest

from byflyt.kafka import admin
from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kafka]


def test_every_batch_twice_then_a_replay_from_offset_zero(fault_run: RunFactory) -> None:
    run = fault_run()
    workload = harness.observations()
    truth = expected_rows(workload)
    # A producer that re-sends every batch it sent: each record arrives twice, in order.
    for i in range(0, len(workload), 50):
        batch = workload[i : i + 50]
        harness.send(run.settings, batch)
        harness.send(run.settings, batch)

    port = harness.free_port()
    worker = run.worker("worker", web_port=port)
    harness.wait_for_store(run.settings, truth, 120, "the store to equal the truth")
    # The metrics say every record was seen twice, yet the table counts each once.
    seen = wait_until(
        lambda: (
            # Every delivery of bike.counts is counted as it is read, repeats included.
            harness.scraped(port, "byflyt_observations_total") == 2 * len(workload)
        ),
        30,
        "the worker to count every delivery",
    )
    assert seen
    assert harness.scraped(port, "byflyt_observations_total") == 2 * len(workload)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()[-3000:]
    harness.assert_exact(run.settings, truth)

    # The same group replays the whole topic from offset 0 into the store that has the results.
    client = admin(run.settings)
    try:
        assert client.delete_groups([run.settings.app_id]) == {run.settings.app_id: "OK"}
    finally:
        client.close()
    run.drain("replay-same-group")
    harness.assert_exact(run.settings, truth)

    # A new group (fresh state, rebuilt from the input alone) replays it once more.
    replay = run.settings.model_copy(update={"app_id": run.settings.app_id + "-replay"})
    run.settings = replay
    run.drain("replay-new-group")
    harness.assert_exact(run.settings, truth)
    harness.no_tracebacks(run.procs)
