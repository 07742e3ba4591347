"""``byflyt outages``: region and open filters, Europe/Oslo times, durations, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner, Result

from byflyt.cli import app
from byflyt.cli.outages import OUTAGE_FIELDS, human
from byflyt.store import Store
from tests.helpers import invoke, ok

# 2025-10-26 01:00Z is the second 02:00 local (the autumn change).
START = datetime(2025, 10, 26, 1, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as opened:
        opened.upsert_outage("trafikkdata", "P1", "silent", START, None, "3403", "no data")
        opened.upsert_outage(
            "trafikkdata", "P2", "flat", START - timedelta(hours=30), START, "0301", "volume 4"
        )
        opened.upsert_outage("gtfs-rt:inn", "trip_updates", "empty", START, None, None, "0 of 90")
        yield opened


def run(store_url: str, *args: str) -> Result:
    result = invoke(store_url, "outages", *args)
    ok(result)
    return result


def test_table_shows_oslo_times_and_durations(store: Store, store_url: str) -> None:
    out = run(store_url).stdout
    assert "2025-10-26 02:00+01:00" in out  # the second 02:00, told apart by its offset
    assert "2025-10-24 21:00+02:00" in out
    assert "1 d 6 h" in out
    assert "so far" in out
    assert "3403 Hamar" in out


def test_open_and_region_filters(store: Store, store_url: str) -> None:
    rows = json.loads(run(store_url, "--open", "--format", "json").stdout)
    assert [(r["point_id"], r["kind"], r["open"]) for r in rows] == [
        ("trip_updates", "empty", True),
        ("P1", "silent", True),
    ]
    # A region keeps its own counters (P2 is in Oslo) and every feed (a feed has no kommune),
    # as the API, the live page and the report do.
    rows = json.loads(run(store_url, "--region", "mjosbyen", "--format", "json").stdout)
    assert [r["point_id"] for r in rows] == ["trip_updates", "P1"]


def test_csv_has_the_contract_columns_in_utc(store: Store, store_url: str) -> None:
    rows = list(csv.DictReader(io.StringIO(run(store_url, "--format", "csv").stdout)))
    assert tuple(rows[0]) == OUTAGE_FIELDS
    flat = next(r for r in rows if r["kind"] == "flat")
    assert (flat["started"], flat["ended"], flat["duration_seconds"]) == (
        "2025-10-24T19:00:00Z",
        "2025-10-26T01:00:00Z",
        str(30 * 3600),
    )


def test_an_unknown_region_fails_with_one_line(store: Store, store_url: str) -> None:
    result = CliRunner().invoke(
        app, ["outages", "--region", "atlantis"], env={"BYFLYT_STORE_URL": store_url}
    )
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(minutes=12), "12 min"),
        (timedelta(hours=5), "5 h"),
        (timedelta(hours=5, minutes=20), "5 h 20 min"),
        (timedelta(days=2, hours=3), "2 d 3 h"),
    ],
)
def test_human_durations(span: timedelta, text: str) -> None:
    assert human(span) == text
