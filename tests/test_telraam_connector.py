"""Telraam over real HTTP against a local server in its shapes, and its Done-when test.

The server reports counts scaled up by 1/uptime, rows only in daylight, ``uptime`` 0 at each
day's edges; byflyt must keep the measured counts (reported × uptime) with coverage = uptime,
and dark hours as missing. The Done-when test adds a 429 and goes through the real broker and
``byflyt worker --drain`` to ``byflyt query hourly`` for both modes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from byflyt.clock import OSLO
from byflyt.connectors.base import Window
from byflyt.connectors.telraam import TelraamConnector
from byflyt.errors import ConfigError
from byflyt.models import codec_counts
from byflyt.models.counts import FetchedWindow
from byflyt.models.kommuner import get_region
from byflyt.samples.counters import HOUR, TelraamDataset, telraam_week
from byflyt.samples.json_server import Fault
from byflyt.samples.telraam_server import TelraamServer
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.topics import COUNTS_FETCHED
from tests.conftest import Served
from tests.cycling_expect import PointHours, kommune_hours
from tests.helpers import assert_drained_week, byflyt, direct

KEY = {"telraam_api_key": "nokkel"}


def expected(ds: TelraamDataset, since: datetime, until: datetime) -> PointHours:
    """The measured counts as the dataset holds them; hours between the first and last row
    of the window without a row, or with uptime 0, are missing."""
    region = get_region("mjosbyen")
    result: PointHours = {}
    for segment in ds.segments:
        if segment.kommune_nr not in region:
            continue
        hours = [h for h in segment.rows if since <= h < until]
        hour = min(hours)
        while hour <= max(hours):
            row = segment.rows.get(hour)
            for mode, field in (("bicycle", "bike"), ("pedestrian", "pedestrian")):
                key = (segment.kommune_nr, mode, f"{segment.id}-{mode}", hour)
                if row is None or row.uptime == 0:
                    result[key] = (None, 0.0)
                else:
                    result[key] = (getattr(row, field), round(row.uptime * 100, 2))
            hour += HOUR
    return result


@pytest.fixture
def week() -> TelraamDataset:
    return telraam_week()


@pytest.fixture
def server(week: TelraamDataset, served: Served) -> TelraamServer:
    return served(TelraamServer(week))


def test_the_key_and_the_segments_are_required() -> None:
    with pytest.raises(ConfigError) as err:
        TelraamConnector(Settings(), segments=["1"])
    assert err.value.setting == "BYFLYT_TELRAAM_API_KEY"
    with pytest.raises(ConfigError) as err:
        TelraamConnector(Settings(**KEY))  # type: ignore[arg-type]
    assert err.value.setting == "--segments"


@pytest.mark.parametrize("by", ["region", "segments"])
def test_measured_counts_not_the_extrapolation(
    by: str, week: TelraamDataset, server: TelraamServer
) -> None:
    chosen = {"region": "mjosbyen"} if by == "region" else {"segments": ["9000017002"]}
    with TelraamConnector(
        Settings(**KEY),  # type: ignore[arg-type]
        endpoint=server.url,
        backfill=Window(week.start, week.end),
        **chosen,  # type: ignore[arg-type]
    ) as connector:
        discovery = connector.discover(direct)
        got: PointHours = {}
        asked: dict[str, tuple[str, str, datetime, datetime]] = {}
        for segment in discovery.items:
            result = connector.poll(segment, None, direct)
            assert result.rejected == []
            for record in result.records:
                if record.topic is COUNTS_FETCHED:
                    w = FetchedWindow.from_bytes(record.value)
                    asked[w.point_id] = (w.kommune_nr, w.mode, w.since, w.until)
                    continue
                o = codec_counts.to_observation(codec_counts.decode(record.value))
                got[(o.kommune_nr, o.mode, o.point_id, o.start)] = (o.volume, o.coverage)
    want = expected(week, week.start, week.end)
    if by == "segments":
        want = {k: v for k, v in want.items() if k[2].startswith("9000017002")}
    assert got == want
    # Asked for the whole window, dark edges included: those hours are missing, not unasked.
    assert asked == {
        point: (kommune, mode, week.start, week.end) for kommune, mode, point, _ in got
    }
    assert {s.kommune_nr for s in discovery.items} == (
        {"3403", "3407"} if by == "region" else {"3407"}
    )
    assert any(v[1] == 45.0 and v[0] is not None for v in got.values())  # dawn, half seen
    reports = [r.json() for r in server.requests if r.path == "/v1/reports/traffic"]
    assert reports[0]["time_start"] == "2025-10-21 22:00:00Z"
    assert {(r["level"], r["format"]) for r in reports} == {("segments", "per-hour")}
    assert {r.headers["x-api-key"] for r in server.requests} == {"nokkel"}


@pytest.mark.kafka
@pytest.mark.slow
def test_done_when_week_through_the_worker_equals_the_rules(
    worker_env: dict[str, str], week: TelraamDataset
) -> None:
    env = {**worker_env, "BYFLYT_TELRAAM_API_KEY": "nokkel"}
    with TelraamServer(week) as server:
        server.inject(Fault.delay(0), Fault.status(429, retry_after=1))
        out = byflyt(
            env,
            *("ingest", "telraam", "--region", "mjosbyen", "--endpoint", server.url),
            *("--from", "2025-10-22", "--to", "2025-10-29"),
        ).stdout
    assert out.startswith("telraam mjosbyen: 4 points, ")
    assert "0 rejected, 0 failed" in out
    want = kommune_hours(expected(week, week.start, week.end))
    assert_drained_week(env, want)
    # The worker stored the hours each point was asked for (Oslo days 22–28 October).
    since, until = (datetime(2025, 10, d, tzinfo=OSLO).astimezone(UTC) for d in (22, 29))
    with Store(env["BYFLYT_STORE_URL"]) as store:
        windows = {(w.point_id, w.since, w.until) for w in store.query_fetched(source="telraam")}
    points = {p for _, _, p, _ in expected(week, week.start, week.end)}
    assert windows == {(p, since, until) for p in points}
