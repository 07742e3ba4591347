"""Fault 4: two workers share the partitions, one is SIGKILLed, a third joins under load."""

from __future__ import annotations

import signal

import pytest

from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kafka]


def records_in(port: int) -> float:
    return harness.scraped(port, "byflyt_observations_total")


def test_sigkill_one_of_two_then_a_third_joins(fault_run: RunFactory) -> None:
    run = fault_run(partitions=4)
    workload = harness.observations(hours=72, seed=44)
    third = len(workload) // 3
    truth = expected_rows(workload)
    ports = [harness.free_port() for _ in range(3)]

    harness.send(run.settings, workload[:third])
    first = run.worker("worker-1", web_port=ports[0])
    second = run.worker("worker-2", web_port=ports[1])
    wait_until(
        lambda: records_in(ports[0]) > 0 and records_in(ports[1]) > 0,
        120,
        "both workers to hold partitions and process records",
    )
    harness.send(run.settings, workload[third : 2 * third])
    first.signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    survivor_before = records_in(ports[1])

    # The survivor takes over the dead worker's partitions; then a third worker joins.
    third_worker = run.worker("worker-3", web_port=ports[2])
    harness.send(run.settings, workload[2 * third :])
    harness.wait_for_store(run.settings, truth, 180, "the store to equal the truth")
    wait_until(
        lambda: harness.group_lag(run.settings),
        60,
        "the group to commit everything",
        until=lambda lag: lag == 0,
    )
    harness.assert_exact(run.settings, truth)
    assert records_in(ports[1]) > survivor_before, "the survivor processed nothing after the kill"
    wait_until(lambda: records_in(ports[2]) > 0 or None, 30, "the third worker to get partitions")
    assert second.alive()
    assert third_worker.alive()
    harness.no_tracebacks([second, third_worker])
