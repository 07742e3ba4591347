"""Fault 5: a connector SIGKILLed in the middle of a paged backfill, then started again.

The second run resumes every point from its checkpoint (points finished before the kill are
not fetched or produced again), and the result has no gap and no double count.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime

import pytest

from byflyt.models.counts import CountObservation
from byflyt.models.envelope import Checkpoint
from byflyt.samples.trafikkdata import mjosbyen_week
from byflyt.samples.trafikkdata_server import Fault, TrafikkdataServer
from byflyt.settings import Settings
from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory
from tests.helpers import wait_until
from tests.kafka_util import read_all

pytestmark = [pytest.mark.faults, pytest.mark.kafka]
SINCE = datetime(2025, 10, 21, 22, tzinfo=UTC)  # 2025-10-22 00:00 Europe/Oslo


def checkpoints(settings: Settings) -> dict[str, str]:
    """Point → saved position, read from the checkpoint topic."""
    latest: dict[str, str] = {}
    for _, value in read_all(settings, settings.topic("connector.checkpoints")):
        if value is not None:
            checkpoint = Checkpoint.from_bytes(value)
            latest[checkpoint.item] = checkpoint.position
    return latest


def produced_per_point(settings: Settings) -> Counter[str]:
    """How many observations of each point are in ``bike.counts``."""
    return Counter(
        CountObservation.from_bytes(value).point_id
        for _, value in read_all(settings, settings.topic("bike.counts"))
        if value is not None
    )


def hours_requests(server: TrafikkdataServer, point: str, first: int = 0) -> list[dict[str, str]]:
    """The ``byHour`` variables of every request for ``point`` from request ``first`` on."""
    bodies = [r.json() for r in server.requests[first:]]
    return [
        body["variables"]
        for body in bodies
        if isinstance(body, dict) and (body.get("variables") or {}).get("id") == point
    ]


def test_sigkill_mid_backfill_resumes_from_checkpoints(fault_run: RunFactory) -> None:
    run = fault_run()
    dataset = mjosbyen_week(1)
    delivered = harness.connector_observations(dataset, "mjosbyen", SINCE)
    truth = expected_rows(delivered)
    ingest = (
        "ingest",
        "trafikkdata",
        "--region",
        "mjosbyen",
        "--from",
        "2025-10-22",
        "--once",
    )
    with TrafikkdataServer(dataset, page_size=12) as server:
        server.inject(*[Fault.delay(0.05)] * 400)
        first = run.byflyt("connector-1", *ingest, "--endpoint", server.url)
        done = wait_until(
            lambda: (c := checkpoints(run.settings)) and len(c) >= 3 and c,
            120,
            "three points to be checkpointed",
        )
        first.signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
        done = checkpoints(run.settings)
        n_points = sum(1 for p in dataset.points if p.traffic_type == "BICYCLE")
        assert len(done) < n_points, "the kill came after the backfill had finished"
        before = produced_per_point(run.settings)
        restart_at = len(server.requests)

        second = run.byflyt("connector-2", *ingest, "--endpoint", server.url)
        assert second.wait(180) == 0, second.output()[-4000:]

        after = produced_per_point(run.settings)
        for point, position in done.items():
            # A finished point is asked only from its checkpoint on, and nothing is re-sent.
            asked = hours_requests(server, point, restart_at)
            assert asked, f"{point} was not polled again"
            assert all(
                datetime.fromisoformat(v["from"]) >= datetime.fromisoformat(position) for v in asked
            ), f"{point} was fetched from before its checkpoint {position}: {asked}"
            assert after[point] == before[point], f"{point} was produced again"
        assert set(checkpoints(run.settings)) >= set(done)

    run.drain("drain")
    harness.assert_exact(run.settings, truth)
    harness.no_tracebacks(run.procs[1:])  # the SIGKILLed one had no chance to print anything
