"""One model, two modes: walking (``pedestrian``) read like cycling by every reader of the store.

A real SQLite store holds a Telraam segment's and an Eco-Counter site's pedestrian hours (and the
site's bicycle hours) for three October days in 2024 and in 2025, as the connectors fetched
them, with the kommune-hours the cycling rules give (``tests/cycling_expect``). Then
``byflyt query hourly --mode pedestrian``, ``byflyt index --mode pedestrian``, the report's
walking section, the API and the live page are each checked against sums computed here from the
same hours. The store also holds the outage today's status agent opens across the year between
the two fetched windows: the report calls that gap "ikke hentet", not an outage.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from typer.testing import Result

from byflyt.clock import OSLO
from byflyt.models.base import Mode
from byflyt.models.counts import CountObservation, CountPoint, FetchedWindow
from byflyt.models.kommuner import kommune_name
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.web import create_app
from tests.cycling_expect import expected_rows
from tests.helpers import invoke, ok
from tests.web_server import serving

HOUR = timedelta(hours=1)
DAYS = (22, 23, 24)  # before either year's clock change: every local hour has its partner
WINDOW = {
    year: (datetime(year, 10, 22, tzinfo=OSLO), datetime(year, 10, 25, tzinfo=OSLO))
    for year in (2024, 2025)
}
OCTOBER_HOURS = 745  # 31 days and the repeated hour of 26 October 2025
MIN_HOURS = 10

# (source, point, kommune, mode): a Telraam segment in Hamar, an Eco-Counter site in Gjøvik.
POINTS: list[tuple[str, str, str, Mode]] = [
    ("telraam", "9000017001-pedestrian", "3403", "pedestrian"),
    ("eco-counter", "100002-pedestrian", "3407", "pedestrian"),
    ("eco-counter", "100002-bicycle", "3407", "bicycle"),
]


def counted(point: int, year: int, day: int, hod: int) -> tuple[int | None, float]:
    """A made-up (volume, coverage) for one local hour: daylight only, 2025 busier than 2024."""
    if not 6 <= hod <= 21:
        return None, 0.0
    base = (10 + 3 * point) + hod * (point + 1) + day % 3
    volume = base if year == 2024 else base + 2 + hod % 4
    coverage = 80.0 if (day, hod) == (23, 8 + point) else 100.0  # one hour under 95 % each
    return volume, coverage


def observations() -> list[CountObservation]:
    result = []
    for n, (source, point, kommune, mode) in enumerate(POINTS):
        for year in (2024, 2025):
            for day in DAYS:
                for hod in range(24):
                    start = datetime(year, 10, day, hod, tzinfo=OSLO).astimezone(UTC)
                    volume, coverage = counted(n, year, day, hod)
                    result.append(
                        CountObservation(
                            source=source,
                            point_id=point,
                            kommune_nr=kommune,
                            mode=mode,
                            start=start,
                            end=start + HOUR,
                            volume=volume,
                            coverage=coverage,
                        )
                    )
    return result


# The outage the status agent opens today: silent from the first daytime hour nobody fetched
# after the 2024 window until data came back in the 2025 window.
SILENT_FROM = datetime(2024, 10, 25, 6, tzinfo=OSLO)
SILENT_TO = datetime(2025, 10, 22, 6, tzinfo=OSLO)
REAL_OUTAGE = (datetime(2025, 10, 23, 12, tzinfo=OSLO), datetime(2025, 10, 23, 18, tzinfo=OSLO))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("walking"), serve_topics=False)  # type: ignore[call-arg]
    obs = observations()
    with Store.from_settings(settings) as store:
        store.upsert_points(
            CountPoint(source=s, point_id=p, name=f"{p} (syntetisk)", kommune_nr=k, mode=m)
            for s, p, k, m in POINTS
        )
        store.upsert_point_hourly(obs)
        store.upsert_kommune_hourly(
            HourlyVolume(
                kommune_nr=k, mode=m, metric=metric, hour_start=h, value=v, coverage=c, n_sources=n
            )
            for k, m, metric, h, v, c, n in expected_rows(obs)
        )
        store.add_fetched(
            FetchedWindow(source=s, point_id=p, kommune_nr=k, mode=m, since=a, until=b)
            for s, p, k, m in POINTS
            for a, b in WINDOW.values()
        )
        for source, point, kommune, _ in POINTS:
            store.upsert_outage(source, point, "silent", SILENT_FROM, SILENT_TO, kommune)
        store.upsert_outage("telraam", POINTS[0][1], "flat", *REAL_OUTAGE, "3403", "volume 7")
    return settings


def run(settings: Settings, *args: str) -> Result:
    result = invoke(settings.database_url, *args)
    ok(result)
    return result


def pedestrian_rows() -> list[tuple[str, str, str, datetime, float, float, int]]:
    return [r for r in expected_rows(observations()) if r[1] == "pedestrian"]


def test_query_hourly_mode_pedestrian(settings: Settings) -> None:
    out = run(
        settings,
        *("query", "hourly", "--region", "mjosbyen", "--mode", "pedestrian"),
        *("--from", "2025-10-01", "--to", "2025-11-01", "--format", "csv"),
    ).stdout
    got = [
        (r["kommune_nr"], r["mode"], r["hour_start"], float(r["value"]), float(r["coverage"]))
        for r in csv.DictReader(io.StringIO(out))
    ]
    want = [
        (k, m, h.strftime("%Y-%m-%dT%H:%M:%SZ"), v, c)
        for k, m, _, h, v, c, _ in pedestrian_rows()
        if h.year == 2025
    ]
    assert got == sorted(want)
    assert len(got) == 2 * len(DAYS) * 16  # two kommuner, 16 daylight hours a day


def independent_index(kommuner: set[str]) -> tuple[int, int, int, int]:
    """(points, matched hours, base, current) by Statens vegvesen's rule for walking points."""
    hours: dict[tuple[str, int, date, int], tuple[int | None, float]] = {}
    for o in observations():
        if o.mode == "pedestrian" and o.kommune_nr in kommuner:
            local = o.start.astimezone(OSLO)
            hours[(o.point_id, local.year, local.date().replace(year=2000), local.hour)] = (
                o.volume,
                o.coverage,
            )
    per_point: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (point, year, day, hod), (volume, coverage) in hours.items():
        if year != 2025:
            continue
        before, before_cov = hours[(point, 2024, day, hod)]
        if volume is not None and before is not None and min(coverage, before_cov) >= 95:
            per_point[point].append((before, volume))
    taking_part = [pairs for pairs in per_point.values() if len(pairs) >= MIN_HOURS]
    return (
        len(taking_part),
        sum(len(p) for p in taking_part),
        sum(b for p in taking_part for b, _ in p),
        sum(c for p in taking_part for _, c in p),
    )


