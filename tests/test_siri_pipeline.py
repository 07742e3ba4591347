"""Done-when of the SIRI issue: a synthetic INN day served like Entur → ingest → drain → table.

The local server serves the day (full answer, then deltas per requestorId, MoreData pages, one
ErrorCondition per kind); the real SIRI connectors poll it (``--polls`` until every tick is
delivered, a fast token bucket so the test does not take an hour) into the real broker; the
worker drains the transit agents into the store. The table is compared with one computed here,
independently, by ``tests/siri_expect.py``, from the XML the server served.

Then the same day as GTFS-realtime: every call the GTFS-realtime replay makes final (computed by
``tests/transit_expect.py``, which ``test_transit_pipeline`` proves equal to that pipeline) is
final in the SIRI run with the same status, time and delay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from byflyt.kafka import create_topics
from byflyt.models.status import FeedHealth
from byflyt.models.transit import StopCall
from byflyt.samples.gtfs_rt import write_synthetic_snapshots
from byflyt.samples.siri import synthetic_day
from byflyt.samples.siri_server import Fault, SiriServer
from byflyt.settings import Settings
from tests.helpers import analyst_answers, byflyt, drain, load_static, stored
from tests.kafka_util import read_all
from tests.siri_expect import expected_siri
from tests.transit_expect import expected_transit

pytestmark = pytest.mark.kafka


def ingest(env: dict[str, str], server: SiriServer, kind: str) -> None:
    """``byflyt ingest siri-<kind> --polls N`` until the requestor has had every tick.

    Each ErrorCondition costs one poll. The server's 4-a-minute limit is raised for the test,
    and so is the connector's request budget (``--requests-per-minute``).
    """
    polls = len(server.day.ticks) + 1
    done = byflyt(
        env,
        "ingest",
        f"siri-{kind}",
        "--dataset",
        "INN",
        "--feed",
        "inn",
        "--endpoint",
        server.url,
        "--polls",
        str(polls),
        "--interval",
        "0.01s",
        "--requests-per-minute",
        "60000",
    )
    requestors = {r.params.get("requestorId") for r in server.requests if r.path.endswith(kind)}
    requestors.discard(None)
    requestors.discard("")
    assert len(requestors) == 1, requestors
    assert server.done(requestors.pop() or "", kind)
    assert " 1 error conditions," in done.stdout, done.stdout


def test_siri_day_equals_the_independent_table(
    settings: Settings, worker_env: dict[str, str], static_zip: Path, tmp_path: Path
) -> None:
    create_topics(settings)
    static = load_static(settings, worker_env, static_zip, "inn")
    day = synthetic_day(static_zip)
    with SiriServer(day, page_size=2, rate_per_minute=60_000) as server:
        server.schedule("et", 7, Fault("error_condition"))
        server.schedule("vm", 5, Fault("error_condition"))
        ingest(worker_env, server, "et")
        ingest(worker_env, server, "vm")
    assert any(r.params["requestorId"] for r in server.requests)
    # Every poll is noted for the status agent (staleness; SIRI deltas say nothing of "empty").
    health = [
        FeedHealth.from_bytes(v)
        for _, v in read_all(settings, settings.topic("transit.feed-health"))
        if v
    ]
    assert {(h.source, h.kind) for h in health} == {("siri:INN", "et"), ("siri:INN", "vm")}
    assert all(h.entities is None for h in health)
    drain(worker_env)

    hourly, flows, finals = expected_siri(static, day)
    got_hourly, got_flows = stored(settings)
    assert got_flows == flows
    assert set(got_hourly) - set(hourly) == set(), set(hourly) - set(got_hourly)
    assert got_hourly == hourly
    mjosbyen = {"3403", "3405", "3407", "3411", "3413", "3443"}
    metrics = {(r[0], r[2]) for r in hourly}
    assert {(k, "departures") for k in mjosbyen} <= metrics
    assert any(r[2] == "cancelled_calls" and r[4] > 0 for r in hourly)
    assert any(r[2] == "vehicles_active" for r in hourly)

    # The questions as an analyst asks them: departures per kommune, trips in and out.
    got_departures, got_flows = analyst_answers(worker_env, hourly, flows, "bus")
    assert {"3403", "3405", "3407"} <= {k for k, _ in got_departures}  # Hamar, Lillehammer, Gjøvik
    assert got_flows, "the synthetic day has trips in and out of Mjøsbyen"

    # The same day as GTFS-realtime: its final calls are final here, with the same values.
    snapshots = tmp_path / "rt"
    scenario = write_synthetic_snapshots(snapshots, static_zip=static_zip)
    rt = expected_transit(static, snapshots, feed="inn", scenario=scenario)
    calls = {
        (c.service_date, c.trip_id, c.stop_sequence): c
        for c in (
            StopCall.from_bytes(v)
            for _, v in read_all(settings, settings.topic("transit.stop-calls"))
            if v
        )
    }
    assert rt.calls
    for key, final in rt.calls.items():
        call = calls[key]
        assert (call.status, call.delay_seconds) == (final.status, final.delay_seconds), key
        assert (call.actual or call.scheduled) == final.at if final.status == "served" else True
        assert finals[key][0] == final.status
    served = [k for k, f in rt.calls.items() if f.status == "served"]
    assert len(served) >= 5
