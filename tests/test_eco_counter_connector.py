"""Eco-Counter: both dialects over real HTTP against a local server in the APIs' shapes.

The Done-when test serves a synthetic week (15-minute and hourly channels, both directions,
missing quarters, a channel silent for a day, offset-less local dates across the autumn clock
change, a 429 and tokens that expire early so the API answers 401) and checks
``byflyt query hourly`` for bicycle and pedestrian against the rules applied independently to
the dataset, through the real broker and ``byflyt worker --drain``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from prometheus_client import CollectorRegistry

from byflyt.connectors.base import ConnectorRunner, Window
from byflyt.connectors.counters import HttpCounterConnector, LocalTimes
from byflyt.connectors.eco_counter import EcoCounterConnector, FairUse
from byflyt.connectors.telraam import TelraamConnector
from byflyt.connectors.trafikkdata import TrafikkdataConnector
from byflyt.errors import ConfigError
from byflyt.kafka import create_topics
from byflyt.metrics import Metrics
from byflyt.models import codec_counts
from byflyt.models.base import Mode
from byflyt.models.counts import FetchedWindow
from byflyt.models.kommuner import get_region
from byflyt.samples.counters import HOUR, EcoCounterDataset, eco_counter_week
from byflyt.samples.eco_counter_server import EcoCounterServer
from byflyt.samples.json_server import Fault
from byflyt.settings import Settings
from byflyt.topics import COUNTS_FETCHED
from tests.conftest import Served
from tests.cycling_expect import PointHours, kommune_hours
from tests.helpers import assert_drained_week, byflyt, direct
from tests.kafka_util import read_all

MODES: dict[int, Mode] = {1: "pedestrian", 2: "bicycle"}
CREDENTIALS = {
    "eco_counter_client_id": "byflyt",
    "eco_counter_client_secret": "hemmelig",
    "eco_counter_api_key": "nokkel",
}


def expected(ds: EcoCounterDataset, api: str, since: datetime, until: datetime) -> PointHours:
    """Per point-hour: v1 sums quarters (coverage = share of channel-minutes present); v2 asks
    for whole hours per flow (an hour with any count is present)."""
    region = get_region("mjosbyen")
    result: PointHours = {}
    for site in ds.sites:
        if site.kommune_nr not in region:
            continue
        channels = defaultdict(list)
        for channel in site.channels:
            if channel.user_type in MODES:
                channels[MODES[channel.user_type]].append(channel)
        for mode, members in channels.items():
            hour = since
            while hour < until:
                volume, minutes, counted = 0, 0, False
                for channel in members:
                    values = [
                        v
                        for t, v in ds.values[channel.id].items()
                        if hour <= t < hour + HOUR and v is not None
                    ]
                    if values:
                        counted = True
                        volume += sum(values)
                        minutes += 60 if api == "v2" else channel.interval * len(values)
                coverage = round(100 * minutes / (60 * len(members)), 2) if counted else 0.0
                key = (site.kommune_nr, mode, f"{site.id}-{mode}", hour)
                result[key] = (volume if counted else None, coverage)
                hour += HOUR
    return result


@pytest.fixture
def week() -> EcoCounterDataset:
    return eco_counter_week()


@pytest.fixture
def server(week: EcoCounterDataset, served: Served) -> EcoCounterServer:
    return served(EcoCounterServer(week))


def test_offsetless_local_times_across_the_autumn_change() -> None:
    times = LocalTimes()
    read = [times.read(t) for t in ("2025-10-26T01:45:00", "2025-10-26T02:00:00",
                                    "2025-10-26T02:45:00", "2025-10-26T02:00:00",
                                    "2025-10-26T03:00:00+0100")]  # fmt: skip
    assert read == [
        datetime(2025, 10, 25, 23, 45, tzinfo=UTC),
        datetime(2025, 10, 26, 0, 0, tzinfo=UTC),
        datetime(2025, 10, 26, 0, 45, tzinfo=UTC),
        datetime(2025, 10, 26, 1, 0, tzinfo=UTC),  # the repeated 02:00 is the later one
        datetime(2025, 10, 26, 2, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("api", "missing", "setting"),
    [
        ("v1", "eco_counter_client_secret", "BYFLYT_ECO_COUNTER_CLIENT_SECRET"),
        ("v1", "eco_counter_client_id", "BYFLYT_ECO_COUNTER_CLIENT_ID"),
        ("v2", "eco_counter_api_key", "BYFLYT_ECO_COUNTER_API_KEY"),
    ],
)
def test_missing_credentials_stop_at_start(api: str, missing: str, setting: str) -> None:
    values = {k: v for k, v in CREDENTIALS.items() if k != missing}
    with pytest.raises(ConfigError) as err:
        EcoCounterConnector(Settings(**values), region="mjosbyen", api=api)  # type: ignore[arg-type]
    assert err.value.setting == setting


@pytest.mark.parametrize(
    "connector",
    [
        partial(EcoCounterConnector, region="mjosbyen"),
        partial(TelraamConnector, region="mjosbyen"),
        partial(TrafikkdataConnector, region="mjosbyen"),
    ],
)
def test_every_http_counter_connector_refuses_a_naive_start(
    connector: Callable[..., HttpCounterConnector[object]],
) -> None:
    settings = Settings(**CREDENTIALS, telraam_api_key="nokkel")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as err:
        connector(settings, start=datetime(2025, 10, 26, 2, 0))  # noqa: DTZ001 (naive on purpose)
    assert err.value.setting == "--from"
    with connector(settings, start=datetime(2025, 10, 26, 1, 0, tzinfo=UTC)) as aware:
        assert aware.hours.start == datetime(2025, 10, 26, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_both_dialects_give_the_rules_hours(
    api: str, week: EcoCounterDataset, server: EcoCounterServer
) -> None:
    settings = Settings(**CREDENTIALS)  # type: ignore[arg-type]
    window = Window(week.start, week.end)
    with EcoCounterConnector(
        settings, region="mjosbyen", api=api, endpoint=server.url, backfill=window, page_size=2
    ) as connector:  # type: ignore[arg-type]
        discovery = connector.discover(direct)
        got: PointHours = {}
        asked: dict[str, tuple[str, str, datetime, datetime]] = {}
        for site in discovery.items:
            result = connector.poll(site, None, direct)
            assert result.rejected == []
            assert result.checkpoint == "2025-10-28T23:00:00Z"
            for record in result.records:
                if record.topic is COUNTS_FETCHED:
                    w = FetchedWindow.from_bytes(record.value)
                    asked[w.point_id] = (w.kommune_nr, w.mode, w.since, w.until)
                    continue
                o = codec_counts.to_observation(codec_counts.decode(record.value))
                got[(o.kommune_nr, o.mode, o.point_id, o.start)] = (o.volume, o.coverage)
    # The car-only site and the one in Kongsvinger are not the region's counters.
    assert sorted(s.id for s in discovery.items) == ["100001", "100002", "100003"]
    assert got == expected(week, api, week.start, week.end)
    # Every point (a site's mode) says it was asked for the whole window.
    assert asked == {
        point: (kommune, mode, week.start, week.end) for kommune, mode, point, _ in got
    }
    assert len({h for *_, h in got}) == 169  # the 25-hour day
    partial = [v for v in got.values() if v[0] is not None and v[1] < 100]
    missing = [v for v in got.values() if v[0] is None]
    assert partial
    assert missing == [(None, 0.0)]  # the hour both Gjøvik directions missed
    if api == "v2":  # five sites, two a page: three pages
        pages = [r.arg("page") for r in server.requests if r.path == "/api/v2/sites"]
        assert pages == ["1", "2", "3"]
        assert {r.headers.get("x-api-key") for r in server.requests} == {"nokkel"}
    else:
        steps = {r.arg("step") for r in server.requests if "/data/site/" in r.path}
        assert steps == {"15m", "hour"}
        begins = {r.arg("begin") for r in server.requests if "/data/site/" in r.path}
        assert begins == {"2025-10-22T00:00:00"}  # local time, no offset


def test_token_is_renewed_before_it_expires_and_after_a_401(
    week: EcoCounterDataset,
) -> None:
    now = [0.0]
    settings = Settings(**CREDENTIALS)  # type: ignore[arg-type]
    with (
        EcoCounterServer(week, token_seconds=100) as server,
        EcoCounterConnector(
            settings, region="mjosbyen", endpoint=server.url, monotonic=lambda: now[0]
        ) as connector,
    ):
        connector.discover(direct)
        assert server.tokens_issued == 1
        now[0] = 95.0  # within the last tenth of its life: renewed before it is used
        connector.discover(direct)
        assert server.tokens_issued == 2
        server.expire_tokens()  # the server ends it early: 401, a new token, the same request
        connector.discover(direct)
        assert server.tokens_issued == 3
    gets = [r for r in server.requests if r.method == "GET"]
    assert len(gets) == 4
    assert len({r.headers["authorization"] for r in gets}) == 3


def test_fair_use_bucket_spaces_requests() -> None:
    waits: list[float] = []
    limit = FairUse(per_minute=60, per_day=5000)
    limit.minute.tokens = 0

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        limit.minute.tokens = 1
        return False

    limit.take(wait)
    assert waits
    assert 0 < waits[0] <= 1.0


@pytest.mark.kafka
def test_v2_through_kafka_with_a_429(
    settings_factory, week: EcoCounterDataset, server: EcoCounterServer
) -> None:
    settings = settings_factory(**CREDENTIALS)
    create_topics(settings)
    server.inject(Fault.status(429, retry_after=1))
    with EcoCounterConnector(
        settings, region="mjosbyen", api="v2", endpoint=server.url,
        backfill=Window(week.start, week.end),
    ) as connector:  # fmt: skip
        metrics = Metrics(CollectorRegistry())
        stats = ConnectorRunner(connector, settings, metrics=metrics).run(once=True)
    assert stats.failed == []
    got: PointHours = {}
    for _, value in read_all(settings, settings.topic("bike.counts")):
        assert value is not None
        o = codec_counts.to_observation(codec_counts.decode(value))
        got[(o.kommune_nr, o.mode, o.point_id, o.start)] = (o.volume, o.coverage)
    assert got == expected(week, "v2", week.start, week.end)
    assert (
        metrics.registry.get_sample_value(
            "byflyt_http_errors_total", {"source": "eco-counter", "status_class": "4xx"}
        )
        == 1
    )


@pytest.mark.kafka
@pytest.mark.slow
def test_done_when_v1_week_through_the_worker_equals_the_rules(
    worker_env: dict[str, str], week: EcoCounterDataset
) -> None:
    env = {
        **worker_env,
        "BYFLYT_ECO_COUNTER_CLIENT_ID": "byflyt",
        "BYFLYT_ECO_COUNTER_CLIENT_SECRET": "hemmelig",
    }
    # Tokens die after 4 uses (the API answers 401) and the first request is rate limited.
    with EcoCounterServer(week, token_uses=4) as server:
        server.inject(Fault.status(429, retry_after=1))
        out = byflyt(
            env,
            *("ingest", "eco-counter", "--region", "mjosbyen", "--api", "v1"),
            *("--endpoint", server.url, "--from", "2025-10-22", "--to", "2025-10-29"),
        ).stdout
        assert server.tokens_issued >= 3
    assert out.startswith("eco-counter v1 mjosbyen: 5 points, ")
    assert "0 rejected, 0 failed" in out
    want = kommune_hours(expected(week, "v1", week.start, week.end))
    assert_drained_week(env, want)
    assert {r[0] for r in want if r[2] == "pedestrian"} == {"3403", "3405"}
    assert timedelta(hours=169) == week.end - week.start


def test_a_counter_configured_as_a_duplicate_is_counted_once(server: EcoCounterServer) -> None:
    dup = {"eco-counter:100001-pedestrian": "trafikkdata:10795B1743428"}
    settings = Settings(**CREDENTIALS, counter_duplicates=dup)  # type: ignore[arg-type]
    with EcoCounterConnector(settings, region="mjosbyen", endpoint=server.url) as connector:
        discovery = connector.discover(direct)
    points = sorted(r.key for r in discovery.records)
    assert "eco-counter:100001-pedestrian" not in points
    assert "eco-counter:100001-bicycle" in points
    site = next(s for s in discovery.items if s.id == "100001")
    assert site.modes == ["bicycle"]


@pytest.mark.parametrize(
    "value",
    [
        {"eco-counter:1": "eco-counter:2"},
        {"nocolon": "trafikkdata:1"},
        {"a:1": "b:1", "b:1": "c:1"},
    ],
)
def test_duplicate_setting_is_checked(value: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="counter_duplicates"):
        Settings(counter_duplicates=value)
