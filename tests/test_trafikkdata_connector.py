"""The Trafikkdata connector over real HTTP (the local server) into the session's real Kafka.

Expected observations are computed here from the dataset by the rules: in-region bicycle points
only; every UTC hour of the window between a point's first and latest data, once; the
repeated October hour twice; null volumes and unpublished hours as None with coverage 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from byflyt.connectors.base import ConnectorRunner, RunStats, Window
from byflyt.connectors.http import Backoff, HTTPRetriableError, SourceError
from byflyt.connectors.trafikkdata import TrafikkdataConnector, graphql_data
from byflyt.errors import ConfigError, RejectedInput
from byflyt.kafka import create_topics
from byflyt.metrics import Metrics
from byflyt.models import codec_counts
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.envelope import Checkpoint, Rejected
from byflyt.models.kommuner import get_region
from byflyt.samples.trafikkdata import (
    MIDWEEK_POINT,
    OSLO,
    OSLO_POINT,
    SILENT_POINT,
    HourValue,
    TrafikkdataDataset,
    mjosbyen_week,
)
from byflyt.samples.trafikkdata_server import Fault, TrafikkdataServer
from byflyt.settings import Settings
from tests.conftest import Served, free_port
from tests.helpers import BYFLYT, byflyt, ingest_week, run, wait_until
from tests.kafka_util import read_all

HOUR = timedelta(hours=1)
REPO = Path(__file__).resolve().parent.parent
FAST = Backoff(base=0.01, cap=0.05, attempts=5)
Expected = dict[tuple[str, datetime], tuple[int | None, float]]


@pytest.fixture(scope="module")
def week() -> TrafikkdataDataset:
    return mjosbyen_week(1)


@pytest.fixture
def serve(week: TrafikkdataDataset, served: Served) -> Callable[..., TrafikkdataServer]:
    def start(dataset: TrafikkdataDataset = week, page_size: int = 100) -> TrafikkdataServer:
        return served(TrafikkdataServer(dataset, page_size=page_size))

    return start


def expected(dataset: TrafikkdataDataset, since: datetime, until: datetime) -> Expected:
    region = get_region("mjosbyen")
    rows: Expected = {}
    for point in dataset.points:
        kommune = f"{point.municipality_number:04d}"
        if point.traffic_type != "BICYCLE" or kommune not in region.kommuner:
            continue
        hour = max(since, point.first_data)
        while hour < until and hour <= point.latest_data:
            value = dataset.hours[point.id].get(hour)
            rows[(point.id, hour)] = (value.volume, value.coverage) if value else (None, 0.0)
            hour += HOUR
    return rows


def observations(settings: Settings) -> list[CountObservation]:
    records = read_all(settings, settings.topic("bike.counts"))
    result = []
    for key, value in records:
        assert value is not None
        obs = codec_counts.to_observation(codec_counts.decode(value))
        assert key == obs.kommune_nr.encode()
        result.append(obs)
    return result


def as_rows(found: list[CountObservation]) -> Expected:
    rows = {(o.point_id, o.start): (o.volume, o.coverage) for o in found}
    assert len(rows) == len(found), "an hour was produced twice in one run"
    return rows


def checkpoints(settings: Settings) -> dict[str, str]:
    found = {}
    for key, value in read_all(settings, settings.topic("connector.checkpoints")):
        assert value is not None
        checkpoint = Checkpoint.from_bytes(value)
        assert key == f"trafikkdata:trafikkdata:{checkpoint.item}".encode()
        found[checkpoint.item] = checkpoint.position
    return found


def last_delivered(dataset: TrafikkdataDataset, point_id: str, until: datetime) -> str:
    end = max(h for h in dataset.hours[point_id] if h < until) + HOUR
    return end.isoformat().replace("+00:00", "Z")


def ingest(
    settings: Settings,
    server: TrafikkdataServer,
    *,
    backfill: Window | None = None,
    clock: Callable[[], datetime] | None = None,
    metrics: Metrics | None = None,
    timeout: float = 10.0,
) -> RunStats:
    metrics = metrics or Metrics(CollectorRegistry())
    with TrafikkdataConnector(
        settings,
        region="mjosbyen",
        endpoint=server.url,
        backfill=backfill,
        timeout=timeout,
        clock=clock or (lambda: datetime.now(UTC)),
        metrics=metrics,
    ) as connector:
        return ConnectorRunner(connector, settings, metrics=metrics, backoff=FAST).run(once=True)


def hour_requests(server: TrafikkdataServer, start: int = 0) -> list[dict[str, object]]:
    return [
        r.json()["variables"] for r in server.requests[start:] if "trafficData" in r.json()["query"]
    ]


# -- pure --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (
            {
                "errors": [
                    {
                        "message": "Field 'x' undefined",
                        "extensions": {"classification": "ValidationError"},
                    }
                ]
            },
            SourceError,
            "GraphQL ValidationError: Field 'x' undefined",
        ),
        (
            {"errors": [{"message": "bad", "extensions": {"classification": "InvalidSyntax"}}]},
            SourceError,
            "InvalidSyntax",
        ),
        (
            {
                "data": None,
                "errors": [
                    {
                        "message": "backend timed out",
                        "extensions": {"classification": "DataFetchingException"},
                    }
                ],
            },
            HTTPRetriableError,
            "backend timed out",
        ),
        ({"errors": [{"message": "no classification"}]}, HTTPRetriableError, "no classification"),
        ({"data": None}, RejectedInput, "no data object"),
        ([1, 2], RejectedInput, "not a JSON object"),
    ],
)
def test_graphql_errors_are_fatal_for_invalid_queries_else_retriable(
    body: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        graphql_data(body, "http://x/")


def test_graphql_data_passes_data_through() -> None:
    assert graphql_data({"data": {"a": 1}}, "http://x/") == {"a": 1}


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"region": "atlantis"}, "--region"),
        ({"region": "mjosbyen", "endpoint": "trafikkdata-api.atlas.vegvesen.no"}, "--endpoint"),
        ({"region": "mjosbyen", "endpoint": "ftp://example.org/"}, "--endpoint"),
    ],
)
def test_configuration_errors_at_start(options: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrafikkdataConnector(Settings(), **options)
    assert err.value.setting == setting


def test_points_normalise_kommune_numbers(
    week: TrafikkdataDataset, serve: Callable[..., TrafikkdataServer]
) -> None:
    server = serve()
    with TrafikkdataConnector(Settings(), region="osloregionen", endpoint=server.url) as connector:
        discovery = connector.discover(lambda request, what: request())
    points = {p.point_id: p for p in discovery.items}
    assert points[OSLO_POINT].kommune_nr == "0301"  # 301 on the wire
    assert "44656V72811" not in points  # the vehicle point
    assert server.requests[0].json()["variables"] == {"counties": [3, 31, 32, 33, 34]}


# -- with Kafka --------------------------------------------------------------------------------
@pytest.mark.kafka
def test_backfill_of_the_week_is_exact(
    settings: Settings, week: TrafikkdataDataset, serve: Callable[..., TrafikkdataServer]
) -> None:
    create_topics(settings)
    server = serve(page_size=50)
    metrics = Metrics(CollectorRegistry())
    stats = ingest(settings, server, backfill=Window(week.start, week.end), metrics=metrics)

    want = expected(week, week.start, week.end)
    got = as_rows(observations(settings))
    assert got == want
    assert stats.failed == []
    assert stats.rejected == 0
    assert stats.produced["bike.counts"] == len(want)
    missing = sum(1 for (pid, h) in want if h not in week.hours[pid])
    assert stats.counts["missing_hours"] == missing == 24  # the silent day

    # The repeated 02:00 local hour is two UTC hours; null nodes and the silent day are None.
    some = "10795B1743428"
    first, second = datetime(2025, 10, 26, 0, tzinfo=UTC), datetime(2025, 10, 26, 1, tzinfo=UTC)
    assert first.astimezone(OSLO).hour == second.astimezone(OSLO).hour == 2
    assert (some, first) in got
    assert (some, second) in got
    nulls = [k for k, v in want.items() if v[0] is None and k[1] in week.hours[k[0]]]
    assert len(nulls) == 7
    assert all(got[k] == (None, 0.0) for k in nulls)
    day = datetime(2025, 10, 24, tzinfo=OSLO)  # the silent point's third day: no nodes at all
    silent = [
        v
        for (pid, h), v in got.items()
        if pid == SILENT_POINT and h.astimezone(OSLO).date() == day.date()
    ]
    assert silent == [(None, 0.0)] * 24
    assert {pid for pid, _ in got} == {pid for pid, _ in want}
    assert len({pid for pid, _ in got}) == 12

    # Paging: at most 50 nodes a page, the next page asked for with the cursor.
    requests = hour_requests(server)
    for point_id in {pid for pid, _ in want}:
        pages = [v for v in requests if v["id"] == point_id]
        nodes = len(week.nodes(point_id, week.start, week.end))
        assert len(pages) == max(1, math.ceil(nodes / 50))
        assert pages[0]["after"] is None
        assert all(p["after"] for p in pages[1:])
        assert pages[0]["from"] == "2025-10-21T22:00:00+00:00"
    assert {r.headers["x-client"] for r in server.requests} == {settings.client_name}

    points = [
        CountPoint.from_bytes(v) for _, v in read_all(settings, settings.topic("bike.points")) if v
    ]
    assert sorted(p.point_id for p in points) == sorted({pid for pid, _ in want})
    assert all(p.kommune_nr in get_region("mjosbyen").kommuner for p in points)

    assert checkpoints(settings) == {
        pid: last_delivered(week, pid, week.end) for pid in {pid for pid, _ in want}
    }
    newest = max(h for (pid, h), v in want.items() if v[0] is not None)
    assert (
        metrics.registry.get_sample_value(
            "byflyt_source_last_data_timestamp_seconds", {"source": "trafikkdata"}
        )
        == newest.timestamp()
    )
    assert metrics.registry.get_sample_value(
        "byflyt_connector_polls_total",
        {"connector": "trafikkdata", "source": "trafikkdata", "outcome": "ok"},
    ) == len(server.requests)


@pytest.mark.kafka
def test_retries_back_off_and_failing_points_do_not_stop_the_rest(
    settings: Settings, week: TrafikkdataDataset, serve: Callable[..., TrafikkdataServer]
) -> None:
    create_topics(settings)
    server = serve(page_size=1000)  # one request per point, so faults land on known points
    first, second, third = "10795B1743428", "29403B1743560", "40178B2102711"
    server.inject(
        Fault.delay(0),  # the points query answers normally
        Fault.status(429, retry_after=1),  # first point: rate limited,
        Fault.status(503),  # unavailable,
        Fault.delay(2.0),  # slower than the client's timeout,
        Fault.malformed_json(),  # a truncated answer,
        Fault.delay(0),  # then it works (5th attempt)
        Fault.graphql_error("Validation error of type FieldUndefined: Field 'x'"),  # second: fatal
        *[Fault.status(503)] * 5,  # third: retries run out
    )
    metrics = Metrics(CollectorRegistry())
    started = time.monotonic()
    stats = ingest(
        settings, server, backfill=Window(week.start, week.end), metrics=metrics, timeout=0.5
    )
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured

    assert stats.failed == [second, third]
    want = {
        k: v for k, v in expected(week, week.start, week.end).items() if k[0] not in (second, third)
    }
    assert as_rows(observations(settings)) == want
    assert first in checkpoints(settings)
    assert second not in checkpoints(settings)
    assert third not in checkpoints(settings)

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    polls = {"connector": "trafikkdata", "source": "trafikkdata"}
    assert value("byflyt_connector_polls_total", **polls, outcome="retry") == 4 + 4
    assert value("byflyt_connector_polls_total", **polls, outcome="failed") == 2
    errors = "byflyt_http_errors_total"
    assert value(errors, source="trafikkdata", status_class="4xx") == 1
    assert value(errors, source="trafikkdata", status_class="5xx") == 1 + 5
    assert value(errors, source="trafikkdata", status_class="timeout") == 1
    assert value(errors, source="trafikkdata", status_class="invalid_body") == 1
    assert value(errors, source="trafikkdata", status_class="graphql") == 1


@pytest.mark.kafka
def test_invalid_node_goes_to_the_dead_letter_topic_and_the_rest_flows(
    settings: Settings, week: TrafikkdataDataset, serve: Callable[..., TrafikkdataServer]
) -> None:
    create_topics(settings)
    point, hour = "66842B2561207", datetime(2025, 10, 24, 6, tzinfo=UTC)
    hours = {pid: dict(values) for pid, values in week.hours.items()}
    hours[point][hour] = HourValue(-5, 100.0)
    broken = dataclasses.replace(week, hours=hours)
    metrics = Metrics(CollectorRegistry())
    stats = ingest(settings, serve(broken), backfill=Window(week.start, week.end), metrics=metrics)

    dead = [
        Rejected.from_bytes(v) for k, v in read_all(settings, settings.topic("dlq.rejected")) if v
    ]
    assert len(dead) == 1
    assert stats.rejected == 1
    assert (dead[0].source, dead[0].code, dead[0].stage) == (
        "trafikkdata",
        "invalid_node",
        "trafikkdata",
    )
    assert dead[0].context == {"point_id": point}
    assert json.loads(dead[0].raw)["total"]["volumeNumbers"]["volume"] == -5
    assert "volume" in dead[0].reason

    want = expected(week, week.start, week.end)
    want[(point, hour)] = (None, 0.0)  # no usable count for that hour: missing, not zero
    assert as_rows(observations(settings)) == want
    assert (
        metrics.registry.get_sample_value(
            "byflyt_rejected_total",
            {"source": "trafikkdata", "stage": "trafikkdata", "reason": "invalid_node"},
        )
        == 1
    )


@pytest.mark.kafka
def test_live_poll_resumes_from_the_checkpoints_in_kafka(
    settings: Settings, week: TrafikkdataDataset, serve: Callable[..., TrafikkdataServer]
) -> None:
    create_topics(settings)
    server = serve()
    split = datetime(2025, 10, 25, tzinfo=OSLO).astimezone(UTC)
    ingest(settings, server, backfill=Window(week.start, split))
    saved = checkpoints(settings)
    assert saved[SILENT_POINT] == "2025-10-23T22:00:00Z"  # its third day sent nothing
    assert MIDWEEK_POINT not in saved  # no data before the split
    assert saved["10795B1743428"] == "2025-10-24T22:00:00Z"
    first_run = len(server.requests)

    now = week.end + 2 * HOUR  # live, two hours after the week: re-poll 48 h or from the checkpoint
    stats = ingest(settings, server, clock=lambda: now)
    assert stats.failed == []
    windows = {v["id"]: (v["from"], v["to"]) for v in hour_requests(server, first_run)}
    for point_id, position in saved.items():
        assert windows[point_id] == (
            datetime.fromisoformat(position).isoformat(),
            now.isoformat(),
        )
    assert windows[MIDWEEK_POINT][0] == (now - timedelta(hours=48)).isoformat()

    # Together the two runs cover every hour of the week (the mid-week point from 48 h back).
    rows: Expected = {}
    for obs in observations(settings):
        rows[(obs.point_id, obs.start)] = (obs.volume, obs.coverage)
    want = {
        k: v
        for k, v in expected(week, week.start, week.end).items()
        if k[0] != MIDWEEK_POINT or k[1] >= now - timedelta(hours=48)
    }
    assert rows == want
    assert checkpoints(settings) == {pid: last_delivered(week, pid, week.end) for pid in windows}


@pytest.mark.kafka
def test_command_backfills_and_prints_a_summary(
    worker_env: dict[str, str],
    settings: Settings,
    week: TrafikkdataDataset,
    serve: Callable[..., TrafikkdataServer],
) -> None:
    server = serve()
    done = byflyt(worker_env, *ingest_week(server.url))
    want = expected(week, week.start, week.end)
    assert done.stdout.strip() == (
        f"trafikkdata mjosbyen: 12 points, {len(want)} observations (24 missing hours), "
        "0 rejected, 0 failed"
    )
    assert as_rows(observations(settings)) == want


@pytest.mark.kafka
def test_follow_mode_polls_live_and_stops_cleanly_on_sigterm(
    worker_env: dict[str, str], serve: Callable[..., TrafikkdataServer]
) -> None:
    server = serve()
    args = ["--region", "mjosbyen", "--endpoint", server.url, "--interval", "10"]
    port = free_port()
    metrics = ["--metrics-port", str(port)]
    command = [sys.executable, "-m", "byflyt", "ingest", *metrics, "trafikkdata", *args]
    proc = subprocess.Popen(command, env=worker_env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        wait_until(
            lambda: len(hour_requests(server)),
            60,
            "the connector's first pass over the 12 points",
            until=lambda requests: requests >= 12,
            every=0.1,
        )
        live = hour_requests(server)
        assert len(live) == 12  # one pass over the points, now sleeping for 10 minutes
        since = datetime.fromisoformat(str(live[0]["from"]))
        assert timedelta(hours=47) < datetime.now(UTC) - since <= timedelta(hours=49)
        # The connector serves its own /metrics while it runs (Prometheus scrapes it).
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        polls = [
            line
            for line in scraped.splitlines()
            if line.startswith("byflyt_connector_polls_total{") and 'outcome="ok"' in line
        ]
        assert polls, scraped[-2000:]
        assert float(polls[0].rsplit(" ", 1)[1]) >= 1
        time.sleep(0.5)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - stopping < 10  # the sleep was interrupted
    assert proc.returncode == 0
    assert "trafikkdata mjosbyen: 12 points, 0 observations" in out


def ingest_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([*BYFLYT, "ingest", "trafikkdata", *args], env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2025-10-26T02:30", "--to", "2025-10-27"],
            "--from: '2025-10-26T02:30' has no UTC offset",
        ),
        (
            ["--from", "2025-10-22", "--to", "yesterday"],
            "--to: 'yesterday' is neither a date (2025-10-26) nor an ISO 8601 time",
        ),
        (["--to", "2025-10-29"], "--to: needs --from"),
        (["--from", "2025-10-29", "--to", "2025-10-22"], "is not after --from"),
        (["--endpoint", "localhost:8123"], "--endpoint: 'localhost:8123' is not an http(s) URL"),
        (["--region", "atlantis"], "unknown region 'atlantis'"),
    ],
)
def test_command_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "BYFLYT_REGION": "mjosbyen",
        "BYFLYT_KAFKA_BOOTSTRAP": "127.0.0.1:9",
    }
    done = ingest_command(env, *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert message in done.stderr


def test_command_needs_a_region() -> None:
    done = ingest_command({"PATH": "/usr/bin:/bin"}, "--once")
    assert done.returncode == 2
    assert (
        done.stderr
        == "byflyt: --region is missing: give e.g. --region mjosbyen, or set BYFLYT_REGION\n"
    )
