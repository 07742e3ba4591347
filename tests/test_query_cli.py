"""``byflyt query hourly|daily`` in-process on a store filled here (SQLite; PostgreSQL once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import Result

from byflyt.clock import parse_when
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.hourly import local_day_hours
from byflyt.store import Store
from tests.helpers import invoke, kommune_hour, ok

HEADER = "kommune_nr,kommune,mode,metric,hour_start,value,coverage,n_sources"
DAILY_HEADER = "kommune_nr,kommune,mode,metric,date,value,coverage,hours"
# 2025-10-26 in Europe/Oslo runs from 2025-10-25T22:00Z to 2025-10-26T23:00Z: 25 hours.
DAY_START = datetime(2025, 10, 25, 22, tzinfo=UTC)
DST_END = datetime(2025, 10, 26, 0, tzinfo=UTC)


def vol(
    kommune: str,
    hour: datetime,
    value: float,
    coverage: float = 100.0,
    n_sources: int = 1,
    mode: str = "bicycle",
) -> HourlyVolume:
    return kommune_hour(kommune, hour, value, mode=mode, coverage=coverage, n_sources=n_sources)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as opened:
        yield opened


def run(store_url: str, *args: str, **env: str | None) -> Result:
    return invoke(store_url, "query", *args, **env)


def fill_dst_night(store: Store) -> None:
    store.upsert_kommune_hourly(
        [
            vol("3403", DST_END - timedelta(hours=1), 7),
            vol("3403", DST_END, 153.0, coverage=87.5, n_sources=2),
            vol("3403", DST_END + timedelta(hours=1), 12.5, coverage=66.67, n_sources=3),
            vol("3407", DST_END, 4),
            vol("3407", DST_END, 9, mode="pedestrian"),
            vol("0301", DST_END, 1000),  # Oslo: not in Mjøsbyen
            vol("3403", DST_END + timedelta(days=1), 99),  # the next day: outside the range
        ]
    )


HOURLY = ("hourly", "--region", "mjosbyen", "--from", "2025-10-26", "--to", "2025-10-27")


def test_csv_has_the_contract_header_and_exact_rows(store_url: str, store: Store) -> None:
    fill_dst_night(store)
    out = ok(run(store_url, *HOURLY, "--mode", "bicycle", "--metric", "volume", "--format", "csv"))
    assert out.splitlines() == [
        HEADER,
        "3403,Hamar,bicycle,volume,2025-10-25T23:00:00Z,7,100,1",
        "3403,Hamar,bicycle,volume,2025-10-26T00:00:00Z,153,87.5,2",
        "3403,Hamar,bicycle,volume,2025-10-26T01:00:00Z,12.5,66.67,3",
        "3407,Gjøvik,bicycle,volume,2025-10-26T00:00:00Z,4,100,1",
    ]


@pytest.mark.postgres
def test_csv_is_the_same_on_postgresql(store_url: str, store: Store, pg_store_url: str) -> None:
    fill_dst_night(store)
    with Store(pg_store_url) as pg:
        fill_dst_night(pg)
    args = (*HOURLY, "--format", "csv")
    assert ok(run(pg_store_url, *args)) == ok(run(store_url, *args))


def test_json_has_the_same_fields(store_url: str, store: Store) -> None:
    fill_dst_night(store)
    out = ok(run(store_url, *HOURLY, "--kommune", "3407", "--format", "json"))
    assert json.loads(out) == [
        {
            "kommune_nr": "3407",
            "kommune": "Gjøvik",
            "mode": "bicycle",
            "metric": "volume",
            "hour_start": "2025-10-26T00:00:00Z",
            "value": 4,
            "coverage": 100,
            "n_sources": 1,
        },
        {
            "kommune_nr": "3407",
            "kommune": "Gjøvik",
            "mode": "pedestrian",
            "metric": "volume",
            "hour_start": "2025-10-26T00:00:00Z",
            "value": 9,
            "coverage": 100,
            "n_sources": 1,
        },
    ]


def test_table_shows_the_repeated_local_hour_with_its_offset(store_url: str, store: Store) -> None:
    fill_dst_night(store)
    out = ok(run(store_url, *HOURLY, "--kommune", "3403"))
    lines = out.splitlines()
    assert "hour (UTC)" in lines[0]
    assert "local (Europe/Oslo)" in lines[0]
    rows = [line.split() for line in lines if line.lstrip().startswith("3403")]
    assert [(r[4], r[5], r[6], r[7]) for r in rows] == [
        ("2025-10-25", "23:00Z", "2025-10-26", "01:00+02:00"),
        ("2025-10-26", "00:00Z", "2025-10-26", "02:00+02:00"),
        ("2025-10-26", "01:00Z", "2025-10-26", "02:00+01:00"),
    ]
    assert [r[-3] for r in rows] == ["7", "153", "12.5"]


def test_a_date_is_oslo_midnight_and_the_range_is_half_open(store_url: str, store: Store) -> None:
    store.upsert_kommune_hourly(
        [vol("3403", DAY_START + timedelta(hours=h), h) for h in range(-1, 26)]
    )
    out = ok(run(store_url, *HOURLY, "--format", "csv"))
    hours = [line.split(",")[4] for line in out.splitlines()[1:]]
    assert len(hours) == 25
    assert (hours[0], hours[-1]) == ("2025-10-25T22:00:00Z", "2025-10-26T22:00:00Z")
    same = ("--from", "2025-10-26T00:00+02:00", "--to", "2025-10-26T23:00Z", "--format", "csv")
    assert ok(run(store_url, "hourly", "--kommune", "3403", *same)) == out


def test_parse_when() -> None:
    assert parse_when("2025-10-26") == datetime(2025, 10, 25, 22, tzinfo=UTC)
    assert parse_when("2025-10-27") == datetime(2025, 10, 26, 23, tzinfo=UTC)
    assert parse_when("2025-10-26T02:00+01:00") == datetime(2025, 10, 26, 1, tzinfo=UTC)
    assert parse_when("2025-10-26T01:00Z") == datetime(2025, 10, 26, 1, tzinfo=UTC)
    assert parse_when("2025-10-26T01:00Z").tzinfo is UTC
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_when("2025-10-26T02:00")
    with pytest.raises(ValueError, match="neither a date"):
        parse_when("yesterday")


def test_a_naive_time_is_refused_in_one_line(store_url: str) -> None:
    result = run(store_url, "hourly", "--from", "2025-10-26T02:00", "--to", "2025-10-27")
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("byflyt: --from: '2025-10-26T02:00' has no UTC offset")
    assert "add one, e.g. 2025-10-26T02:00+01:00 or 2025-10-26T02:00Z" in line


def test_an_empty_or_reversed_range_is_refused(store_url: str) -> None:
    result = run(store_url, "hourly", "--from", "2025-10-27", "--to", "2025-10-26")
    assert result.exit_code == 2
    assert "--from: 2025-10-27 is not before 2025-10-26" in result.stderr


def test_kommune_narrows_the_region_and_must_be_in_it(store_url: str, store: Store) -> None:
    fill_dst_night(store)
    out = ok(run(store_url, *HOURLY, "--kommune", "3407", "--kommune", "3403", "--format", "csv"))
    assert {line.split(",")[0] for line in out.splitlines()[1:]} == {"3403", "3407"}
    outside = run(store_url, *HOURLY, "--kommune", "0301")
    assert outside.exit_code == 2
    assert "0301 is not in region 'mjosbyen'" in outside.stderr
    alone = ok(run(store_url, "hourly", *HOURLY[3:], "--kommune", "301", "--format", "csv"))
    assert [line.split(",")[:2] for line in alone.splitlines()[1:]] == [["0301", "Oslo"]]


def test_the_region_comes_from_settings(store_url: str, store: Store) -> None:
    fill_dst_night(store)
    args = ("hourly", *HOURLY[3:], "--format", "csv")
    mjosbyen = ok(run(store_url, *args, BYFLYT_REGION="mjosbyen"))
    everything = ok(run(store_url, *args))
    assert "0301" not in mjosbyen
    assert "0301" in everything
    unknown = run(store_url, *args, BYFLYT_REGION="atlantis")
    assert unknown.exit_code == 2
    assert "unknown region 'atlantis'" in unknown.stderr


def test_no_rows_gives_just_the_header(store_url: str) -> None:
    assert ok(run(store_url, *HOURLY, "--format", "csv")) == HEADER + "\n"
    assert json.loads(ok(run(store_url, *HOURLY, "--format", "json"))) == []


def test_local_days_have_23_24_and_25_hours() -> None:
    counts = local_day_hours(parse_when("2025-03-29"), parse_when("2025-03-31"))
    assert counts == {date(2025, 3, 29): 24, date(2025, 3, 30): 23}
    counts = local_day_hours(parse_when("2025-10-26"), parse_when("2025-10-28"))
    assert counts == {date(2025, 10, 26): 25, date(2025, 10, 27): 24}


def test_daily_sums_the_25_hour_day(store_url: str, store: Store) -> None:
    day = [vol("3403", DAY_START + timedelta(hours=h), 2) for h in range(25)]
    # 27 October (24 hours) has only 12 hours with a value: coverage 50, not 100.
    next_day = [vol("3403", DAY_START + timedelta(hours=25 + h), 1) for h in range(0, 24, 2)]
    store.upsert_kommune_hourly([*day, *next_day, vol("3407", DAY_START, 5, coverage=50.0)])
    args = ("daily", "--region", "mjosbyen", "--from", "2025-10-26", "--to", "2025-10-28")
    out = ok(run(store_url, *args, "--format", "csv"))
    assert out.splitlines() == [
        DAILY_HEADER,
        "3403,Hamar,bicycle,volume,2025-10-26,50,100,25",
        "3403,Hamar,bicycle,volume,2025-10-27,12,50,12",
        "3407,Gjøvik,bicycle,volume,2025-10-26,5,2,1",
    ]
    records = json.loads(ok(run(store_url, *args, "--format", "json")))
    assert [tuple(r) for r in records] == [tuple(DAILY_HEADER.split(","))] * 3
    table = ok(run(store_url, *args)).splitlines()
    assert "bicycle · volume" in table[0]
    assert table[1].split() == ["kommune_nr", "kommune", "date", "value", "coverage", "hours"]
    assert ["3403", "Hamar", "2025-10-26", "50", "100", "25"] in [line.split() for line in table]
