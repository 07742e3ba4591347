"""The transit agents: trip states → final stop calls once → hourly metrics, flows, coverage."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from faust.serializers import codecs

from byflyt.kafka import create_topics
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, feed_dir, load_gtfs
from byflyt.models.transit import CallState, StopCall, TransitFact, TripState
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.streams.transit import RecordCodec, hour_metrics
from byflyt.streams.transit_calls import TripDeriver, final_calls
from byflyt.streams.transit_state import CallFact, FinalCall, decode_cell, decode_trip
from samples.gtfs import SYNTHETIC_TRIPS, write_synthetic_gtfs
from tests.helpers import drain
from tests.kafka_util import produce, read_all

T0 = datetime(2025, 10, 27, 7, tzinfo=UTC)
BYFLYT = (sys.executable, "-m", "byflyt")
DAY = ("--from", "2025-10-27", "--to", "2025-10-28")


def call(seq: int, minutes: int, kommune: str | None, delay: int | None = 0) -> CallState:
    scheduled = T0 + timedelta(minutes=minutes)
    actual = scheduled + timedelta(seconds=delay) if delay is not None else None
    return CallState(
        stop_sequence=seq,
        stop_id=f"NSR:Quay:{seq}",
        kommune_nr=kommune,
        scheduled=scheduled,
        delay_seconds=delay,
        actual=actual,
    )


def trip(at: datetime, calls: list[CallState], status: str = "scheduled") -> TripState:
    return TripState(
        feed="inn",
        snapshot_at=at,
        service_date=date(2025, 10, 27),
        trip_id="T",
        route_id="R",
        mode="bus",
        status=status,  # type: ignore[arg-type]
        calls=calls,
    )


def test_calls_become_final_once_by_the_rules() -> None:
    calls = [call(0, 0, "3407"), call(1, 20, "3443", delay=240), call(2, 50, "3446")]
    # At 07:10 only the first departure lies in the past.
    first = final_calls(trip(T0 + timedelta(minutes=10), calls), {})
    assert [(c.stop_sequence, s) for c, s, _ in first] == [(0, "served")]
    # Already final calls are not repeated; 07:20 + 4 min delay is not yet past at 07:22.
    done = {"0": FinalCall("served", "3407", None)}
    assert final_calls(trip(T0 + timedelta(minutes=22), calls), done) == []
    # A trip that vanishes after its last call's time was finished: the rest were served.
    vanished = final_calls(trip(T0 + timedelta(minutes=55), calls, "vanished"), done)
    assert [(c.stop_sequence, s) for c, s, _ in vanished] == [(1, "served"), (2, "served")]
    # One that vanishes before it: its open calls never count.
    assert final_calls(trip(T0 + timedelta(minutes=30), calls, "vanished"), done) == []
    # Cancelled trips cancel every call; skipped stops are skipped, not served.
    cancelled = final_calls(trip(T0, calls, "cancelled"), {})
    assert {s for _, s, _ in cancelled} == {"cancelled"}
    skipped = [calls[0], calls[1].model_copy(update={"realtime": "skipped"}), calls[2]]
    result = final_calls(trip(T0 + timedelta(minutes=25), skipped), {})
    assert [(c.stop_sequence, s) for c, s, _ in result] == [(0, "served"), (1, "skipped")]


def test_hour_metrics_keep_means_recomputable() -> None:
    # A cell as the transit-hours changelog holds it (see streams/transit_state.py).
    cell = {
        "c": {
            "a": ["served", 30, "T1"],
            "b": ["served", 200, "T1"],
            "c": ["served", None, "T2"],
            "d": ["cancelled", None, "T3"],
        },
        "o": {"x": "3446"},
        "v": {"V1": None, "V2": "FEW_SEATS_AVAILABLE"},
    }
    metrics = hour_metrics(decode_cell(codecs.dumps("json", cell)))
    assert metrics["departures"] == (3, 3)
    assert metrics["cancelled_calls"] == (1, 3)
    assert metrics["trips"] == (2, 3)
    assert metrics["delay_seconds_sum"] == (230.0, 3)
    assert metrics["delay_count"] == (2, 3)
    assert metrics["on_time_calls"] == (1, 3)
    assert metrics["trips_out"] == (1, 1)
    assert metrics["vehicles_active"] == (2, 2)
    assert "trips_in" not in metrics


def test_table_values_an_older_worker_wrote_read_and_write_back_unchanged() -> None:
    # The first version's shapes, letter for letter, as faust's json codec wrote them.
    older_cell = {
        "c": {"inn:2025-10-27:T1:3": ["served", 42, "T1"]},
        "r": {"inn:2025-10-27:T1:3": 1, "inn:2025-10-27:T1:4": 1},
        "o": {"inn:2025-10-27:T1:3>4": "3403"},
        "i": {"inn:2025-10-27:T2:1>2": "3405"},
        "v": {"V1": None},
        "f": {"inn": 1},
    }
    older_trip = {"date": "2025-10-27", "done": {"0": ["served", "3407", "2025-10-27T07:01:00Z"]}}
    cell_codec, trip_codec = RecordCodec(decode_cell), RecordCodec(decode_trip)
    cell = cell_codec.loads(codecs.dumps("json", older_cell))
    assert cell.calls == {"inn:2025-10-27:T1:3": CallFact("served", 42, "T1")}
    assert (cell.trips_out, cell.trips_in) == (
        {"inn:2025-10-27:T1:3>4": "3403"},
        {"inn:2025-10-27:T2:1>2": "3405"},
    )
    state = trip_codec.loads(codecs.dumps("json", older_trip))
    assert state.service_date == date(2025, 10, 27)
    assert state.done["0"] == FinalCall("served", "3407", "2025-10-27T07:01:00Z")
    # A rolling upgrade: an older worker restores with the json codec what this one wrote.
    assert codecs.loads("json", cell_codec.dumps(cell)) == older_cell
    assert codecs.loads("json", trip_codec.dumps(state)) == older_trip
    only_feeds = cell_codec.loads(b'{"f": {"inn": 1}}')
    assert codecs.loads("json", cell_codec.dumps(only_feeds)) == {"f": {"inn": 1}}


def test_a_deriver_restored_from_an_older_changelog_goes_on_where_it_was() -> None:
    calls = [call(0, 0, "3407"), call(1, 20, "3443"), call(2, 50, "3446")]
    first = trip(T0 + timedelta(minutes=10), calls)
    older = {"date": "2025-10-27", "done": {"0": ["served", "3407", "2025-10-27T07:00:00Z"]}}
    table = {first.key: RecordCodec(decode_trip).loads(codecs.dumps("json", older))}
    deriver = TripDeriver(table=table)
    stop_calls, facts = deriver.apply(trip(T0 + timedelta(minutes=55), calls, "vanished"))
    assert [c.stop_sequence for c in stop_calls] == [1, 2]
    assert {(f.kind, f.kommune_nr, f.other_kommune) for f in facts if f.kind in ("out", "in")} == {
        ("out", "3407", "3443"),
        ("in", "3443", "3407"),
        ("out", "3443", "3446"),
        ("in", "3446", "3443"),
    }
    written = RecordCodec(decode_trip).dumps(table[first.key])
    assert codecs.loads("json", written)["done"]["2"] == [
        "served",
        "3446",
        "2025-10-27T07:50:00Z",
    ]


@pytest.fixture
def static_feed(settings: Settings, tmp_path: Path) -> StaticFeed:
    locator = KommuneLocator.from_settings(settings)
    static = load_gtfs(
        write_synthetic_gtfs(tmp_path / "inn.zip"), feed="inn", region=None, locator=locator
    )
    static.save(feed_dir(settings, "inn"))
    return static


def states_of(static: StaticFeed, trip_id: str, day: date, at: datetime) -> TripState:
    """The trip on ``day`` as a snapshot at ``at`` would describe it: 60 s late everywhere."""
    rows = static.trip_calls(trip_id, day)
    calls = []
    for row in rows.itertuples():
        when = row.scheduled_departure if not _nat(row.scheduled_departure) else None
        scheduled = (when or row.scheduled_arrival).to_pydatetime()
        calls.append(
            CallState(
                stop_sequence=int(row.stop_sequence),
                stop_id=row.stop_id,
                kommune_nr=None if _nat(row.kommune_nr) else row.kommune_nr,
                scheduled=scheduled,
                delay_seconds=60,
                actual=scheduled + timedelta(seconds=60),
            )
        )
    return TripState(
        feed="inn",
        snapshot_at=at,
        service_date=day,
        trip_id=trip_id,
        route_id=str(rows["route_id"].iloc[0]),
        mode=str(rows["mode"].iloc[0]),  # type: ignore[arg-type]
        calls=calls,
    )


def _nat(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


@pytest.mark.kafka
def test_trip_states_give_calls_metrics_and_flows(
    settings: Settings, worker_env: dict[str, str], static_feed: StaticFeed
) -> None:
    create_topics(settings)
    day = date(2025, 10, 27)
    trip_id = SYNTHETIC_TRIPS["crossing"]
    base = states_of(static_feed, trip_id, day, T0)
    last = base.calls[-1].actual
    assert last is not None
    mid = base.calls[len(base.calls) // 2].actual
    assert mid is not None
    snapshots = [
        base.model_copy(update={"snapshot_at": mid + timedelta(seconds=1)}),
        base.model_copy(update={"snapshot_at": mid + timedelta(seconds=1)}),  # repeated
        base.model_copy(update={"snapshot_at": last + timedelta(minutes=2), "status": "vanished"}),
    ]
    topic = settings.topic("transit.trip-updates")
    produce(settings, topic, [(s.key.encode(), s.to_bytes()) for s in snapshots])
    drain(worker_env)
    produce(settings, topic, [(s.key.encode(), s.to_bytes()) for s in snapshots])  # replay
    drain(worker_env)

    calls = [
        StopCall.from_bytes(v) for _, v in read_all(settings, settings.topic("transit.stop-calls"))
    ]
    assert sorted(c.stop_sequence for c in calls) == [c.stop_sequence for c in base.calls]
    assert {c.status for c in calls} == {"served"}

    store = Store(settings.database_url)
    try:
        rows = store.query_hourly(mode=base.mode)
        flows = store.query_flows()
    finally:
        store.close()
    by_metric: dict[tuple[str, str], float] = {}
    for row in rows:
        key = (row.kommune_nr, row.metric)
        by_metric[key] = by_metric.get(key, 0) + row.value
    placed = [c for c in base.calls if c.kommune_nr is not None]
    for kommune in {c.kommune_nr for c in placed}:
        n = sum(1 for c in placed if c.kommune_nr == kommune)
        assert by_metric[(kommune, "departures")] == n
        assert by_metric[(kommune, "delay_count")] == n
        assert by_metric[(kommune, "delay_seconds_sum")] == 60 * n
        assert by_metric[(kommune, "on_time_calls")] == n
    crossings = [
        (a.kommune_nr, b.kommune_nr)
        for a, b in itertools.pairwise(placed)
        if a.kommune_nr != b.kommune_nr
    ]
    assert crossings, "the crossing trip must cross a kommune border"
    assert sorted((f.from_kommune, f.to_kommune) for f in flows for _ in range(f.trips)) == sorted(
        crossings
    )
    for a, b in crossings:
        assert by_metric[(a, "trips_out")] >= 1
        assert by_metric[(b, "trips_in")] >= 1
    # The feed reported on the whole trip and only it: coverage is that trip's share.
    assert all(0 < row.coverage <= 100 for row in rows)

    # The region's in and out: the trip leaves Mjøsbyen for Gran (3446) once.
    out = subprocess.run(
        [
            *BYFLYT,
            "query",
            "flows",
            "--region",
            "mjosbyen",
            "--level",
            "region",
            *DAY,
            "--format",
            "csv",
        ],
        env=worker_env,
        capture_output=True,
        text=True,
        check=True,
    )
    records = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["from"], r["to"], r["vehicle_trips"]) for r in records] == [
        ("region", "outside", "1")
    ]
    table = subprocess.run(
        [*BYFLYT, "query", "flows", *DAY],
        env=worker_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "not passengers" in table
    assert "Gran" in table


@pytest.mark.kafka
def test_a_kommune_hour_beyond_a_megabyte_of_facts_is_kept_and_restored(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    """A busy kommune-hour's cell outgrows Kafka's default 1 MB record: it is still written to
    its changelog, restored by a fresh worker, and a replay counts nothing twice."""
    create_topics(settings)
    hour = datetime(2025, 10, 27, 7, tzinfo=UTC)
    topic = settings.topic("transit.facts.by-kommune")

    def facts(ids: range) -> list[tuple[bytes, bytes]]:
        # Long identities (up to the model's 600 characters) make a cell of over 1 MB from a
        # few thousand facts: a national feed's busiest kommune-hours hold tens of thousands.
        made = [
            TransitFact(
                kind="call",
                feed="entur",
                kommune_nr="0301",
                mode="bus",
                hour_start=hour,
                id=f"call:{i:06d}:" + "x" * 480,
                trip_id=f"trip-{i}",
                status="served",
                delay_seconds=0,
            )
            for i in ids
        ]
        return [(f.kommune_nr.encode(), f.to_bytes()) for f in made]

    def departures() -> float:
        store = Store(settings.database_url)
        try:
            rows = store.query_hourly(mode="bus", metric="departures")
        finally:
            store.close()
        return sum(r.value for r in rows)

    first = facts(range(2600))
    produce(settings, topic, first)
    drain(worker_env)
    assert departures() == 2600
    cells = [v for _, v in read_all(settings, f"{settings.app_id}-transit-hours-changelog")]
    assert max(len(v) for v in cells if v) > 1_048_576
    produce(settings, topic, first[:100] + facts(range(2600, 2601)))  # a replay and one more
    drain(worker_env)  # a fresh worker: the cell comes back from its changelog
    assert departures() == 2601
