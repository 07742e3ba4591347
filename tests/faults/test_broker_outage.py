"""Fault 1: the broker stops for 20 s while a Trafikkdata backfill pages and a worker aggregates.

Connector and worker wait, retry with back-off and resume; neither exits with a traceback, and
the result equals the dataset by the rules.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from byflyt.samples.trafikkdata import mjosbyen_week
from byflyt.samples.trafikkdata_server import Fault, TrafikkdataServer
from tests.cycling_expect import expected_rows
from tests.faults import harness
from tests.faults.conftest import RunFactory
from tests.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kafka]
BROKER_DOWN_S = 20.0
SINCE = datetime(2025, 10, 21, 22, tzinfo=UTC)  # 2025-10-22 00:00 Europe/Oslo


def test_broker_stopped_for_20s_mid_backfill_and_mid_aggregation(
    fault_run: RunFactory, fault_broker: harness.PrivateBroker
) -> None:
    run = fault_run()
    dataset = mjosbyen_week(1)
    delivered = harness.connector_observations(dataset, "mjosbyen", SINCE)
    truth = expected_rows(delivered)
    worker_port, connector_port = harness.free_port(), harness.free_port()
    with TrafikkdataServer(dataset, page_size=12) as server:
        # Slow pages, so the backfill is still paging when the broker goes away.
        server.inject(*[Fault.delay(0.1)] * 400)
        worker = run.worker("worker", web_port=worker_port)
        connector = run.byflyt(
            "connector",
            "ingest",
            "--metrics-port",
            str(connector_port),
            "trafikkdata",
            "--region",
            "mjosbyen",
            "--endpoint",
            server.url,
            "--from",
            "2025-10-22",
            "--once",
        )
        wait_until(
            lambda: len(harness.store_rows(run.settings)) > 20, 120, "the worker to aggregate"
        )
        assert connector.alive(), connector.output()
        pages_before = len(server.requests)

        fault_broker.stop()
        stopped = time.monotonic()
        try:
            # A worker started while the broker is away waits for it instead of exiting.
            late = run.worker("worker-late")
            time.sleep(max(0.0, BROKER_DOWN_S - (time.monotonic() - stopped)))
            # The broker stays away until the late worker has met the outage: its state check
            # gives up on an absent broker only after the admin client's 30 s, and a broker
            # back before that let it start without ever waiting (a race the load decided).
            wait_until(
                lambda: "retrying in" in late.output() or not late.alive(),
                90,
                "the late worker to wait for the broker",
            )
            assert late.alive(), f"a worker started without a broker exited:\n{late.output()}"
            assert worker.alive(), f"the worker exited without its broker:\n{worker.output()}"
            assert connector.alive(), f"the connector exited:\n{connector.output()}"
        finally:
            fault_broker.start()

        code = connector.wait(180)
        assert code == 0, connector.output()[-4000:]
        # Its summary says what it did: every observation produced once, nothing failed.
        assert f"{len(delivered)} observations" in connector.output(), connector.output()[-2000:]
        assert "0 rejected, 0 failed" in connector.output()
        harness.wait_for_store(run.settings, truth, 180)
        assert len(server.requests) > pages_before, "the backfill did not page after the outage"
        harness.assert_exact(run.settings, truth)
        records = harness.scraped(
            worker_port, "byflyt_agent_records_total", agent="aggregate_counts"
        )
        assert records > 0
        assert worker.alive()
        assert late.alive(), late.output()[-3000:]
        assert "retrying in" in late.output()
    harness.no_tracebacks([worker, connector, late])
