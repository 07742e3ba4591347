"""Fault 6: a worker restarted after its state topic (changelog) was deleted.

It must rebuild its state from its input, or refuse to start with one line saying what to do;
it must never serve numbers computed from a partial state.
"""

from __future__ import annotations

import pytest
from kafka.structs import TopicPartition

from byflyt.kafka import admin
from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory

pytestmark = [pytest.mark.faults, pytest.mark.kafka]


def test_worker_after_its_changelog_was_deleted(fault_run: RunFactory) -> None:
    run = fault_run()
    workload = harness.observations(seed=66)
    # Half of every kommune's points first, the other half (and the corrections) after the loss:
    # a worker that forgot the first half would sum the second half alone.
    early = [o for o in workload[:-40] if o.point_id in ("F1", "F3", "F4")]
    late = [o for o in workload if o not in early]
    harness.send(run.settings, early)
    run.drain("drain-1")
    harness.assert_exact(run.settings, expected_rows(early))

    lost = harness.delete_changelogs(run.settings)
    harness.send(run.settings, late)
    rebuilt = run.drain("drain-2", timeout=180)
    harness.assert_exact(run.settings, expected_rows(early + late))
    said = [line for line in rebuilt.output().splitlines() if "rebuilding the state" in line]
    assert len(said) == 1, rebuilt.output()[-3000:]
    assert all(name in said[0] for name in lost), said[0]

    # With its state back, the next start is an ordinary one.
    again = run.drain("drain-3")
    assert "rebuilding" not in again.output()
    harness.assert_exact(run.settings, expected_rows(early + late))
    harness.no_tracebacks(run.procs)


def test_refuses_to_start_when_the_input_cannot_rebuild_it(fault_run: RunFactory) -> None:
    run = fault_run()
    workload = harness.observations(hours=6, seed=67, corrections=0)
    harness.send(run.settings, workload)
    run.drain("drain-1")
    lost = harness.delete_changelogs(run.settings)
    # Retention removed the oldest input: the state can no longer be recomputed from it.
    client = admin(run.settings)
    try:
        client.delete_records({TopicPartition(run.settings.topic("bike.counts"), 0): 1})
    finally:
        client.close()

    refused = run.byflyt("drain-2", "worker", "--drain")
    assert refused.wait(60) == 1
    lines = refused.output().strip().splitlines()
    assert len(lines) == 1, refused.output()
    assert all(name in lines[0] for name in lost), lines[0]
    assert "cannot be rebuilt" in lines[0]
    assert "restore the topic, or delete group" in lines[0]
    assert harness.store_rows(run.settings) == expected_rows(
        workload
    )  # untouched, not half-rebuilt
