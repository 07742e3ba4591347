"""The cycling issue's acceptance run, end to end through the real commands.

A local server serves a synthetic Mjøsbyen week in Trafikkdata's exact GraphQL shapes (the
autumn clock change, paging, null volumes, a vehicle point, an out-of-region point, a point
silent for a day); a second serving corrects some hours. ingest v1 → drain → ingest v2 → drain,
then ``byflyt query hourly --format csv`` must equal the table computed here, independently,
from the dataset by the rules — on SQLite and on PostgreSQL, and re-running changes nothing.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byflyt.models.kommuner import get_region, kommune_name
from byflyt.samples.trafikkdata import TrafikkdataDataset, mjosbyen_week
from byflyt.samples.trafikkdata_server import TrafikkdataServer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
FROM, TO = "2025-10-22", "2025-10-29"
HEADER = "kommune_nr,kommune,mode,metric,hour_start,value,coverage,n_sources"


def expected_csv_rows(dataset: TrafikkdataDataset) -> list[tuple[object, ...]]:
    """The rules, applied to the dataset (the last serving), hour by hour."""
    region = get_region("mjosbyen")
    window_start = datetime(2025, 10, 21, 22, tzinfo=UTC)  # 2025-10-22 00:00 Europe/Oslo
    window_end = datetime(2025, 10, 28, 23, tzinfo=UTC)  # 2025-10-29 00:00 Europe/Oslo
    cells: dict[tuple[str, datetime], list[tuple[int | None, float]]] = defaultdict(list)
    for point in dataset.points:
        kommune = f"{point.municipality_number:04d}"
        if point.traffic_type != "BICYCLE" or kommune not in region.kommuner:
            continue
        hour = max(window_start, point.first_data.astimezone(UTC))
        last = min(window_end - timedelta(hours=1), point.latest_data.astimezone(UTC))
        while hour <= last:
            value = dataset.hours.get(point.id, {}).get(hour)
            cells[(kommune, hour)].append(
                (value.volume, value.coverage) if value is not None else (None, 0.0)
            )
            hour += timedelta(hours=1)
    rows = []
    for (kommune, hour), members in sorted(cells.items()):
        volumes = [v for v, _ in members if v is not None]
        if not volumes:
            continue
        coverage = round(sum(c for _, c in members) / len(members), 2)
        rows.append(
            (
                kommune,
                kommune_name(kommune),
                "bicycle",
                "volume",
                hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
                float(sum(volumes)),
                coverage,
                len(volumes),
            )
        )
    return rows


def byflyt(env: dict[str, str], *args: str, timeout: float = 150) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "byflyt", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"byflyt {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done.stdout


def parse(csv_text: str) -> list[tuple[object, ...]]:
    reader = csv.reader(io.StringIO(csv_text))
    header = next(reader)
    assert ",".join(header) == HEADER
    return [
        (k, name, mode, metric, hour, float(value), float(coverage), int(n))
        for k, name, mode, metric, hour, value, coverage, n in reader
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, worker_env: dict[str, str]) -> dict[str, str]:
    if request.param == "postgresql":
        worker_env = dict(worker_env)
        worker_env["BYFLYT_STORE_URL"] = request.getfixturevalue("pg_store_url")
    return worker_env


def test_week_with_corrections_equals_the_rules(env: dict[str, str]) -> None:
    v1, v2 = mjosbyen_week(1), mjosbyen_week(2)
    assert v2.corrected
    query = [
        "query",
        "hourly",
        "--region",
        "mjosbyen",
        "--mode",
        "bicycle",
        "--metric",
        "volume",
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "csv",
    ]
    with TrafikkdataServer(v1) as server:
        ingest = [
            "ingest",
            "trafikkdata",
            "--region",
            "mjosbyen",
            "--endpoint",
            server.url,
            "--from",
            FROM,
            "--to",
            TO,
        ]
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        after_v1 = parse(byflyt(env, *query))
        assert after_v1 == expected_csv_rows(v1)

        server.set_dataset(v2)
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        first = byflyt(env, *query)
        assert parse(first) == expected_csv_rows(v2)

        # Re-running either step changes nothing.
        byflyt(env, *ingest)
        byflyt(env, "worker", "--drain")
        assert byflyt(env, *query) == first
        byflyt(env, "worker", "--drain")
        assert byflyt(env, *query) == first

    rows = parse(first)
    hours = {r[4] for r in rows}
    assert {"2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z"} <= hours  # both 02:00 local hours
    kommuner = {r[0] for r in rows}
    assert "3401" not in kommuner  # out of region
    assert "0301" not in kommuner
    assert {"3403", "3405", "3407"} <= kommuner
