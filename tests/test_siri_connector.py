"""The SIRI connector: ET/VM semantics, bad input, the Entur-like server, the token bucket.

Answers are built from the synthetic day (samples/siri.py) on the synthetic static feed
(samples/gtfs.py). Semantics and bad-input tests read answers as recordings (no network);
server tests go over real HTTP to samples/siri_server.py; the checkpoint, retry and CLI tests
run on the session's real Kafka.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console

from byflyt.connectors.base import PollResult
from byflyt.connectors.http import Backoff
from byflyt.connectors.rate_limit import TokenBucket
from byflyt.connectors.siri import SiriConnector, SiriItem
from byflyt.connectors.snapshots import SnapshotRunner
from byflyt.errors import ConfigError
from byflyt.kafka import create_topics
from byflyt.metrics import Metrics
from byflyt.models.envelope import Rejected
from byflyt.models.transit import TripState, VehicleSeen
from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS
from byflyt.samples.siri import SiriDay, answer, error_answer, synthetic_day
from byflyt.samples.siri_server import HTML_PAGE, Fault, SiriServer
from byflyt.settings import Settings
from tests.conftest import Connectors, Served
from tests.helpers import direct, metric_value
from tests.kafka_util import read_all

MON = date(2025, 10, 27)
FAST = Backoff(base=0.01, cap=0.05, attempts=4)


@pytest.fixture(scope="module")
def day(static_zip: Path) -> SiriDay:
    return synthetic_day(static_zip)


Make = Callable[..., SiriConnector]


@pytest.fixture
def make(connectors: Connectors) -> Make:
    return partial(connectors.siri, rate_per_minute=60_000)


def read(connector: SiriConnector, data: bytes) -> PollResult:
    return connector.poll(SiriItem(connector.kind, "recording.xml", data), None, direct)


def last_state(day: SiriDay, role: str, make: Make) -> TripState:
    key = day.roles[role]
    result = read(make(), answer("et", [day.et[-1][key]], day.ticks[-1]))
    (state,) = [TripState.from_bytes(r.value) for r in result.records]
    return state


# -- ET semantics ----------------------------------------------------------------------------------
def test_recorded_calls_are_served_estimated_calls_only_predict(day: SiriDay, make: Make) -> None:
    key = day.roles["skipped"]  # bus_150_morning: Moelv cancelled on its own
    tick = next(i for i, et in enumerate(day.et) if key in et and b"RecordedCall>" in et[key])
    result = read(make(), answer("et", [day.et[tick][key]], day.ticks[tick]))
    (state,) = [TripState.from_bytes(r.value) for r in result.records]
    assert state.service_date == MON
    assert state.trip_id == SYNTHETIC_TRIPS["bus_150_morning"]
    assert state.mode == "bus"
    assert state.status == "scheduled"
    assert [c.stop_sequence for c in state.calls] == [0, 1, 2, 3]
    first = state.calls[0]
    assert first.actual is not None
    assert first.actual < state.snapshot_at
    # Hamar was passed before the GTFS-realtime scenario gave it a delay: no time, no delay.
    assert (first.actual, first.delay_seconds) == (first.scheduled, None)
    assert first.kommune_nr == "3403"
    pending = [c for c in state.calls if c.actual is None and c.realtime == "scheduled"]
    assert pending
    assert all(c.delay_seconds is not None for c in pending)
    assert state.calls[2].realtime == "skipped"


def test_journey_shapes_of_entur(day: SiriDay, make: Make) -> None:
    midday = last_state(day, "status_cancelled", make)
    assert midday.calls[2].realtime == "skipped"  # DepartureStatus cancelled only
    assert midday.calls[3].stop_id == SYNTHETIC_STOPS["hamar_rail"]  # "HMR" by Order
    assert midday.calls[3].actual is not None
    bare = last_state(day, "bare_ref", make)
    assert bare.service_date == MON
    no_order = last_state(day, "no_order", make)
    assert [c.actual is not None for c in no_order.calls] == [True, True]
    extra = last_state(day, "extra", make)
    assert extra.status == "added"
    assert [c.kommune_nr for c in extra.calls] == ["3403", "3413"]
    assert [c.stop_sequence for c in extra.calls] == [0, 1]
    cancelled = last_state(day, "cancelled", make)
    assert cancelled.status == "cancelled"
    assert len(cancelled.calls) == 2
    night = last_state(day, "night", make)
    assert night.service_date == date(2025, 10, 26)
    assert night.calls[-1].actual is not None
    assert night.calls[-1].actual > datetime(2025, 10, 26, 23, 0, tzinfo=UTC)


def test_vehicle_activities_are_placed_in_kommuner(day: SiriDay, make: Make) -> None:
    tick = next(i for i, vm in enumerate(day.vm) if any(b"Occupancy" in a for a in vm))
    connector = make(kind="vm")
    result = read(connector, answer("vm", day.vm[tick], day.ticks[tick]))
    seen = [VehicleSeen.from_bytes(r.value) for r in result.records]
    truths = {v.vehicle_ref: v for v in day.vehicles if v.tick == day.ticks[tick]}
    assert seen
    for vehicle in seen:
        truth = truths[vehicle.vehicle_id]
        assert vehicle.kommune_nr == truth.kommune_nr
        assert vehicle.seen_at == truth.recorded_at
        assert vehicle.occupancy == truth.occupancy
        assert vehicle.mode == "bus"
    assert any(v.occupancy for v in seen)


# -- bad input -------------------------------------------------------------------------------------
def test_bad_answers_go_to_the_dead_letter_topic_with_a_metric(
    day: SiriDay, make: Make, registry: CollectorRegistry
) -> None:
    connector = make()
    good = answer("et", list(day.et[-1].values()), day.ticks[-1])
    cases = {
        "siri_malformed": good[: len(good) // 2],
        "siri_html": HTML_PAGE,
        "siri_error_condition": error_answer("et", day.ticks[0], "No access (synthetic)"),
    }
    for code, data in cases.items():
        result = read(connector, data)
        assert [r.code for r in result.rejected][-1] == code
        # Unreadable answers start over with a new requestorId; an ErrorCondition does not.
        assert (result.checkpoint is None) == (code == "siri_error_condition")
        outcome = code.removeprefix("siri_")
        labels = {"source": "siri:INN", "kind": "et", "outcome": outcome}
        assert metric_value(registry, "byflyt_siri_answers_total", **labels) == 1
    # The journeys complete before the fault of a truncated answer are kept.
    assert read(connector, cases["siri_malformed"]).records


def test_unusable_journeys_are_rejected_alone(day: SiriDay, make: Make) -> None:
    good = day.et[-1][day.roles["extra"]]
    unknown = good.replace(b"<ExtraJourney>true</ExtraJourney>", b"")
    unreadable = good.replace(b"+01:00</Aimed", b"+01:00 tomorrow</Aimed", 1)
    result = read(make(), answer("et", [unknown, unreadable, good], day.ticks[-1]))
    assert len(result.records) == 1
    reasons = sorted(r.context["rule"] for r in result.rejected)
    assert reasons == ["unknown_journey", "unreadable"]
    assert all(r.code == "invalid_journey" and r.raw for r in result.rejected)


def test_unusable_vehicle_activities_are_rejected_alone(
    day: SiriDay, make: Make, registry: CollectorRegistry, tmp_path: Path
) -> None:
    good, other, third = [activity for vm in day.vm for activity in vm][:3]
    unreadable = other.replace(b"<Latitude>", b"<Latitude>north ", 1)
    undated = re.sub(rb"<RecordedAtTime>[^<]*</RecordedAtTime>", b"", third)
    # A recording without ResponseTimestamp: each activity needs its own RecordedAtTime.
    data = re.sub(
        rb"<ResponseTimestamp>[^<]*</ResponseTimestamp>",
        b"",
        answer("vm", [good, unreadable, undated], day.ticks[-1]),
    )
    (tmp_path / "answer.xml").write_bytes(data)
    result = read(make(kind="vm", replay=tmp_path), data)
    assert len(result.records) == 1
    assert [r.code for r in result.rejected] == ["invalid_activity", "invalid_activity"]
    first, second = (r.reason for r in result.rejected)
    assert first.startswith("unreadable: ")
    assert second.startswith("no_timestamp: ")
    assert all(r.raw for r in result.rejected)
    labels = {"source": "siri:INN", "kind": "vm", "outcome": "rejected"}
    assert metric_value(registry, "byflyt_siri_journeys_total", **labels) == 2


# -- token bucket ----------------------------------------------------------------------------------
def test_token_bucket_allows_four_a_minute_without_sleeping_blindly() -> None:
    now = [0.0]
    bucket = TokenBucket(4, clock=lambda: now[0])
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        now[0] += seconds
        return False

    assert [bucket.take(wait) for _ in range(4)] == [0.0] * 4
    assert waits == []
    assert bucket.take(wait) == pytest.approx(15.0)
    now[0] += 60
    assert bucket.wait_time() == 0.0
    assert bucket.try_take()
    assert bucket.try_take()
    assert bucket.try_take()
    assert bucket.try_take()
    assert not bucket.try_take()
    assert bucket.take(lambda _s: True) is None  # interrupted


# -- over HTTP -------------------------------------------------------------------------------------
@pytest.fixture
def serve(day: SiriDay, served: Served) -> Callable[..., SiriServer]:
    def start(**options: Any) -> SiriServer:
        return served(SiriServer(day, **{"rate_per_minute": 60_000, **options}))

    return start


def live(connector: SiriConnector) -> PollResult:
    item = connector.discover(direct).items[0]
    return connector.poll(item, None, direct)


def test_full_answer_then_deltas_with_more_data_paging(
    day: SiriDay, make: Make, serve: Callable[..., SiriServer], settings: Settings
) -> None:
    server = serve(page_size=1)
    connector = make(endpoint=server.url)
    pages = [live(connector)]
    while connector.more_data:
        pages.append(live(connector))
    assert len(pages) == len(day.et[0])  # one journey a page
    requests = server.requests
    assert {r.params["requestorId"] for r in requests} == {connector.requestor_id}
    assert {r.params["datasetId"] for r in requests} == {"INN"}
    assert {r.headers["et-client-name"] for r in requests} == {settings.client_name}
    assert all("gzip" in r.headers["accept-encoding"] for r in requests)
    # Later answers carry only what changed.
    for tick in range(1, 4):
        result = live(connector)
        while connector.more_data:
            result.records.extend(live(connector).records)
        assert len(result.records) == len(day.changes(tick))
    assert not server.done(connector.requestor_id or "")
    other = serve(dataset="NSB")
    assert live(make(endpoint=other.url)).records == []


@pytest.mark.kafka
def test_429_past_the_limit_is_retried_after_retry_after(
    make: Make, serve: Callable[..., SiriServer], settings: Settings
) -> None:
    server = serve(rate_per_minute=2, window=1.0)
    create_topics(settings)
    metrics = Metrics(CollectorRegistry())
    connector = make(endpoint=server.url, metrics=metrics)
    runner = SnapshotRunner(
        connector, settings, metrics=metrics, backoff=FAST, console=Console(file=io.StringIO())
    )
    stats = runner.run_polls(3, timedelta(milliseconds=10))
    assert not stats.failed
    assert 429 in {r.status for r in server.requests}
    failed = metrics.registry.get_sample_value(
        "byflyt_http_errors_total", {"source": "siri:INN", "status_class": "4xx"}
    )
    assert failed
    assert failed >= 1


@pytest.mark.kafka
def test_requestor_id_survives_a_restart_and_bad_answers_reset_it(
    make: Make, serve: Callable[..., SiriServer], settings: Settings
) -> None:
    create_topics(settings)
    server = serve()
    server.schedule("et", 4, Fault("html"))
    quiet = Console(file=io.StringIO())

    def run(polls: int) -> SiriConnector:
        metrics = Metrics(CollectorRegistry())
        connector = make(endpoint=server.url, metrics=metrics)
        SnapshotRunner(connector, settings, metrics=metrics, console=quiet).run_polls(
            polls, timedelta(milliseconds=10)
        )
        return connector

    first = run(2)
    second = run(1)
    assert first.requestor_id == second.requestor_id
    third = run(1)  # the HTML page: the next request starts over with a new requestor
    assert third.requestor_id != first.requestor_id
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected")) if v
    ]
    assert [r.code for r in rejected] == ["siri_html"]


def test_configuration_errors(make: Make, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--endpoint"):
        make(endpoint="api.entur.io/rest")
    with pytest.raises(ConfigError, match="--replay"):
        make(replay=tmp_path)


@pytest.mark.kafka
def test_cli_once_against_the_server(
    static_zip: Path, serve: Callable[..., SiriServer], worker_env: dict[str, str]
) -> None:
    server = serve()
    byflyt = (sys.executable, "-m", "byflyt")
    load = subprocess.run(
        # Feed names are case-insensitive: --dataset INN finds the feed loaded as INN.
        [*byflyt, "gtfs", "load", "--feed", "INN", "--zip", str(static_zip)],
        env=worker_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert load.returncode == 0, load.stderr[-2000:]
    done = subprocess.run(
        [*byflyt, "ingest", "siri-et", "--dataset", "INN", "--endpoint", server.url, "--once"],
        env=worker_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "siri-et INN: 1 answers" in done.stdout
    assert "1 trip states" in done.stdout
