"""The cycling/transit index: a case worked by hand, the edge cases, and ``byflyt index``.

The hand-worked case (period 2025-10, matched against 2024-10, min_hours 2)
==========================================================================
Point A (Hamar 3403): 2025-10-07 08:00 and 09:00 (Oslo) count 12 and 24; 2024-10-07 the same
    hours count 10 and 20. A 10:00 hour is left out: coverage 90 % in 2025 (volume 500). An 11:00
    hour is left out: coverage 94.9 % in 2024. So B_A = 30, C_A = 36, p_A = +20 %.
Point B (Hamar 3403): base 30 + 20 = 50, current 25 + 20 = 45, p_B = −10 %.
Point C (Lillehammer 3405): base 20 + 0 = 20, current 25 + 0 = 25 (real zeros count),
    p_C = +25 %. Its 2025 hour with no volume (None) is left out.
Point D (Lillehammer 3405): one matched hour only (100 → 1000): excluded, min_hours is 2.

Region (A, B, C):
    ΣB = 100, ΣC = 106                       → P = 100·(106/100 − 1) = 6.00 %
    w = 30/100, 50/100, 20/100 = 0.3, 0.5, 0.2;  Σw² = 0.09 + 0.25 + 0.04 = 0.38
    p − P = 14, −16, 19;  squared 196, 256, 361
    Σ w (p − P)² = 58.8 + 128 + 72.2 = 259
    SD² = 259 / (1 − 0.38) = 417.7419…       → SD = 20.4387
    SE = SD·√0.38 = 20.4387 × 0.616441 = 12.5993
    t(0.975, 2) = 4.3027 (table value)       → half-width 54.2103
    95 % CI = [6 − 54.21, 6 + 54.21] = [−48.21, 60.21]
Hamar alone (A, B):
    ΣB = 80, ΣC = 81                         → P = 1.25 %
    w = 0.375, 0.625;  Σw² = 0.53125;  p − P = 18.75, −11.25
    Σ w (p − P)² = 0.375 × 351.5625 + 0.625 × 126.5625 = 131.8359 + 79.1016 = 210.9375
    SD² = 210.9375 / 0.46875 = 450           → SD = 21.2132
    SE = 21.2132 × √0.53125 = 21.2132 × 0.728869 = 15.4616
    t(0.975, 1) = 12.7062                    → CI = [1.25 − 196.46, 1.25 + 196.46]
                                               = [−195.21, 197.71]
Lillehammer alone (C): n = 1, P = 25 %, no CI.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import Result

from byflyt.clock import OSLO
from byflyt.models.counts import CountObservation, CountPoint
from byflyt.models.volumes import HourlyVolume
from byflyt.queries.index import (
    MIN_COVERAGE,
    Count,
    Period,
    area_index,
    base_hour_key,
    chained_index,
    compute_index,
    hour_key,
    match_hours,
    parse_period,
)
from byflyt.queries.indicators import assemble_index, load_index, matched_points
from byflyt.store import Store
from tests.helpers import invoke, kommune_hour, ok

OCTOBER = parse_period("2025-10")
PP = 0.01  # percentage points: the tolerance


def local(year: int, month: int, day: int, hour: int, fold: int = 0) -> datetime:
    """A UTC hour from its Europe/Oslo wall clock."""
    return datetime(year, month, day, hour, tzinfo=OSLO, fold=fold).astimezone(UTC)


# (point, kommune, local hour on 7 Oct, base volume, base coverage, current volume, current cov.)
HAND_CASE: list[tuple[str, str, int, int | None, float, int | None, float]] = [
    ("A", "3403", 8, 10, 100.0, 12, 100.0),
    ("A", "3403", 9, 20, 100.0, 24, 98.0),
    ("A", "3403", 10, 1, 100.0, 500, 90.0),  # current coverage < 95: out
    ("A", "3403", 11, 400, 94.9, 5, 100.0),  # base coverage < 95: out
    ("B", "3403", 8, 30, 100.0, 25, 100.0),
    ("B", "3403", 9, 20, 95.0, 20, 100.0),  # exactly 95 counts
    ("C", "3405", 8, 20, 100.0, 25, 100.0),
    ("C", "3405", 9, 0, 100.0, 0, 100.0),  # real zeros count
    ("C", "3405", 10, 7, 100.0, None, 0.0),  # no volume: out
    ("D", "3405", 8, 100, 100.0, 1000, 100.0),
]


def hand_counts() -> tuple[list[Count], list[Count]]:
    base = [Count(p, local(2024, 10, 7, h), bv, bc) for p, _, h, bv, bc, _, _ in HAND_CASE]
    current = [Count(p, local(2025, 10, 7, h), cv, cc) for p, _, h, _, _, cv, cc in HAND_CASE]
    return current, base


# -- Student's t -----------------------------------------------------------------------------
# -- the hand-worked case --------------------------------------------------------------------
def test_hand_worked_case_region() -> None:
    current, base = hand_counts()
    area = compute_index(current, base, OCTOBER, min_hours=2)
    by_point = {p.point: p for p in area.points}
    assert sorted(by_point) == ["A", "B", "C"]
    assert (by_point["A"].base, by_point["A"].current, by_point["A"].matched_hours) == (30, 36, 2)
    assert (by_point["B"].base, by_point["B"].current) == (50, 45)
    assert (by_point["C"].base, by_point["C"].current, by_point["C"].matched_hours) == (20, 25, 2)
    assert by_point["A"].index == pytest.approx(20.0, abs=PP)
    assert by_point["B"].index == pytest.approx(-10.0, abs=PP)
    assert by_point["C"].index == pytest.approx(25.0, abs=PP)
    assert area.index == pytest.approx(6.00, abs=PP)
    assert area.weights == pytest.approx({"A": 0.3, "B": 0.5, "C": 0.2})
    assert area.sd == pytest.approx(20.4387, abs=1e-3)
    assert area.se == pytest.approx(12.5993, abs=1e-3)
    assert area.ci_low == pytest.approx(-48.21, abs=PP)
    assert area.ci_high == pytest.approx(60.21, abs=PP)
    assert (area.n, area.matched_hours) == (3, 6)
    assert [(e.point, e.reason, e.matched_hours) for e in area.excluded] == [("D", "few_hours", 1)]


def test_hand_worked_case_per_kommune() -> None:
    current, base = hand_counts()
    matched = match_hours(current, base, OCTOBER)
    hamar = area_index([p for p in matched if p.point in "AB"], min_hours=2)
    assert hamar.index == pytest.approx(1.25, abs=PP)
    assert hamar.sd == pytest.approx(21.2132, abs=1e-3)
    assert hamar.ci_low == pytest.approx(-195.21, abs=PP)
    assert hamar.ci_high == pytest.approx(197.71, abs=PP)
    lillehammer = area_index([p for p in matched if p.point in "CD"], min_hours=2)
    assert lillehammer.n == 1
    assert lillehammer.index == pytest.approx(25.0, abs=PP)
    assert (lillehammer.sd, lillehammer.se, lillehammer.ci_low, lillehammer.ci_high) == (
        None,
        None,
        None,
        None,
    )


# -- edge cases ------------------------------------------------------------------------------
def test_min_hours_and_zero_base_exclude_points() -> None:
    current, base = hand_counts()
    assert compute_index(current, base, OCTOBER, min_hours=1).n == 4  # D takes part
    three = compute_index(current, base, OCTOBER, min_hours=3)
    assert three.index is None
    assert three.n == 0
    assert {e.reason for e in three.excluded} == {"few_hours"}
    zero = compute_index(
        [Count("Z", local(2025, 10, 7, 8), 5, 100.0)],
        [Count("Z", local(2024, 10, 7, 8), 0, 100.0)],
        OCTOBER,
        min_hours=1,
    )
    assert [(e.point, e.reason) for e in zero.excluded] == [("Z", "zero_base")]


def test_points_seen_in_one_year_only_are_reported_with_no_matched_hours() -> None:
    matched = match_hours(
        [Count("new", local(2025, 10, 7, 8), 5, 100.0)],
        [Count("gone", local(2024, 10, 7, 8), 5, 100.0)],
        OCTOBER,
    )
    assert [(p.point, p.matched_hours) for p in matched] == [("gone", 0), ("new", 0)]


def test_hours_outside_the_period_do_not_count() -> None:
    matched = match_hours(
        [Count("A", local(2025, 11, 1, 0), 5, 100.0), Count("A", local(2025, 10, 31, 23), 5, 100)],
        [Count("A", local(2024, 11, 1, 0), 5, 100.0), Count("A", local(2024, 10, 31, 23), 5, 100)],
        OCTOBER,
    )
    assert matched[0].matched_hours == 1


def full_days(first: date, days: int) -> list[datetime]:
    """Every UTC hour of ``days`` Europe/Oslo days from ``first``."""
    start = datetime(first.year, first.month, first.day, tzinfo=OSLO).astimezone(UTC)
    end_day = first + timedelta(days=days)
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=OSLO).astimezone(UTC)
    return [start + timedelta(hours=i) for i in range(int((end - start).total_seconds()) // 3600)]


def matched_per_day(current: list[datetime], base: list[datetime], period: Period) -> dict:
    matched = match_hours(
        [Count(f"{h.astimezone(OSLO).date()}", h, 1, 100.0) for h in current],
        [Count(str((base_hour_key(h) or ("unpaired",))[0]), h, 1, 100.0) for h in base],
        period,
    )
    return {p.point: p.matched_hours for p in matched}


def test_autumn_change_pairs_the_first_0200_and_leaves_the_repeat_alone() -> None:
    # 2025-10-26 has 25 hours; 2024-10-26 has 24. 2025-10-27 has 24; 2024-10-27 has 25.
    current = full_days(date(2025, 10, 26), 2)
    base = full_days(date(2024, 10, 26), 2)
    assert (len(current), len(base)) == (49, 49)
    assert matched_per_day(current, base, OCTOBER) == {"2025-10-26": 24, "2025-10-27": 24}
    first, repeat = local(2025, 10, 26, 2), local(2025, 10, 26, 2, fold=1)
    assert repeat - first == timedelta(hours=1)
    assert hour_key(first) == (date(2025, 10, 26), 2, 0)
    assert hour_key(repeat) == (date(2025, 10, 26), 2, 1)
    assert base_hour_key(local(2024, 10, 26, 2)) == hour_key(first)


def test_spring_change_leaves_the_missing_hour_unmatched_on_both_sides() -> None:
    # 2025-03-30 has 23 hours, 2024-03-31 has 23: the other year's 02:00 has no partner.
    current = full_days(date(2025, 3, 30), 2)
    base = full_days(date(2024, 3, 30), 2)
    assert (len(current), len(base)) == (47, 47)
    period = parse_period("2025-03")
    assert matched_per_day(current, base, period) == {"2025-03-30": 23, "2025-03-31": 23}


def test_leap_day_has_no_partner() -> None:
    base = full_days(date(2024, 2, 28), 3)  # 28 Feb, 29 Feb, 1 Mar 2024
    current = full_days(date(2025, 2, 28), 2)  # 28 Feb, 1 Mar 2025
    period = Period("x", date(2025, 2, 1), date(2025, 4, 1))
    assert base_hour_key(local(2024, 2, 29, 12)) is None
    assert matched_per_day(current, base, period) == {
        "2025-02-28": 24,
        "2025-03-01": 24,
        "unpaired": 0,
    }
    ytd = parse_period("ytd:2024-03-01")
    assert (ytd.start, ytd.end) == (date(2024, 1, 1), date(2024, 3, 2))
    # Current-year 2024-02-29 finds no 2023-02-29.
    leap = match_hours(
        [Count("A", h, 1, 100.0) for h in full_days(date(2024, 2, 28), 2)],
        [Count("A", h, 1, 100.0) for h in full_days(date(2023, 2, 28), 2)],
        ytd,
    )
    assert leap[0].matched_hours == 24
    assert ytd.base_bounds()[1] == local(2023, 3, 2, 0)


def test_parse_period() -> None:
    assert parse_period("2025-10") == Period("2025-10", date(2025, 10, 1), date(2025, 11, 1))
    assert parse_period("2025-12").end == date(2026, 1, 1)
    assert parse_period("2025") == Period("2025", date(2025, 1, 1), date(2026, 1, 1))
    ytd = parse_period("ytd", today=date(2025, 10, 16))
    assert (ytd.start, ytd.end) == (date(2025, 1, 1), date(2025, 10, 16))
    assert OCTOBER.bounds() == (local(2025, 10, 1, 0), local(2025, 11, 1, 0))
    assert OCTOBER.base_bounds() == (local(2024, 10, 1, 0), local(2024, 11, 1, 0))
    assert OCTOBER.describe() == "2025-10-01..2025-10-31 vs 2024-10-01..2024-10-31"
    for bad in ("2025-13", "october", "2025-10-01", "ytd:2025-02-30"):
        with pytest.raises(ValueError, match=r"2025|period|date|month"):
            parse_period(bad)
    with pytest.raises(ValueError, match="empty"):
        parse_period("ytd", today=date(2025, 1, 1))


def test_chained_index() -> None:
    assert chained_index([10.0, -5.0, 20.0]) == pytest.approx(25.4)  # 1.1·0.95·1.2 − 1
    assert chained_index([]) == 0.0


# -- through the store and the CLI -----------------------------------------------------------
def fill_hand_case(store: Store) -> None:
    ids = {"A": "10795B1743428", "B": "29403B1743560", "C": "40178B2102711", "D": "52231B2102960"}
    kommuner = {p: k for p, k, *_ in HAND_CASE}
    store.upsert_points(
        CountPoint(source="trafikkdata", point_id=ids[p], name=f"Point {p}", kommune_nr=k)
        for p, k in kommuner.items()
    )
    observations = []
    for p, k, h, bv, bc, cv, cc in HAND_CASE:
        for start, volume, coverage in (
            (local(2024, 10, 7, h), bv, bc),
            (local(2025, 10, 7, h), cv, cc),
        ):
            observations.append(
                CountObservation(
                    source="trafikkdata",
                    point_id=ids[p],
                    kommune_nr=k,
                    start=start,
                    end=start + timedelta(hours=1),
                    volume=volume,
                    coverage=coverage,
                )
            )
    # A point outside the region (Oslo) must not enter the region's index.
    for year, volume in ((2024, 1), (2025, 1000)):
        start = local(year, 10, 7, 8)
        observations.append(
            CountObservation(
                source="trafikkdata",
                point_id="95016B1049317",
                kommune_nr="0301",
                start=start,
                end=start + timedelta(hours=1),
                volume=volume,
                coverage=100.0,
            )
        )
    store.upsert_point_hourly(observations)


@pytest.fixture
def filled(store_url: str) -> str:
    with Store(store_url) as store:
        fill_hand_case(store)
    return store_url


def run(store_url: str, *args: str) -> Result:
    return invoke(store_url, "index", *args)


HAND_ARGS = ("--region", "mjosbyen", "--mode", "bicycle", "--period", "2025-10", "--min-hours", "2")


def check_hand_json(answer: dict) -> None:
    area = answer["area"]
    assert area["index_pct"] == pytest.approx(6.00, abs=PP)
    assert area["ci_low"] == pytest.approx(-48.21, abs=PP)
    assert area["ci_high"] == pytest.approx(60.21, abs=PP)
    assert (area["n_points"], area["matched_hours"], area["base"], area["current"]) == (
        3,
        6,
        100,
        106,
    )
    points = {p["id"]: p for p in answer["points"]}
    assert points["trafikkdata:10795B1743428"]["index_pct"] == pytest.approx(20.0, abs=PP)
    assert points["trafikkdata:10795B1743428"]["weight"] == pytest.approx(0.3)
    assert points["trafikkdata:52231B2102960"]["status"] == "few_hours"
    assert "trafikkdata:95016B1049317" not in points
    assert answer["t"] == pytest.approx(4.3027, abs=1e-4)


def test_cli_json_reproduces_the_hand_case(filled: str) -> None:
    check_hand_json(json.loads(ok(run(filled, *HAND_ARGS, "--format", "json"))))


def test_cli_kommune_csv_and_table(filled: str) -> None:
    out = ok(run(filled, *HAND_ARGS, "--kommune", "3403", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["level"] == "area"
    assert float(rows[0]["index_pct"]) == pytest.approx(1.25, abs=PP)
    assert float(rows[0]["ci_low"]) == pytest.approx(-195.21, abs=PP)
    assert [r["kommune_nr"] for r in rows[1:]] == ["3403", "3403"]
    table = ok(run(filled, *HAND_ARGS, "--kommune", "3405"))
    assert "+25.00 %" in table
    assert "– (n < 2)" in table
    assert "excluded: fewer matched hours" in table


@pytest.mark.postgres
def test_cli_on_postgresql(pg_store_url: str) -> None:
    with Store(pg_store_url) as store:
        fill_hand_case(store)
    check_hand_json(json.loads(ok(run(pg_store_url, *HAND_ARGS, "--format", "json"))))


def test_cli_transit_departures(store_url: str) -> None:
    def dep(kommune: str, hour: datetime, value: float, coverage: float = 100.0) -> HourlyVolume:
        return kommune_hour(
            kommune, hour, value, mode="bus", metric="departures", coverage=coverage
        )

    with Store(store_url) as store:
        store.write_transit(
            [
                dep("3403", local(2024, 10, 7, 8), 40),
                dep("3403", local(2025, 10, 7, 8), 50),
                dep("3407", local(2024, 10, 7, 8), 60),
                dep("3407", local(2025, 10, 7, 8), 60),
                dep("3407", local(2025, 10, 7, 9), 99),  # no base hour
                dep("3405", local(2024, 10, 7, 8), 10, coverage=80.0),
                dep("3405", local(2025, 10, 7, 8), 10),
            ],
            [],
        )
    args = ("--region", "mjosbyen", "--mode", "bus", "--period", "2025-10", "--min-hours", "1")
    answer = json.loads(ok(run(store_url, *args, "--format", "json")))
    # ΣB = 100, ΣC = 110: +10 %; p = +25 % (w 0.4) and 0 % (w 0.6).
    assert answer["area"]["index_pct"] == pytest.approx(10.0, abs=PP)
    assert answer["area"]["n_points"] == 2
    statuses = {p["id"]: p["status"] for p in answer["points"]}
    assert statuses == {"3403": "included", "3405": "few_hours", "3407": "included"}


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--region", "mjosbyen", "--period", "2025-13"), "--period"),
        (("--region", "mjosbyen", "--period", "oct"), "--period"),
        (("--region", "atlantis", "--period", "2025-10"), "--region"),
        (("--period", "2025-10"), "--region"),
        (("--region", "mjosbyen", "--period", "2025-10", "--mode", "horse"), "--mode"),
        (("--region", "mjosbyen", "--period", "2025-10", "--kommune", "0301"), "--kommune"),
        (("--region", "mjosbyen", "--period", "2025-10", "--kommune", "12"), "--kommune"),
        (("--region", "mjosbyen", "--period", "2025-10", "--min-hours", "0"), "--min-hours"),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_flag(
    store_url: str, args: tuple[str, ...], flag: str
) -> None:
    result = run(store_url, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]


def test_an_index_assembled_from_each_kommunes_points_equals_the_whole(filled: str) -> None:
    """``byflyt serve`` reuses each kommune's matched points; together they are the region's."""
    chosen = sorted({k for _, k, *_ in HAND_CASE})
    with Store(filled) as store:
        whole = load_index(store, mode="bicycle", kommuner=chosen, period=OCTOBER, min_hours=1)
        parts = [
            matched_points(store, mode="bicycle", kommuner=[nr], period=OCTOBER) for nr in chosen
        ]
        assembled = assemble_index(
            store,
            mode="bicycle",
            kommuner=chosen,
            period=OCTOBER,
            min_hours=1,
            min_coverage=MIN_COVERAGE,
            parts=parts,
        )
    assert whole.area.n >= 2
    assert assembled == whole
