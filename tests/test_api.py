"""The read-only HTTP API of ``byflyt serve``, over real HTTP against a real SQLite store.

Values are checked against the rows the test wrote; the CSV against ``byflyt query hourly
--format csv`` itself; errors are RFC 7807 problem details; schemathesis walks every operation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from typer.testing import CliRunner

from byflyt.cli import app as cli
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.web import create_app
from tests.helpers import kommune_hour
from tests.web_server import serving

HOUR = timedelta(hours=1)
# Europe/Oslo's 26 October 2025 has 25 hours: 2025-10-25T22:00Z up to 2025-10-26T23:00Z.
DAY_START = datetime(2025, 10, 25, 22, tzinfo=UTC)
CSV_HEADER = "kommune_nr,kommune,mode,metric,hour_start,value,coverage,n_sources"


def _volume(kommune: str, mode: str, metric: str, hour: datetime, value: float, cov: float = 100.0):
    return kommune_hour(kommune, hour, value, mode=mode, metric=metric, coverage=cov, n_sources=2)


HAMAR = [
    _volume("3403", "bicycle", "volume", DAY_START + i * HOUR, 10 + i, 50.5 if i == 3 else 100.0)
    for i in range(25)
]
GJOVIK = [_volume("3407", "bicycle", "volume", DAY_START + i * HOUR, 7 * i) for i in range(3)]
OSLO = [_volume("0301", "bicycle", "volume", DAY_START + i * HOUR, 500) for i in range(2)]
BUS = [_volume("3403", "bus", "departures", DAY_START + i * HOUR, 12.5) for i in range(2)]


def _observations(year: int, volume: int) -> list[CountObservation]:
    start = datetime(year, 10, 1, 4, tzinfo=UTC)
    return [
        CountObservation(
            source="trafikkdata",
            point_id="P-HAMAR",
            kommune_nr="3403",
            start=start + i * HOUR,
            end=start + (i + 1) * HOUR,
            volume=volume,
            coverage=100.0,
        )
        for i in range(5)
    ]


@dataclass(frozen=True)
class Api:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data = tmp_path_factory.mktemp("api")
    settings = Settings(data_dir=data, serve_topics=False)  # type: ignore[call-arg]
    with Store.from_settings(settings) as store:
        store.upsert_kommune_hourly([*HAMAR, *GJOVIK, *OSLO, *BUS])
        store.upsert_points(
            [
                CountPoint(
                    source="trafikkdata",
                    point_id="P-HAMAR",
                    name="Hamar sykkel (syntetisk)",
                    kommune_nr="3403",
                    lat=60.79,
                    lon=11.07,
                    latest_data=datetime(2025, 10, 26, 23, tzinfo=UTC),
                ),
                CountPoint(source="trafikkdata", point_id="P-GJ", name="Gjøvik", kommune_nr=3407),
                CountPoint(source="trafikkdata", point_id="P-OSL", name="Oslo", kommune_nr=301),
            ]
        )
        store.upsert_point_hourly([*_observations(2024, 100), *_observations(2025, 110)])
        t0 = datetime(2025, 10, 26, 5, tzinfo=UTC)
        store.upsert_outage("trafikkdata", "P-GJ", "silent", t0, None, "3407", "no data 3 h")
        store.upsert_outage("trafikkdata", "P-HAMAR", "flat", t0 - 3 * HOUR, t0, "3403")
        store.upsert_outage("entur", "inn:trip_updates", "stale", t0 + HOUR, None)
        store.upsert_outage("trafikkdata", "P-OSL", "silent", t0, t0 + HOUR, "0301")
    with serving(create_app(settings, follow_topics=False)) as url:
        yield Api(url, settings)


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


def _expected(rows: list[HourlyVolume]) -> list[dict[str, object]]:
    return [
        {
            "kommune_nr": r.kommune_nr,
            "kommune": {"3403": "Hamar", "3407": "Gjøvik", "0301": "Oslo"}[r.kommune_nr],
            "mode": r.mode,
            "metric": r.metric,
            "hour_start": r.hour_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": int(r.value) if float(r.value).is_integer() else r.value,
            "coverage": int(r.coverage) if float(r.coverage).is_integer() else r.coverage,
            "n_sources": r.n_sources,
        }
        for r in rows
    ]


DAY = {"from": "2025-10-26", "to": "2025-10-27"}


# -- values ----------------------------------------------------------------------------------
def test_hourly_json_gives_the_stored_values_for_the_25_hour_day(client: httpx.Client) -> None:
    answer = client.get("/api/v1/hourly", params={**DAY, "region": "mjosbyen", "mode": "bicycle"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    # Oslo is not in Mjøsbyen; the bus departures are another mode.
    assert body["items"] == _expected([*HAMAR, *GJOVIK])
    assert body["total"] == 28
    assert body["items"][0]["hour_start"] == "2025-10-25T22:00:00Z"
    assert body["items"][3]["coverage"] == 50.5


def test_hourly_filters_by_kommune_metric_and_utc_instants(client: httpx.Client) -> None:
    params = {
        "from": "2025-10-26T02:00+01:00",  # the second 02:00 of the autumn change = 01:00Z
        "to": "2025-10-26T03:00Z",
        "kommune": ["3403"],
        "metric": "departures",
    }
    assert client.get("/api/v1/hourly", params=params).json()["items"] == []
    params["metric"] = "volume"
    items = client.get("/api/v1/hourly", params=params).json()["items"]
    assert [i["hour_start"] for i in items] == ["2025-10-26T01:00:00Z", "2025-10-26T02:00:00Z"]
    assert [i["value"] for i in items] == [13, 14]
    both = client.get("/api/v1/hourly", params={**DAY, "kommune": ["3403", "301"]}).json()
    assert {i["kommune_nr"] for i in both["items"]} == {"3403", "0301"}
    assert both["total"] == 25 + 2 + 2


def test_hourly_csv_is_exactly_what_query_hourly_prints(client: httpx.Client, api: Api) -> None:
    params = {**DAY, "region": "mjosbyen"}
    answer = client.get("/api/v1/hourly", params=params, headers={"Accept": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text.splitlines()[0] == CSV_HEADER
    argv = ["query", "hourly", "--region", "mjosbyen", "--format", "csv"]
    argv += ["--from", DAY["from"], "--to", DAY["to"]]
    printed = CliRunner().invoke(
        cli,
        argv,
        env={"BYFLYT_STORE_URL": api.settings.database_url, "BYFLYT_DATA_DIR": "/nonexistent"},
    )
    assert printed.exit_code == 0, printed.output
    assert answer.text == printed.stdout
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 25 + 3 + 2  # Hamar bicycle, Gjøvik bicycle, Hamar bus


def test_paging_walks_every_row_once_by_links(client: httpx.Client) -> None:
    everything = client.get("/api/v1/hourly", params={**DAY, "limit": 10000}).json()["items"]
    assert len(everything) == 25 + 3 + 2 + 2
    seen: list[dict[str, object]] = []
    url: str | None = f"/api/v1/hourly?from={DAY['from']}&to={DAY['to']}&limit=7"
    pages = 0
    while url:
        answer = client.get(url)
        body = answer.json()
        assert answer.headers["x-total-count"] == str(len(everything))
        assert f'<{body["links"]["self"]}>; rel="self"' in answer.headers["link"]
        if body["offset"]:
            assert body["links"]["prev"] is not None
        seen += body["items"]
        url = body["links"]["next"]
        pages += 1
    assert pages == 5  # 32 rows, 7 a page
    assert seen == everything
    last = client.get("/api/v1/hourly", params={**DAY, "limit": 7, "offset": 28}).json()
    assert len(last["items"]) == 4
    assert last["links"]["next"] is None
    assert last["links"]["prev"].endswith("limit=7&offset=21")
    csv_page = client.get(
        "/api/v1/hourly", params={**DAY, "limit": 7}, headers={"Accept": "text/csv"}
    )
    assert len(csv_page.text.splitlines()) == 1 + 7
    assert 'rel="next"' in csv_page.headers["link"]


def test_regions_kommuner_and_points(client: httpx.Client) -> None:
    regions = client.get("/api/v1/regions").json()
    mjosbyen = next(r for r in regions["items"] if r["key"] == "mjosbyen")
    assert mjosbyen["name"] == "Mjøsbyen"
    assert "3403" in mjosbyen["kommuner"]
    kommuner = client.get("/api/v1/kommuner", params={"region": "mjosbyen"}).json()
    assert kommuner["total"] == len(mjosbyen["kommuner"]) == 9
    hamar = next(k for k in kommuner["items"] if k["kommune_nr"] == "3403")
    assert hamar["kommune"] == "Hamar"
    assert "mjosbyen" in hamar["regions"]
    assert client.get("/api/v1/kommuner").json()["total"] > 300
    points = client.get("/api/v1/points", params={"region": "mjosbyen"}).json()
    assert [p["point_id"] for p in points["items"]] == ["P-GJ", "P-HAMAR"]
    p = points["items"][1]
    assert (p["kommune"], p["lat"], p["latest_data"]) == ("Hamar", 60.79, "2025-10-26T23:00:00Z")


def test_outages_filter_by_region_and_open(client: httpx.Client) -> None:
    every = client.get("/api/v1/outages").json()["items"]
    assert len(every) == 4
    in_region = client.get("/api/v1/outages", params={"region": "mjosbyen"}).json()["items"]
    # A feed outage has no kommune: it concerns every region.
    assert {o["point_id"] for o in in_region} == {"P-GJ", "P-HAMAR", "inn:trip_updates"}
    still_open = client.get(
        "/api/v1/outages", params={"region": "mjosbyen", "open": "true"}
    ).json()["items"]
    assert [(o["point_id"], o["kind"], o["open"]) for o in still_open] == [
        ("P-GJ", "silent", True),
        ("inn:trip_updates", "stale", True),
    ]
    assert still_open[0]["started"] == "2025-10-26T05:00:00Z"
    assert still_open[0]["ended"] is None
    assert still_open[0]["kommune"] == "Gjøvik"
    # The same record as `byflyt outages`: a closed outage's duration is its length.
    hamar = next(o for o in in_region if o["point_id"] == "P-HAMAR")
    assert (hamar["duration_seconds"], hamar["open"]) == (3 * 3600, False)


def test_index_matches_the_hand_computed_case(client: httpx.Client) -> None:
    # One point, the same five hours in both years: 110 against 100 every hour → +10 %.
    answer = client.get(
        "/api/v1/index", params={"kommune": "3403", "period": "2025-10", "min_hours": 5}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["from"] == "2025-09-30T22:00:00Z"
    assert body["area"]["index_pct"] == pytest.approx(10.0, abs=0.01)
    assert body["area"]["matched_hours"] == 5
    assert (body["area"]["base"], body["area"]["current"]) == (500, 550)
    assert body["area"]["ci_low"] is None  # one point: no interval
    assert [p["id"] for p in body["points"]["items"]] == ["trafikkdata:P-HAMAR"]
    too_few = client.get(
        "/api/v1/index", params={"kommune": "3403", "period": "2025-10", "min_hours": 6}
    ).json()
    assert too_few["area"]["index_pct"] is None


def test_live_state_reflects_the_store(client: httpx.Client) -> None:
    state = client.get("/live/state.json", params={"region": "mjosbyen"}).json()
    assert state["synthetic"] is True  # the Hamar point is named "(syntetisk)"
    assert state["hours"]["current"]["start"] == "2025-10-26T22:00:00Z"
    assert state["hours"]["current"]["label"] == "26.10. 23:00–00:00 (+01:00)"
    hamar = next(v for v in state["volumes"] if v["kommune_nr"] == "3403")
    assert hamar["current"]["value"] == 10 + 24
    assert hamar["previous"]["value"] == 10 + 23
    assert hamar["hours"] is None  # bicycles have the newest hour of the page
    # Each mode shows its own two newest hours: the bus hours end earlier, they are not "–".
    bus = next(v for v in state["volumes"] if v["mode"] == "bus")
    assert (bus["current"]["value"], bus["previous"]["value"]) == (12.5, 12.5)
    assert bus["hours"]["current"]["start"] == (DAY_START + HOUR).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert bus["hours"]["previous"]["start"] == DAY_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    states = {s["point_id"]: (s["state"], s["since"]) for s in state["sensors"]}
    assert states["P-GJ"] == ("silent", "2025-10-26T05:00:00Z")
    assert states["P-HAMAR"] == ("up", "2025-10-26T05:00:00Z")  # its flat outage ended
    assert "P-OSL" not in states
    assert state["sensors"][0]["state"] != "up"  # problems first
    sources = {f["name"]: f for f in state["freshness"]}
    assert sources["trafikkdata"]["newest_hour"] == "2025-10-01T08:00:00Z"
    assert sources["bus"]["n"] == 1


# -- errors ----------------------------------------------------------------------------------
def _problem(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ({**DAY, "kommune": "9999"}, "kommune", "/api/v1/kommuner"),
        ({**DAY, "kommune": "Hamar"}, "kommune", "4 digits"),
        ({"from": "2025-10-27", "to": "2025-10-26"}, "from", "is not before 2025-10-26"),
        ({"from": "2025-10-26", "to": "2025-10-26"}, "from", "would be empty"),
        ({"from": "2025-10-26T02:00", "to": "2025-10-27"}, "from", "no UTC offset"),
        ({"from": "yesterday", "to": "2025-10-27"}, "from", "neither a date"),
        ({**DAY, "region": "atlantis"}, "region", "/api/v1/regions"),
        ({**DAY, "region": "mjosbyen", "kommune": "0301"}, "kommune", "not in region"),
        ({**DAY, "mode": "rocket"}, "mode", "bicycle"),
        ({**DAY, "limit": "0"}, "limit", "greater than or equal to 1"),
        ({"from": "2025-10-26"}, "to", "required"),
    ],
)
def test_bad_parameters_are_400_problems_that_say_what_to_fix(
    client: httpx.Client, params: dict[str, str], parameter: str, says: str
) -> None:
    body = _problem(client.get("/api/v1/hourly", params=params), 400)
    assert body["type"] == "urn:byflyt:problem:invalid-parameter"
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["parameter"] == parameter
    assert says in str(body["detail"])


def test_other_errors_are_problems_too(client: httpx.Client) -> None:
    assert "openapi.json" in str(_problem(client.get("/api/v1/nothing"), 404)["detail"])
    assert "read-only" in str(_problem(client.post("/api/v1/hourly"), 405)["detail"])
    body = _problem(client.get("/api/v1/index", params={"period": "2025-13"}), 400)
    assert body["errors"][0]["parameter"] == "period"  # type: ignore[index]


def test_openapi_describes_every_operation(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for name in ("regions", "kommuner", "points", "hourly", "index", "outages"):
        assert f"/api/v1/{name}" in paths
    hourly = spec["paths"]["/api/v1/hourly"]["get"]
    assert "text/csv" in hourly["responses"]["200"]["content"]
    assert "application/problem+json" in hourly["responses"]["400"]["content"]
    assert "422" not in hourly["responses"]


# -- schemathesis ----------------------------------------------------------------------------
def test_schemathesis_finds_no_failure_in_any_operation(api: Api) -> None:
    """Every operation of /openapi.json, with generated valid and invalid input, over HTTP.

    All of schemathesis' checks run (no server error, status codes, content types, headers and
    bodies as the schema documents them) but one: "schema-valid data is accepted". The API's
    400s for a kommune number that does not exist, a kommune outside the region, or ``from``
    after ``to`` are rules a JSON schema cannot state, so schema-valid requests can rightly be
    refused; the tests above check those answers.
    """
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {f"/api/v1/{n}" for n in ("regions", "kommuner", "points", "hourly")} <= paths
    assert {"/api/v1/index", "/api/v1/outages", "/live/state.json"} <= paths
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
