"""The synthetic GTFS-realtime snapshots: every scenario role is in the files, parsed back.

Also checks the independent expectation (tests/transit_expect.py) against the generator's own
ground truth, call by call, and that it yields the rows the pipeline tests rely on.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2

from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, load_gtfs
from byflyt.models.kommuner import get_region
from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS, TRIP_STOPS
from byflyt.samples.gtfs_rt import SYNTHETIC_NOTICE, write_synthetic_snapshots
from byflyt.samples.scenario import Scenario
from tests.transit_expect import CALL_METRICS, Expected, expected_transit, read_feed

MJOSBYEN = set(get_region("mjosbyen").kommuner)
FeedMessage = gtfs_realtime_pb2.FeedMessage


@pytest.fixture(scope="module")
def static(static_zip: Path, locator: KommuneLocator) -> StaticFeed:
    return load_gtfs(static_zip, feed="inn", region=get_region("mjosbyen"), locator=locator)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory, static_zip: Path) -> tuple[Path, Scenario]:
    directory = tmp_path_factory.mktemp("rt")
    return directory, write_synthetic_snapshots(directory, static_zip=static_zip)


@pytest.fixture(scope="module")
def expected(snapshots: tuple[Path, Scenario], static: StaticFeed) -> Expected:
    directory, scenario = snapshots
    return expected_transit(static, directory, feed="inn", scenario=scenario)


def messages(directory: Path, kind: str) -> list[tuple[str, FeedMessage]]:
    out = []
    for path in sorted(directory.glob(f"*-{kind}.pb")):
        message = read_feed(path)
        if message is not None:
            out.append((path.name, message))
    return out


def trip_updates(message: FeedMessage) -> dict[str, gtfs_realtime_pb2.TripUpdate]:
    return {e.trip_update.trip.trip_id: e.trip_update for e in message.entity}


def at(message: FeedMessage) -> datetime:
    return datetime.fromtimestamp(message.header.timestamp, UTC)


def test_same_seed_same_bytes(tmp_path: Path, snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    again = write_synthetic_snapshots(tmp_path / "again")
    other = write_synthetic_snapshots(tmp_path / "other", seed=8)
    assert again.files == scenario.files
    for name in scenario.files:
        assert (tmp_path / "again" / name).read_bytes() == (directory / name).read_bytes()
    assert any(
        (tmp_path / "other" / n).read_bytes() != (directory / n).read_bytes() for n in other.files
    )
    assert "SYNTHETIC" in SYNTHETIC_NOTICE
    with pytest.raises(ValueError, match="2025-10-27"):
        write_synthetic_snapshots(
            tmp_path / "x", service_date=scenario.service_date.replace(day=26)
        )


def test_files_are_small_ordered_entur_shaped_snapshots(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    assert sorted(p.name for p in directory.iterdir()) == list(scenario.files)
    assert len(scenario.snapshot_times) <= 65
    assert all((directory / n).stat().st_size < 4096 for n in scenario.files)
    for kind in ("trip-updates", "vehicle-positions"):
        parsed = messages(directory, kind)
        assert len(parsed) == len(scenario.snapshot_times) + 1  # one repeated
        stamps = [m.header.timestamp for _, m in parsed]
        assert stamps == sorted(stamps)
        for _, message in parsed:
            assert message.header.gtfs_realtime_version == "2.0"
            assert message.header.incrementality == gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    mismatched = 0
    for _, message in messages(directory, "trip-updates"):
        for update in trip_updates(message).values():
            assert update.trip.start_date == "20251027"
            assert update.trip.route_id.startswith("INN:Line:")
            stops = TRIP_STOPS[update.trip.trip_id]
            for stu in update.stop_time_update:
                assert stu.stop_id in stops
                assert not stu.arrival.HasField("time")
                assert not stu.departure.HasField("time")
                static_stop = stops[stu.stop_sequence] if stu.stop_sequence < len(stops) else None
                mismatched += static_stop != stu.stop_id
    assert mismatched > 0  # the 150 bus counts stop_sequence from 1


def final_delays(directory: Path) -> dict[tuple[str, str], int]:
    """(trip, stop) → the last delay published for it (departure, else arrival)."""
    delays: dict[tuple[str, str], int] = {}
    for _, message in messages(directory, "trip-updates"):
        for trip_id, update in trip_updates(message).items():
            for stu in update.stop_time_update:
                if stu.HasField("departure") or stu.HasField("arrival"):
                    event = stu.departure if stu.HasField("departure") else stu.arrival
                    delays[(trip_id, stu.stop_id)] = event.delay
    return delays


def test_delays_differ_in_punctuality(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    delays = final_delays(directory)
    late = scenario.roles["late"]
    early = scenario.roles["early"]
    assert delays[(late, SYNTHETIC_STOPS["lillehammer_bus"])] > 180
    assert -60 < delays[(early, SYNTHETIC_STOPS["gjovik_bus"])] < 0
    assert any(0 < d <= 180 for d in delays.values())
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for _, message in messages(directory, "trip-updates"):
        for trip_id, update in trip_updates(message).items():
            for stu in update.stop_time_update:
                seen[(trip_id, stu.stop_id)].add(stu.arrival.delay)
    assert len(seen[(late, SYNTHETIC_STOPS["lillehammer_bus"])]) > 1  # delays evolve


def test_cancelled_trip_before_its_start(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    trip_id = scenario.roles["cancelled"]
    start = scenario.trips[(trip_id, scenario.service_date)].calls[0].scheduled
    cancelled = [
        at(m)
        for _, m in messages(directory, "trip-updates")
        if trip_id in trip_updates(m)
        and trip_updates(m)[trip_id].trip.schedule_relationship
        == gtfs_realtime_pb2.TripDescriptor.CANCELED
    ]
    assert cancelled
    assert max(cancelled) < start
    truth = scenario.trips[(trip_id, scenario.service_date)]
    assert truth.status == "cancelled"
    assert {c.status for c in truth.calls} == {"cancelled"}


def test_skipped_stop(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    skipped = {
        (trip_id, stu.stop_id)
        for _, m in messages(directory, "trip-updates")
        for trip_id, update in trip_updates(m).items()
        for stu in update.stop_time_update
        if stu.schedule_relationship == gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.SKIPPED
    }
    trip_id = scenario.roles["skipped"]
    assert skipped == {(trip_id, SYNTHETIC_STOPS["moelv_bus"])}
    assert (
        scenario.trips[(trip_id, scenario.service_date)].skipped_stop_id
        == (SYNTHETIC_STOPS["moelv_bus"])
    )


def test_repeated_and_malformed_files(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    first_tu, first_vp, second_tu, second_vp = scenario.repeated_files
    assert first_tu[:4].isdigit()
    assert int(second_tu[:4]) == int(first_tu[:4]) + 1
    for a, b in ((first_tu, second_tu), (first_vp, second_vp)):
        assert (directory / a).read_bytes() == (directory / b).read_bytes()
        parsed = read_feed(directory / a)
        assert parsed is not None
        assert parsed.entity
    broken = (directory / scenario.malformed_file).read_bytes()
    assert broken
    with pytest.raises(DecodeError):
        FeedMessage().ParseFromString(broken)
    assert read_feed(directory / scenario.malformed_file) is None


def test_trip_vanishes_before_its_last_call_is_shown_passed(
    snapshots: tuple[Path, Scenario],
) -> None:
    directory, scenario = snapshots
    trip_id = scenario.roles["vanishing"]
    last_stop = TRIP_STOPS[trip_id][-1]
    parsed = [m for _, m in messages(directory, "trip-updates")]
    present = [i for i, m in enumerate(parsed) if trip_id in trip_updates(m)]
    last = present[-1]
    assert present == list(range(present[0], last + 1))
    update = trip_updates(parsed[last])[trip_id]
    assert update.trip.schedule_relationship != gtfs_realtime_pb2.TripDescriptor.CANCELED
    (stu,) = [s for s in update.stop_time_update if s.stop_id == last_stop]
    scheduled = scenario.trips[(trip_id, scenario.service_date)].calls[-1].scheduled
    arrival = scheduled + timedelta(seconds=stu.arrival.delay)
    assert at(parsed[last]) <= arrival < at(parsed[last + 1])
    truth = scenario.trips[(trip_id, scenario.service_date)]
    assert truth.vanished_at == at(parsed[last + 1])
    assert truth.calls[-1].status == "served"
    # Every trip leaves the feed once done; the crossing after it was shown at its last stop.
    crossing = scenario.trips[(scenario.roles["crossing"], scenario.service_date)]
    assert crossing.vanished_at is not None
    assert crossing.calls[-1].final_at is not None
    assert crossing.calls[-1].final_at < crossing.vanished_at


def test_vehicle_positions(snapshots: tuple[Path, Scenario], locator: KommuneLocator) -> None:
    directory, scenario = snapshots
    ids: set[str] = set()
    anonymous = occupied = 0
    for _, message in messages(directory, "vehicle-positions"):
        for entity in message.entity:
            vehicle = entity.vehicle
            assert vehicle.trip.trip_id in TRIP_STOPS
            assert vehicle.timestamp <= message.header.timestamp
            if vehicle.vehicle.id:
                ids.add(vehicle.vehicle.id)
            else:
                anonymous += 1
            occupied += vehicle.HasField("occupancy_status")
    assert len(ids) >= 2
    assert anonymous == 1
    assert occupied > 0
    assert sum(v.vehicle_id is None for v in scenario.vehicles) == 1
    assert {v.occupancy for v in scenario.vehicles} >= {None, "FEW_SEATS_AVAILABLE"}
    # The kommune the generator recorded is the one its point lies in.
    for seen in scenario.vehicles:
        assert locator.locate(seen.lat, seen.lon) == seen.kommune_nr, seen
    assert len({v.kommune_nr for v in scenario.vehicles} & MJOSBYEN) >= 3


def test_crossing_trip_leaves_the_region(snapshots: tuple[Path, Scenario]) -> None:
    directory, scenario = snapshots
    trip_id = scenario.roles["crossing"]
    assert trip_id == SYNTHETIC_TRIPS["crossing"]
    stops = {
        stu.stop_id
        for _, m in messages(directory, "trip-updates")
        for stu in trip_updates(m).get(trip_id, gtfs_realtime_pb2.TripUpdate()).stop_time_update
    }
    assert SYNTHETIC_STOPS["jaren_bus"] in stops
    calls = scenario.trips[(trip_id, scenario.service_date)].calls
    assert calls[-1].kommune_nr == "3446"
    assert calls[-1].kommune_nr not in MJOSBYEN


def test_expectation_agrees_with_the_generator(
    snapshots: tuple[Path, Scenario], expected: Expected
) -> None:
    _, scenario = snapshots
    truth = {
        (service_date, trip_id, call.stop_sequence): (call.status, call.delay_seconds)
        for (trip_id, service_date), trip in scenario.trips.items()
        for call in trip.calls
        if call.status != "open"
    }
    got = {key: (call.status, call.delay_seconds) for key, call in expected.calls.items()}
    assert got == truth


def test_expected_rows(expected: Expected) -> None:
    kommuner = {row[0] for row in expected.hourly}
    assert len(kommuner & MJOSBYEN) >= 3
    rows = {
        (k, mode, metric, hour): value for k, mode, metric, hour, value, _, _ in expected.hourly
    }
    assert any(m == "cancelled_calls" and v > 0 for (_, _, m, _), v in rows.items())
    assert any(
        rows[(k, mode, "on_time_calls", hour)] < v
        for (k, mode, metric, hour), v in rows.items()
        if metric == "departures"
    )
    assert {m for _, _, m, _ in rows} == {*CALL_METRICS, "vehicles_active", "trips_out", "trips_in"}
    assert any(a in MJOSBYEN and b not in MJOSBYEN for a, b, _, _, _ in expected.flows)
    hours = [row[3] for row in expected.hourly] + [flow[3] for flow in expected.flows]
    for hour in hours:
        assert hour.tzinfo is not None
        assert hour.utcoffset() == timedelta(0)
        assert (hour.minute, hour.second, hour.microsecond) == (0, 0, 0)
    assert all(0 <= row[5] <= 100 and row[6] >= 1 for row in expected.hourly)
    assert expected.hourly == sorted(expected.hourly)