def test_index_mode_pedestrian(settings: Settings) -> None:
    args = ("index", "--region", "mjosbyen", "--mode", "pedestrian", "--period", "2025-10")
    answer = json.loads(
        run(settings, *args, "--min-hours", str(MIN_HOURS), "--format", "json").stdout
    )
    area = answer["area"]
    n, matched, base, current = independent_index({"3403", "3407"})
    assert (area["n_points"], area["matched_hours"], area["base"], area["current"]) == (
        n,
        matched,
        base,
        current,
    )
    assert n == 2
    assert area["index_pct"] == pytest.approx((current / base - 1) * 100, abs=0.01)
    assert {p["id"] for p in answer["points"]} == {
        "telraam:9000017001-pedestrian",
        "eco-counter:100002-pedestrian",
    }


@pytest.fixture(scope="module")
def workbooks(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = {}
    for lang in ("nb", "en"):
        out = tmp_path_factory.mktemp(f"report-{lang}")
        args = ("report", "--region", "mjosbyen", "--year", "2025", "--month", "10")
        printed = run(settings, *args, "--lang", lang, "--out", str(out), "--min-hours", "10")
        for line in printed.stdout.splitlines():
            kind, path = line.split(": ", 1)
            paths[f"{kind}-{lang}"] = Path(path)
    return paths


def records(path: Path, sheet: str) -> list[dict[str, object]]:
    rows = list(load_workbook(path)[sheet].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_report_has_a_walking_section(workbooks: dict[str, Path]) -> None:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for kommune, _, _, hour, value, coverage, _ in pedestrian_rows():
        if hour.year == 2025:
            cell = sums[kommune]
            cell[0] += value
            cell[1] += coverage
            cell[2] += 1
    got = {
        r["Kommunenr."]: (r["Gående"], r["Dekning %"], r["Timer med data"])
        for r in records(workbooks["XLSX-nb"], "Gange per måned")
    }
    assert got == {
        k: (int(v), round(c / OCTOBER_HOURS, 1), int(n)) for k, (v, c, n) in sums.items()
    }
    html = workbooks["HTML-nb"].read_text("utf-8")
    assert '<section id="walking_monthly">' in html
    assert "<h2>Gange per måned og kommune</h2>" in html
    english = workbooks["HTML-en"].read_text("utf-8")
    assert "<h2>Walking per month and kommune</h2>" in english
    # The cycling section is still cycling only.
    cycling = records(workbooks["XLSX-nb"], "Sykkel per måned")
    assert [r["Kommunenr."] for r in cycling] == ["3407"]


def test_a_gap_between_fetched_windows_is_not_ingested_not_an_outage(
    workbooks: dict[str, Path],
) -> None:
    outages = records(workbooks["XLSX-nb"], "Avbrudd")
    gap_hours = (WINDOW[2025][0] - WINDOW[2024][1]) / HOUR
    assert gap_hours > 8000
    gaps = [o for o in outages if o["Art"] == "ikke hentet"]
    assert sorted(o["Punkt"] for o in gaps) == sorted(p for _, p, _, _ in POINTS)
    for o in gaps:
        assert o["Start"].replace(tzinfo=OSLO) == WINDOW[2024][1]
        assert o["Slutt"].replace(tzinfo=OSLO) == WINDOW[2025][0]
        assert o["Varighet (timer)"] == gap_hours
    # What is left of the agent's year-long "silent" is the fetched hours before data came back.
    silent = [o for o in outages if o["Art"] == "silent"]
    assert {o["Varighet (timer)"] for o in silent} == {(SILENT_TO - WINDOW[2025][0]) / HOUR}
    assert len(silent) == len(POINTS)
    assert all(o["Start"].replace(tzinfo=OSLO) == WINDOW[2025][0] for o in silent)
    flat = [o for o in outages if o["Art"] == "flat"]
    assert [(o["Punkt"], o["Varighet (timer)"]) for o in flat] == [(POINTS[0][1], 6.0)]
    quality = {q["Punkt"]: q for q in records(workbooks["XLSX-nb"], "Datakvalitet")}
    fetched_in_october = (WINDOW[2025][1] - WINDOW[2025][0]) / HOUR
    assert {p: q["Timer ikke hentet"] for p, q in quality.items()} == {
        p: OCTOBER_HOURS - fetched_in_october for _, p, _, _ in POINTS
    }
    assert {q["Reisemåte"] for q in quality.values()} == {"gange", "sykkel"}
    english = records(workbooks["XLSX-en"], "Outages")
    assert sum(o["Kind"] == "not ingested" for o in english) == len(POINTS)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[httpx.Client]:
    with (
        serving(create_app(settings, follow_topics=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


def test_api_hourly_mode_pedestrian(client: httpx.Client) -> None:
    params = {"from": "2025-10-01", "to": "2025-11-01", "region": "mjosbyen", "mode": "pedestrian"}
    items = client.get("/api/v1/hourly", params={**params, "limit": 1000}).json()["items"]
    got = [(i["kommune_nr"], i["hour_start"], i["value"], i["n_sources"]) for i in items]
    want = [
        (k, h.strftime("%Y-%m-%dT%H:%M:%SZ"), int(v), n)
        for k, _, _, h, v, _, n in pedestrian_rows()
        if h.year == 2025
    ]
    assert sorted(got) == sorted(want)


def test_live_page_shows_walking_beside_cycling(client: httpx.Client) -> None:
    state = client.get("/live/state.json", params={"region": "mjosbyen"}).json()
    walking = {v["kommune_nr"]: v for v in state["volumes"] if v["mode"] == "pedestrian"}
    newest = max(h for *_, h, _, _, _ in pedestrian_rows())
    at_newest = {k: (v, c) for k, _, _, h, v, c, _ in pedestrian_rows() if h == newest}
    assert {k: (v["current"]["value"], v["current"]["coverage"]) for k, v in walking.items()} == (
        at_newest
    )
    assert {v["mode"] for v in state["volumes"]} == {"bicycle", "pedestrian"}
    sensors = {s["point_id"]: s for s in state["sensors"]}
    assert {p for _, p, _, _ in POINTS} <= set(sensors)
    assert sensors[POINTS[0][1]]["kommune"] == kommune_name("3403")
