"""The synthetic Trafikkdata week and the local server that answers in the API's shapes.

Every server test is real HTTP (httpx) to a server on a free port.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from byflyt.samples.trafikkdata import (
    HOUR,
    MIDWEEK_POINT,
    OSLO,
    OSLO_POINT,
    OUTSIDE_POINT,
    SILENT_POINT,
    VEHICLE_POINT,
    TrafikkdataDataset,
    generate,
    mjosbyen_week,
)
from byflyt.samples.trafikkdata_server import Fault, TrafikkdataServer
from tests.conftest import Served

STRANDVEGEN = "10795B1743428"
POINTS_QUERY = """query($countyNumbers:[Int!]) {
  trafficRegistrationPoints(searchQuery:{trafficType: BICYCLE, countyNumbers:$countyNumbers}) {
    id name operationalStatus
    location { coordinates { latLon { lat lon } }
               municipality { name number } county { name number } }
    dataTimeSpan { firstData latestData { volumeByHour } } } }"""
HOURS_QUERY = """query($id:String!, $from:ZonedDateTime!, $to:ZonedDateTime!, $after:String) {
  trafficData(trafficRegistrationPointId:$id) { volume { byHour(from:$from, to:$to, after:$after) {
    edges { node { from to total { volumeNumbers { volume } coverage { percentage } } } }
    pageInfo { hasNextPage endCursor } } } } }"""


@pytest.fixture(scope="module")
def week() -> TrafikkdataDataset:
    return mjosbyen_week(1)


@pytest.fixture(scope="module")
def week_v2() -> TrafikkdataDataset:
    return mjosbyen_week(2)


@pytest.fixture
def server(week: TrafikkdataDataset, served: Served) -> TrafikkdataServer:
    return served(TrafikkdataServer(week))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"x-client": "byflyt-tests"}, timeout=5) as http:
        yield http


def post(
    client: httpx.Client, url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = client.post(url, json={"query": query, "variables": variables or {}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def all_nodes(
    client: httpx.Client, url: str, point_id: str, start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], int]:
    """Every node of the range, following cursors; and how many pages it took."""
    nodes: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        window = {"from": start.isoformat(), "to": end.isoformat()}
        answer = post(client, url, HOURS_QUERY, {"id": point_id, "after": after, **window})
        by_hour = answer["data"]["trafficData"]["volume"]["byHour"]
        nodes += [edge["node"] for edge in by_hour["edges"]]
        pages += 1
        assert len(by_hour["edges"]) <= 100
        if not by_hour["pageInfo"]["hasNextPage"]:
            return nodes, pages
        after = by_hour["pageInfo"]["endCursor"]


def utc_start(node: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(node["from"]).astimezone(UTC)


def served_value(node: dict[str, Any]) -> tuple[int | None, float, str]:
    total = node["total"]
    coverage = total["coverage"]["percentage"]
    if total["volumeNumbers"] is None:
        return None, coverage, "null_numbers"
    volume = total["volumeNumbers"]["volume"]
    return volume, coverage, "numbers" if volume is not None else "null_volume"


def test_get_and_other_methods_answer_410(server: TrafikkdataServer, client: httpx.Client) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, server.url)
        assert response.status_code == 410
        assert "POST" in response.text
    assert [r.method for r in server.requests] == ["GET", "PUT", "DELETE"]


def test_points_filter_by_traffic_type_and_county(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    innlandet = post(client, server.url, POINTS_QUERY, {"countyNumbers": [34]})
    points = innlandet["data"]["trafficRegistrationPoints"]
    ids = {p["id"] for p in points}
    assert OUTSIDE_POINT in ids
    assert MIDWEEK_POINT in ids
    assert VEHICLE_POINT not in ids
    assert OSLO_POINT not in ids
    assert len(ids) == 13
    hamar = next(p for p in points if p["id"] == STRANDVEGEN)
    assert hamar["location"]["municipality"] == {"name": "Hamar", "number": 3403}
    assert hamar["location"]["county"] == {"name": "Innlandet", "number": 34}
    assert set(hamar["location"]["coordinates"]["latLon"]) == {"lat", "lon"}
    assert hamar["operationalStatus"] == "OPERATIONAL"
    assert all("syntetisk" in p["name"] for p in points)

    oslo = post(client, server.url, POINTS_QUERY, {"countyNumbers": [3]})
    [akerselva] = oslo["data"]["trafficRegistrationPoints"]
    assert akerselva["location"]["municipality"]["number"] == 301  # 0301 as a JSON integer
    assert akerselva["location"]["county"]["number"] == 3

    vehicles = (
        "{ trafficRegistrationPoints(searchQuery: {trafficType: VEHICLE, countyNumbers: [34]})"
        " { id } }"
    )
    answer = post(client, server.url, vehicles)
    assert [p["id"] for p in answer["data"]["trafficRegistrationPoints"]] == [VEHICLE_POINT]
    everything = post(client, server.url, "{ trafficRegistrationPoints { id } }")
    assert len(everything["data"]["trafficRegistrationPoints"]) == len(week.points)


def test_points_report_their_data_time_span(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    answer = post(client, server.url, POINTS_QUERY, {"countyNumbers": [34]})
    for raw in answer["data"]["trafficRegistrationPoints"]:
        span = raw["dataTimeSpan"]
        latest = datetime.fromisoformat(span["latestData"]["volumeByHour"])
        assert latest.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
        assert latest == max(week.hours[raw["id"]])  # the start of the last published hour
        assert datetime.fromisoformat(span["firstData"]) == week.point(raw["id"]).first_data
    midweek = week.point(MIDWEEK_POINT)
    assert week.start < midweek.first_data < week.end
    assert min(week.hours[MIDWEEK_POINT]) == midweek.first_data


def test_week_pages_every_hour_once_with_the_repeated_dst_hour(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    nodes, pages = all_nodes(client, server.url, STRANDVEGEN, week.start, week.end)
    assert pages == 2
    starts = [utc_start(n) for n in nodes]
    assert starts == sorted(week.hours[STRANDVEGEN])  # every hour once, in order
    for node, start in zip(nodes, starts, strict=True):
        value = week.hours[STRANDVEGEN][start]
        assert served_value(node) == (value.volume, value.coverage, value.shape)
        assert datetime.fromisoformat(node["to"]) - datetime.fromisoformat(node["from"]) == HOUR

    repeated = [n for n in nodes if n["from"].startswith("2025-10-26T02:00:00")]
    assert [(n["from"], n["to"]) for n in repeated] == [
        ("2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00"),
        ("2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"),
    ]
    assert utc_start(repeated[0]) + HOUR == utc_start(repeated[1])


def test_arguments_can_be_literals_in_the_query_text(
    server: TrafikkdataServer, client: httpx.Client
) -> None:
    literal = (
        f'{{ trafficData(trafficRegistrationPointId: "{STRANDVEGEN}") {{ volume {{ '
        'byHour(from: "2025-10-26T01:00:00+02:00", to: "2025-10-26T04:00:00+01:00") '
        "{ edges { node { from to total { volumeNumbers { volume } coverage { percentage } } } } "
        "pageInfo { hasNextPage endCursor } } } } }"
    )
    by_literal = post(client, server.url, literal)["data"]["trafficData"]["volume"]["byHour"]
    window = {"from": "2025-10-26T01:00:00+02:00", "to": "2025-10-26T04:00:00+01:00"}
    by_variable = post(client, server.url, HOURS_QUERY, {"id": STRANDVEGEN, **window})
    by_variable = by_variable["data"]["trafficData"]["volume"]["byHour"]
    assert len(by_literal["edges"]) == 4  # 01, 02 (+02), 02 (+01), 03 local: a 25-hour night
    assert by_literal == by_variable
    assert by_literal["pageInfo"]["hasNextPage"] is False


def test_served_week_equals_the_dataset_with_every_quirk(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    shapes: dict[str, int] = {}
    for point in week.points:
        nodes, _ = all_nodes(client, server.url, point.id, week.start, week.end)
        served = {utc_start(n): served_value(n) for n in nodes}
        expected = {h: (v.volume, v.coverage, v.shape) for h, v in week.hours[point.id].items()}
        assert served == expected
        for volume, coverage, shape in served.values():
            shapes[shape] = shapes.get(shape, 0) + 1
            assert (volume is None) == (coverage == 0.0)
    assert shapes["null_numbers"] == 4
    assert shapes["null_volume"] == 3
    values = [v for hours in week.hours.values() for v in hours.values()]
    assert sum(1 for v in values if 0 < v.coverage < 100 and v.volume is not None) == 5
    night = [
        v
        for hours in week.hours.values()
        for h, v in hours.items()
        if h.astimezone(OSLO).hour == 3 and v.volume == 0
    ]
    assert night
    assert all(v.coverage == 100.0 for v in night)  # real zeros, not missing data


def test_hourly_profile_has_rush_hours_and_a_weekend_hump(week: TrafikkdataDataset) -> None:
    def mean(weekend: bool, local_hour: int) -> float:
        volumes = [
            v.volume
            for pid, hours in week.hours.items()
            if pid not in (VEHICLE_POINT, OSLO_POINT)
            for h, v in hours.items()
            if v.volume is not None
            and (h.astimezone(OSLO).weekday() >= 5) == weekend
            and h.astimezone(OSLO).hour == local_hour
        ]
        return sum(volumes) / len(volumes)

    assert mean(False, 8) > 2 * mean(False, 12) > 0
    assert mean(False, 16) > mean(False, 12)
    assert mean(True, 13) > 2 * mean(True, 8)
    assert 10 < mean(False, 8) < 100  # autumn: tens per hour at the peak
    assert mean(False, 3) < 1


def test_silent_point_sends_nothing_for_a_day(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    day_start = datetime(2025, 10, 24, tzinfo=OSLO)
    nodes, _ = all_nodes(client, server.url, SILENT_POINT, day_start, day_start + 24 * HOUR)
    assert nodes == []
    hours = week.hours[SILENT_POINT]
    assert day_start - HOUR in hours
    assert day_start + 24 * HOUR in hours
    others, _ = all_nodes(client, server.url, STRANDVEGEN, day_start, day_start + 24 * HOUR)
    assert len(others) == 24


def test_midweek_point_has_no_nodes_before_its_first_data(
    server: TrafikkdataServer, client: httpx.Client, week: TrafikkdataDataset
) -> None:
    nodes, _ = all_nodes(client, server.url, MIDWEEK_POINT, week.start, week.end)
    first = week.point(MIDWEEK_POINT).first_data
    assert utc_start(nodes[0]) == first
    assert first.astimezone(OSLO).isoformat() == "2025-10-25T12:00:00+02:00"


def test_v2_differs_only_in_corrections_and_the_lagging_hours(
    week: TrafikkdataDataset, week_v2: TrafikkdataDataset
) -> None:
    assert week.corrected == ()
    assert len(week_v2.corrected) == 10
    assert week.points[0].name == week_v2.points[0].name
    changed = {
        (pid, h)
        for pid, hours in week_v2.hours.items()
        for h, value in hours.items()
        if week.hours[pid].get(h) != value
    }
    added = {(pid, h) for pid, h in changed if h not in week.hours[pid]}
    assert changed - added == set(week_v2.corrected)
    assert all(week_v2.end - 3 * HOUR <= h < week_v2.end for _, h in added)
    lagging = {pid for pid, _ in added}
    assert len(lagging) == len(week.points)
    missing_two_or_more = [p for p in lagging if max(week.hours[p]) <= week.end - 3 * HOUR]
    assert len(missing_two_or_more) > len(week.points) / 2
    assert all(set(week.hours[pid]) <= set(week_v2.hours[pid]) for pid in week.hours)
    before = [week.hours[pid][h] for pid, h in week_v2.corrected]
    after = [week_v2.hours[pid][h] for pid, h in week_v2.corrected]
    assert {b.shape for b in before} == {"numbers", "null_numbers", "null_volume"}
    assert any(b.volume is not None and 0 < b.coverage < 100 for b in before)
    assert all(a.coverage == 100.0 and a.volume is not None for a in after)


def test_set_dataset_switches_to_v2_while_running(
    server: TrafikkdataServer,
    client: httpx.Client,
    week: TrafikkdataDataset,
    week_v2: TrafikkdataDataset,
) -> None:
    pid, hour = next((p, h) for p, h in week_v2.corrected if week.hours[p][h].volume is None)
    [before], _ = all_nodes(client, server.url, pid, hour, hour + HOUR)
    server.set_dataset(week_v2)
    [after], _ = all_nodes(client, server.url, pid, hour, hour + HOUR)
    assert served_value(before)[0] is None
    assert served_value(after) == (week_v2.hours[pid][hour].volume, 100.0, "numbers")


def test_faults_are_served_in_order_then_normal_answers(
    server: TrafikkdataServer, client: httpx.Client
) -> None:
    server.inject(
        Fault.status(429, retry_after=1),
        Fault.status(503),
        Fault.graphql_error("Too complex"),
        Fault.malformed_json(),
    )
    limited = client.post(server.url, json={"query": POINTS_QUERY})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    unavailable = client.post(server.url, json={"query": POINTS_QUERY})
    assert unavailable.status_code == 503
    assert "retry-after" not in unavailable.headers
    error = client.post(server.url, json={"query": POINTS_QUERY})
    assert error.status_code == 200
    assert error.json()["data"] is None
    assert error.json()["errors"][0]["message"] == "Too complex"
    malformed = client.post(server.url, json={"query": POINTS_QUERY})
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    normal = post(client, server.url, POINTS_QUERY, {"countyNumbers": [34]})
    assert normal["data"]["trafficRegistrationPoints"]


def test_delay_fault_provokes_a_client_timeout(
    server: TrafikkdataServer, client: httpx.Client
) -> None:
    server.inject(Fault.delay(2))
    with pytest.raises(httpx.ReadTimeout):
        client.post(server.url, json={"query": POINTS_QUERY}, timeout=0.2)
    assert post(client, server.url, POINTS_QUERY)["data"]["trafficRegistrationPoints"]


DAY = {"from": "2025-10-22T00:00:00+02:00", "to": "2025-10-23T00:00:00+02:00"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": HOURS_QUERY, "variables": {**DAY, "id": "0B0"}}, "not found"),
        (
            {"query": HOURS_QUERY, "variables": {**DAY, "id": STRANDVEGEN, "after": "bm9wZQ=="}},
            "Invalid cursor",
        ),
        (
            {"query": HOURS_QUERY, "variables": {**DAY, "id": STRANDVEGEN, "from": "2025-10-22"}},
            "from",
        ),
        ({"query": HOURS_QUERY, "variables": {"id": STRANDVEGEN, "to": DAY["to"]}}, "from"),
        ({"query": '{ trafficData(trafficRegistrationPointId: "x") { volume { byHour('}, "syntax"),
        ({"query": "{ weather { rain } }"}, "unknown field"),
        ({"query": POINTS_QUERY, "variables": {"countyNumbers": ["x"]}}, "countyNumbers"),
        ({"variables": {}}, "query"),
    ],
)
def test_bad_queries_get_graphql_errors_with_http_200(
    server: TrafikkdataServer, client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    response = client.post(server.url, json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["data"] is None
    [error] = answer["errors"]
    assert message in error["message"]
    assert error["extensions"]["classification"] in ("ValidationError", "InvalidSyntax")
    assert error["locations"][0]["line"] >= 1


def test_body_that_is_not_json_is_a_400(server: TrafikkdataServer, client: httpx.Client) -> None:
    response = client.post(server.url, content=b"query { nope", headers={"content-type": "text"})
    assert response.status_code == 400
    assert response.json()["errors"]


def test_requests_are_logged_with_headers_and_body(
    server: TrafikkdataServer, client: httpx.Client
) -> None:
    post(client, server.url, POINTS_QUERY, {"countyNumbers": [34]})
    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["x-client"] == "byflyt-tests"
    assert request.json()["variables"] == {"countyNumbers": [34]}


def test_page_size_and_stop_release_the_server(week: TrafikkdataDataset) -> None:
    with TrafikkdataServer(week, page_size=24) as small, httpx.Client(timeout=5) as client:
        nodes, pages = all_nodes(client, small.url, STRANDVEGEN, week.start, week.end)
        url = small.url
    assert len(nodes) == len(week.hours[STRANDVEGEN])
    assert pages == 7
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=1) as client:
        client.post(url, json={"query": POINTS_QUERY})


def test_dataset_file_served_by_the_standalone_server(
    tmp_path: Path, week_v2: TrafikkdataDataset
) -> None:
    path = tmp_path / "week.json"
    path.write_text(week_v2.to_json(), "utf-8")
    assert TrafikkdataDataset.from_json(path.read_text("utf-8")) == week_v2
    module = "byflyt.samples.trafikkdata_server"
    command = [sys.executable, "-m", module, "--port", "0", "--dataset", str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        with httpx.Client(timeout=5) as client:
            nodes, _ = all_nodes(client, url, STRANDVEGEN, week_v2.end - HOUR, week_v2.end)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    assert len(nodes) == 1  # the lagging last hour is there in version 2


def test_generation_is_deterministic_and_checks_its_arguments() -> None:
    start = datetime(2025, 10, 22, tzinfo=OSLO)
    assert generate(start=start) == mjosbyen_week()
    assert generate(start=start, seed=8).hours != mjosbyen_week().hours
    bad_arguments: list[dict[str, Any]] = [
        {"start": start.replace(tzinfo=None)},
        {"start": start, "days": 3},
        {"start": start, "version": 3},
    ]
    for bad in bad_arguments:
        with pytest.raises(ValueError, match=r"aware|days|version"):
            generate(**bad)


def test_spring_week_has_a_23_hour_day() -> None:
    spring = generate(start=datetime(2026, 3, 26, tzinfo=OSLO), days=7, version=2)
    assert spring.end - spring.start == timedelta(days=7) - HOUR
    local = [h.astimezone(OSLO) for h in spring.hours[STRANDVEGEN]]
    assert not [t for t in local if t.date().isoformat() == "2026-03-29" and t.hour == 2]
    assert sum(1 for t in local if t.date().isoformat() == "2026-03-29") == 23
