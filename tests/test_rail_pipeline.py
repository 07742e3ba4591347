"""Mjøsbyen's trains end to end: INN's buses and Bane NOR's trains, ingested → drained → table.

The synthetic national slice (samples/national.py) is loaded as feed ``bnr``, the feed
``--dataset BNR`` finds by default; the synthetic INN feed as ``inn``. Both SIRI ET days are
replayed through ``byflyt ingest siri-et`` into the real broker and the worker drains them into
the store. The expected table is computed here from the XML the replay holds, with the rules of
``tests/test_siri_pipeline.py`` and one more, written out independently of byflyt's resolver:

- a Bane NOR journey ``N:YYYY-MM-DD`` is the rail trip (route_type 100–117) of the national
  zip's ``trips.txt`` whose ``trip_short_name`` is N and whose service runs on that date in
  ``calendar_dates.txt``; a ref with no such trip contributes nothing (it is dead-lettered).

Two feeds serve some kommune-hours (INN's made-up R10 and the national trains are both rail),
so a cell's coverage counts the static calls of every feed with a fact in that cell.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from byflyt.kafka import create_topics
from byflyt.models.envelope import Rejected
from byflyt.models.gtfs import StaticFeed, feed_dir
from byflyt.samples.gtfs import write_synthetic_gtfs
from byflyt.samples.national import bnr_day, write_national_gtfs
from byflyt.samples.siri import synthetic_day, write_replay
from byflyt.settings import Settings
from tests.helpers import analyst_answers, byflyt, drain, stored
from tests.kafka_util import read_all
from tests.siri_expect import NS, aggregate, scheduled_calls, siri_calls

pytestmark = pytest.mark.kafka
Cell = tuple[str, str, datetime]


def train_resolver(national_zip: Path) -> Any:
    """Train number and date → rail trip, straight from the zip's CSV files."""
    with zipfile.ZipFile(national_zip) as archive:

        def rows(name: str) -> list[dict[str, str]]:
            return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))

        rail = {r["route_id"] for r in rows("routes.txt") if 100 <= int(r["route_type"]) <= 117}
        runs: dict[str, set[str]] = defaultdict(set)
        for row in rows("calendar_dates.txt"):
            if row["exception_type"] == "1":
                runs[row["service_id"]].add(row["date"])
        trips = {
            (row["trip_short_name"], day): row["trip_id"]
            for row in rows("trips.txt")
            if row["route_id"] in rail and row["trip_short_name"]
            for day in runs[row["service_id"]]
        }

    def resolve(journey: Any) -> tuple[str, date] | None:
        number, _, when = (journey.findtext(f".//{NS}DatedVehicleJourneyRef") or "").partition(":")
        trip = trips.get((number, when.replace("-", "")))
        return None if trip is None else (trip, date.fromisoformat(when))

    return resolve


def _hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def test_trains_and_buses_of_mjosbyen_equal_the_independent_table(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    create_topics(settings)
    inn_zip = write_synthetic_gtfs(tmp_path / "inn.zip")
    national_zip = write_national_gtfs(tmp_path / "national.zip")
    byflyt(worker_env, "gtfs", "load", "--feed", "inn", "--zip", str(inn_zip))
    load = ["gtfs", "load", "--feed", "bnr", "--zip", str(national_zip), "--region", "mjosbyen"]
    byflyt(worker_env, *load)
    inn, bnr = (StaticFeed.load(feed_dir(settings, f)) for f in ("inn", "bnr"))
    inn_day, rail_day = synthetic_day(inn_zip), bnr_day(national_zip)
    write_replay(tmp_path / "inn-et", inn_day)
    write_replay(tmp_path / "bnr-et", rail_day)
    ingest = ["ingest", "siri-et", "--replay"]
    done = byflyt(worker_env, *ingest, str(tmp_path / "inn-et"), "--dataset", "INN")
    assert " 0 rejected," in done.stdout, done.stdout
    # No --feed: the static feed named like the dataset (bnr) places the trains.
    done = byflyt(worker_env, *ingest, str(tmp_path / "bnr-et"), "--dataset", "BNR")
    assert " 0 trip states" not in done.stdout, done.stdout
    dead = [Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected"))]
    rules = {(r.source, r.context.get("rule"), r.context.get("journey")) for r in dead}
    assert rules == {
        ("siri:BNR", "unknown_train", "9931:2025-10-27"),
        ("siri:BNR", "train_not_running", "3615:2025-10-27"),
    }
    drain(worker_env)

    # The independent table: both feeds' final calls, coverage over the feeds in each cell.
    finals, reported = siri_calls(inn, inn_day)
    rail_finals, rail_reported = siri_calls(bnr, rail_day, train_resolver(national_zip))
    assert not set(finals) & set(rail_finals)
    feed_of = {k: "inn" for k in finals} | {k: "bnr" for k in rail_finals}
    finals |= rail_finals
    feeds: dict[Cell, set[str]] = defaultdict(set)
    for source, name in ((reported, "inn"), (rail_reported, "bnr")):
        for cell in source:
            feeds[cell].add(name)
    for cell, ids in rail_reported.items():
        reported[cell] |= ids
    served: dict[tuple[date, str], list[tuple[int, Any]]] = defaultdict(list)
    for key, (status, _, at, kommune, mode) in finals.items():
        if kommune is not None:
            feeds[(kommune, mode, _hour(at))].add(feed_of[key])
        if status == "served":
            served[key[:2]].append((key[2], (at, kommune, mode, feed_of[key])))
    for calls in served.values():
        placed = sorted((c for c in calls if c[1][1] is not None), key=lambda c: c[0])
        for (_, (at, a, mode, feed)), (_, (_, b, _, _)) in pairwise(placed):
            if a != b:
                feeds[(a, mode, _hour(at))].add(feed)
                feeds[(b, mode, _hour(at))].add(feed)
    per_feed = {"inn": scheduled_calls(inn), "bnr": scheduled_calls(bnr)}

    def scheduled(cell: Cell) -> int:
        return sum(per_feed[f].get(cell, 0) for f in feeds[cell])

    hourly, flows = aggregate(scheduled, finals, reported, {})
    got_hourly, got_flows = stored(settings)
    assert got_flows == flows
    assert set(got_hourly) ^ set(hourly) == set()
    assert got_hourly == hourly

    # Rail beside bus, as an analyst asks: departures by mode, trains in and out of Mjøsbyen.
    _, got_flows_region = analyst_answers(worker_env, hourly, flows, "rail")
    trains = {k for k, f in finals.items() if feed_of[k] == "bnr" and f[0] == "served"}
    assert {f[3] for k, f in finals.items() if k in trains} >= {"3403", "3405", "3407", "3413"}
    assert got_flows_region[("outside", "region", "rail")] > 0  # trains into Mjøsbyen …
    assert got_flows_region[("region", "outside", "rail")] > 0  # … and out of it
    assert got_flows_region[("region", "outside", "bus")] > 0
