"""The GTFS-realtime connector: validation rules, trip resolution, HTTP and replay into Kafka.

Snapshots are protobuf built here (tests/gtfs_rt_build.py) against the synthetic static feed
(samples/gtfs.py). ``rail_morning`` on Monday 2025-10-27 (UTC+1) departs Lillehammer 05:10Z,
Moelv 05:35Z, Brumunddal 05:45Z, Hamar 05:58Z and arrives at Stange 06:05Z (sequence 0–4).
Rule tests call ``poll`` directly; the HTTP, restart and replay tests are in
tests/test_gtfs_rt_kafka.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from byflyt.cli.gtfs import feed_dir
from byflyt.cli.ingest import ingest_app
from byflyt.connectors import gtfs_rt_decode as decode
from byflyt.connectors.base import PollResult
from byflyt.connectors.gtfs_rt import GtfsRtConnector, Snapshot
from byflyt.connectors.snapshots import parse_interval
from byflyt.errors import ConfigError
from byflyt.models.envelope import Rejected
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import TripState, VehicleSeen
from byflyt.settings import Settings
from tests.conftest import Connectors
from tests.gtfs_rt_build import AT, RAIL, S, T, feed, headless, stu, trip_update, vehicle
from tests.helpers import metric_value

MON = date(2025, 10, 27)
RAIL_STOPS = ["lillehammer_rail", "moelv_rail", "brumunddal_rail", "hamar_rail", "stange_rail"]
SCHEDULED = [
    datetime(2025, 10, 27, h, m, tzinfo=UTC)
    for h, m in ((5, 10), (5, 35), (5, 45), (5, 58), (6, 5))
]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


Make = Callable[..., GtfsRtConnector]


@pytest.fixture
def make(connectors: Connectors) -> Make:
    return partial(connectors.gtfs_rt, clock=lambda: AT + timedelta(seconds=5))


def poll(
    connector: GtfsRtConnector,
    data: bytes,
    position: datetime | None = None,
    kind: str = "trip_updates",
) -> PollResult:
    item = Snapshot(kind, "test", data)  # type: ignore[arg-type]
    stamp = None if position is None else position.isoformat()
    return connector.poll(item, stamp, lambda request, what: request())


def trips(result: PollResult) -> dict[str, TripState]:
    states = [
        TripState.from_bytes(r.value)
        for r in result.records
        if r.topic.name.startswith("transit.trip")
    ]
    return {s.trip_id: s for s in states}


def one_rejected(result: PollResult) -> Rejected:
    assert len(result.rejected) == 1, result.rejected
    return result.rejected[0]


# -- resolving trips ---------------------------------------------------------------------------
def test_delays_propagate_and_entur_sequences_match_by_stop_id(make: Make) -> None:
    # Entur's synthetic stop_sequence counts from 1: sequence 2 is Moelv in the feed but
    # Brumunddal in the static feed, so it is matched by stop_id. Sequence 3 at Hamar is right.
    entity = trip_update(
        RAIL,
        [stu(S["moelv_rail"], 2, delay=120), stu(S["hamar_rail"], 3, delay=60)],
        entity_id=f"{RAIL}-x",
    )
    bus = trip_update(T["bus_5_day"], delay=300, start_date="20251027")
    result = poll(make(), feed(AT, entity, bus))
    assert result.rejected == []
    assert result.checkpoint == "2025-10-27T05:30:00Z"
    state = trips(result)[RAIL]
    assert (state.service_date, state.route_id, state.mode, state.status) == (
        MON,
        "INN:Line:R10",
        "rail",
        "scheduled",
    )
    assert state.snapshot_at == AT
    assert state.vehicle_id == "bus-1"
    assert [c.stop_id for c in state.calls] == [S[r] for r in RAIL_STOPS]
    assert [c.stop_sequence for c in state.calls] == [0, 1, 2, 3, 4]
    assert [c.kommune_nr for c in state.calls] == ["3405", "3411", "3411", "3403", "3413"]
    assert [c.scheduled for c in state.calls] == SCHEDULED
    assert [c.delay_seconds for c in state.calls] == [None, 120, 120, 60, 60]
    assert [c.actual for c in state.calls] == [
        None,
        SCHEDULED[1] + minutes(2),
        SCHEDULED[2] + minutes(2),
        SCHEDULED[3] + minutes(1),
        SCHEDULED[4] + minutes(1),
    ]
    assert {c.realtime for c in state.calls} == {"scheduled"}
    # No stop time update: the trip's own delay reaches every call.
    assert [c.delay_seconds for c in trips(result)[T["bus_5_day"]].calls] == [300, 300]


def test_absolute_times_win_and_the_last_call_uses_its_arrival(make: Make) -> None:
    entity = trip_update(
        RAIL,
        [
            stu(S["hamar_rail"], departure=SCHEDULED[3] + minutes(3)),
            stu(S["stange_rail"], arrival=SCHEDULED[4] + minutes(4), arrival_delay=240),
        ],
        start_date="20251027",
    )
    state = trips(poll(make(), feed(AT, entity)))[RAIL]
    assert [c.delay_seconds for c in state.calls][3:] == [180, 240]
    assert [c.actual for c in state.calls][3:] == [
        SCHEDULED[3] + minutes(3),
        SCHEDULED[4] + minutes(4),
    ]


def test_skipped_stops_propagate_no_data_stops_propagation(make: Make) -> None:
    entity = trip_update(
        RAIL,
        [
            stu(S["lillehammer_rail"], 1, delay=60),
            stu(S["moelv_rail"], 2, relation="SKIPPED"),
            stu(S["hamar_rail"], 4, relation="NO_DATA"),
        ],
    )
    state = trips(poll(make(), feed(AT, entity)))[RAIL]
    assert [c.realtime for c in state.calls] == [
        "scheduled",
        "skipped",
        "scheduled",
        "no_data",
        "no_data",
    ]
    assert [c.delay_seconds for c in state.calls] == [60, 60, 60, None, None]
    assert [c.actual for c in state.calls] == [
        SCHEDULED[0] + minutes(1),
        None,  # the train does not stop there
        SCHEDULED[2] + minutes(1),
        None,
        None,
    ]


def test_cancelled_and_added_trips(make: Make) -> None:
    cancelled = trip_update(RAIL, relation="CANCELED", start_date="20251027")
    added = trip_update(
        "INN:ServiceJourney:extra",
        [stu(S["hamar_bus"], 0, departure=AT + minutes(10)), stu(S["stange_bus"], 1)],
        relation="ADDED",
        route_id="INN:Line:5",
        start_date="20251027",
    )
    result = poll(make(), feed(AT, cancelled, added))
    assert result.rejected == []
    states = trips(result)
    assert states[RAIL].status == "cancelled"
    assert len(states[RAIL].calls) == 5
    extra = states["INN:ServiceJourney:extra"]
    assert (extra.status, extra.mode, extra.route_id) == ("added", "bus", "INN:Line:5")
    assert [(c.stop_id, c.scheduled, c.kommune_nr) for c in extra.calls] == [
        (S["hamar_bus"], AT + minutes(10), "3403")
    ]


def test_service_date_is_the_nearest_run_without_start_date(make: Make) -> None:
    # rail_night runs 23:40 → 00:35 local every day; at 00:10 local on the 27th it is the
    # run of the 26th that is under way.
    late = datetime(2025, 10, 26, 23, 10, tzinfo=UTC)
    connector = make(clock=lambda: late)
    state = trips(poll(connector, feed(late, trip_update(T["rail_night"]))))[T["rail_night"]]
    assert state.service_date == date(2025, 10, 26)
    # Entur's entity id names the date.
    named = trip_update(T["rail_night"], entity_id=f"{T['rail_night']}-2025-10-25")
    state = trips(poll(connector, feed(late + minutes(1), named)))[T["rail_night"]]
    assert state.service_date == date(2025, 10, 25)


# -- entity rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entity", "rule", "words"),
    [
        (
            trip_update(RAIL, [stu(S["hamar_rail"], 3), stu(S["moelv_rail"], 1)]),
            "stop_sequence_order",
            "not ordered by stop_sequence (1 after 3)",
        ),
        (
            trip_update(
                RAIL,
                [
                    stu(S["moelv_rail"], arrival=AT + minutes(10), departure=AT + minutes(11)),
                    stu(S["hamar_rail"], arrival=AT + minutes(9)),
                ],
            ),
            "times_decrease",
            "is before the previous time",
        ),
        (
            trip_update(
                RAIL,
                [stu(S["moelv_rail"], departure=AT), stu(S["hamar_rail"], arrival=AT - minutes(1))],
            ),
            "times_decrease",
            f"at stop {S['hamar_rail']}",
        ),
        (trip_update("INN:ServiceJourney:nope"), "unknown_trip", "is not in static feed 'inn'"),
        (trip_update(RAIL, [stu("NSR:Quay:0")]), "unknown_stop", "'NSR:Quay:0' is not in static"),
        (
            trip_update(RAIL, [stu(S["hamar_bus"], 3)]),
            "stop_not_on_trip",
            f"{S['hamar_bus']!r} is not on trip",
        ),
        (
            trip_update(RAIL, [stu(S["hamar_rail"], 5), stu(S["moelv_rail"], 6)]),
            "stop_not_on_trip",
            "after the previous update",
        ),
    ],
)
def test_a_bad_entity_is_rejected_alone(
    make: Make, registry: CollectorRegistry, entity: Any, rule: str, words: str
) -> None:
    good = trip_update(T["bus_5_day"], start_date="20251027")
    result = poll(make(), feed(AT, entity, good))
    dead = one_rejected(result)
    assert (dead.code, dead.source, dead.stage) == ("invalid_entity", "gtfs-rt:inn", "gtfs-rt")
    assert dead.context["rule"] == rule
    assert dead.context["entity_id"] == entity.id
    assert dead.reason.startswith(f"{rule}: ")
    assert words in dead.reason
    assert dead.raw.startswith("hex:") or entity.trip_update.trip.trip_id in dead.raw
    assert list(trips(result)) == [T["bus_5_day"]]  # the rest of the snapshot flows


# -- snapshot rules ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "position", "rule", "words"),
    [
        (b"\x0a\xff\xff\xff", None, "parse", "does not parse"),
        (headless(trip_update(RAIL)), None, "no_header", "has no header timestamp"),
        (feed(None, trip_update(RAIL)), None, "no_header", "has no header timestamp"),
        (feed(AT + minutes(2), trip_update(RAIL)), None, "future_timestamp", "more than 60 s"),
        (feed(AT, trip_update(RAIL)), AT + minutes(1), "older_than_last", "is older than"),
    ],
)
def test_a_bad_snapshot_is_rejected_whole(
    make: Make,
    registry: CollectorRegistry,
    data: bytes,
    position: datetime | None,
    rule: str,
    words: str,
) -> None:
    result = poll(make(), data, position)
    dead = one_rejected(result)
    assert result.records == []
    assert result.checkpoint is None
    assert (dead.code, dead.context["rule"], dead.context["kind"]) == (
        "invalid_snapshot",
        rule,
        "trip_updates",
    )
    assert rule in dead.reason
    assert words in dead.reason
    assert dead.raw.startswith("hex:") or len(dead.raw) > 0
    labels = {"source": "gtfs-rt:inn", "kind": "trip_updates", "outcome": "rejected"}
    assert metric_value(registry, "byflyt_gtfs_rt_snapshots_total", **labels) == 1


def test_a_repeated_snapshot_produces_nothing(make: Make, registry: CollectorRegistry) -> None:
    connector = make()
    data = feed(AT, trip_update(RAIL))
    assert len(poll(connector, data).records) == 1
    again = poll(connector, data, position=AT)
    assert (again.records, again.rejected, again.checkpoint) == ([], [], None)
    assert again.counts["repeated"] == 1
    labels = {"source": "gtfs-rt:inn", "kind": "trip_updates", "outcome": "repeated"}
    assert metric_value(registry, "byflyt_gtfs_rt_snapshots_total", **labels) == 1


# -- warnings ----------------------------------------------------------------------------------
def warnings(registry: CollectorRegistry, warning: str) -> float:
    labels = {"source": "gtfs-rt:inn", "warning": warning}
    return metric_value(registry, "byflyt_gtfs_rt_warnings_total", **labels)


def test_missing_vehicle_id_is_a_warning(make: Make, registry: CollectorRegistry) -> None:
    result = poll(
        make(),
        feed(AT, trip_update(RAIL, vehicle_id=None), vehicle("v-entity", lat=60.79, lon=11.07)),
    )
    assert result.rejected == []
    assert warnings(registry, "missing_vehicle_id") == 2
    seen = [
        VehicleSeen.from_bytes(r.value)
        for r in result.records
        if r.topic.name == "transit.vehicles"
    ]
    assert seen == []  # not a distinct vehicle: an entity id is no vehicle identity


def test_stale_entities_are_a_warning(make: Make, registry: CollectorRegistry) -> None:
    fresh = trip_update(RAIL, timestamp=AT - timedelta(seconds=20))
    stale = vehicle("v", vehicle_id="v1", timestamp=AT - timedelta(seconds=21))
    result = poll(make(), feed(AT, fresh, stale))
    assert result.rejected == []
    assert warnings(registry, "stale_entity") == 1
    assert warnings(registry, "stale_feed") == 0


def test_an_old_feed_is_a_warning_when_live_only(
    make: Make, registry: CollectorRegistry, tmp_path: Path
) -> None:
    late = AT + timedelta(seconds=21)
    poll(make(clock=lambda: late), feed(AT, trip_update(RAIL)))
    assert warnings(registry, "stale_feed") == 1
    (tmp_path / "a.pb").write_bytes(feed(AT, trip_update(RAIL)))
    replay = make(trip_updates=None, replay=tmp_path, clock=lambda: AT + timedelta(days=300))
    assert poll(replay, feed(AT, trip_update(RAIL))).rejected == []
    assert warnings(registry, "stale_feed") == 1


# -- snapshots over time -----------------------------------------------------------------------
def test_a_trip_missing_from_the_next_full_snapshot_vanishes_once(make: Make) -> None:
    connector = make(clock=lambda: AT + minutes(5))
    bus = T["bus_150_morning"]
    first = poll(
        connector, feed(AT, trip_update(RAIL, [stu(S["moelv_rail"], delay=90)]), trip_update(bus))
    )
    assert set(trips(first)) == {RAIL, bus}
    later = AT + timedelta(seconds=10)
    second = poll(connector, feed(later, trip_update(bus)), position=AT)
    states = [TripState.from_bytes(r.value) for r in second.records]
    assert [(s.trip_id, s.status) for s in states] == [(RAIL, "vanished"), (bus, "scheduled")]
    gone = states[0]
    assert gone.snapshot_at == later
    assert gone.calls == trips(first)[RAIL].calls
    assert second.counts["vanished"] == 1
    third = poll(connector, feed(later + timedelta(seconds=10), trip_update(bus)), position=later)
    assert [TripState.from_bytes(r.value).trip_id for r in third.records] == [bus]
    # A trip whose entity is rejected is still in the feed: it does not vanish.
    broken = trip_update(bus, [stu("NSR:Quay:0")])
    fourth = poll(
        connector, feed(later + minutes(1), broken), position=later + timedelta(seconds=10)
    )
    assert (fourth.records, len(fourth.rejected)) == ([], 1)


def test_vehicles_are_placed_and_lend_occupancy_to_trips(make: Make) -> None:
    connector = make()
    positions = feed(
        AT,
        vehicle(
            "e1",
            vehicle_id="NSB-73",
            trip_id=RAIL,
            lat=60.7921,
            lon=11.0762,
            occupancy="MANY_SEATS_AVAILABLE",
            timestamp=AT - timedelta(seconds=3),
        ),
        vehicle("e2", vehicle_id="ferry", lat=57.0, lon=3.0),
    )
    result = poll(connector, positions, kind="vehicle_positions")
    seen = {v.vehicle_id: v for v in (VehicleSeen.from_bytes(r.value) for r in result.records)}
    train = seen["NSB-73"]
    assert (train.kommune_nr, train.mode, train.trip_id, train.occupancy) == (
        "3403",
        "rail",
        RAIL,
        "MANY_SEATS_AVAILABLE",
    )
    assert (train.seen_at, train.snapshot_at) == (AT - timedelta(seconds=3), AT)
    assert (seen["ferry"].kommune_nr, seen["ferry"].mode, seen["ferry"].seen_at) == (
        None,
        "other",
        AT,
    )
    state = trips(poll(connector, feed(AT, trip_update(RAIL))))[RAIL]
    assert state.occupancy == "MANY_SEATS_AVAILABLE"


def test_configuration_errors(make: Make, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        make(trip_updates=None)
    assert err.value.setting == "--trip-updates"
    with pytest.raises(ConfigError) as err:
        make(replay=tmp_path)
    assert "not both" in str(err.value)
    with pytest.raises(ConfigError, match=r"--replay: .* has no"):
        make(trip_updates=None, replay=tmp_path)
    with pytest.raises(ConfigError, match="--replay: cannot read folder"):
        make(trip_updates=None, replay=tmp_path / "missing")
    with pytest.raises(ConfigError, match="--vehicle-positions"):
        make(vehicle_positions="api.entur.io/vp")
    assert parse_interval("10s") == timedelta(seconds=10)
    assert parse_interval("1m") == timedelta(minutes=1)
    assert parse_interval("2.5") == timedelta(seconds=2.5)
    with pytest.raises(ConfigError, match="--interval"):
        parse_interval("soon")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--trip-updates: give either a TripUpdates URL or --replay DIR"),
        (["--trip-updates", "http://x/tu", "--replay", "."], "not both"),
        (["--replay", "/nonexistent/dir"], "--replay: cannot read folder /nonexistent/dir"),
        (["--replay", ".", "--once", "--polls", "2"], "--polls: cannot go with --once"),
        (["--trip-updates", "http://x/tu", "--interval", "often"], "--interval: 'often'"),
    ],
)
def test_command_refuses_wrong_usage_in_one_line(
    settings: Settings,
    static: StaticFeed,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    static.save(feed_dir(settings, "inn"))
    monkeypatch.setenv("BYFLYT_DATA_DIR", str(settings.data_dir))
    done = CliRunner().invoke(ingest_app, ["gtfs-rt", "--feed", "inn", *args])
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_command_needs_a_loaded_feed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYFLYT_DATA_DIR", str(settings.data_dir))
    done = CliRunner().invoke(
        ingest_app, ["gtfs-rt", "--feed", "inn", "--trip-updates", "http://x/"]
    )
    assert done.exit_code == 2
    assert "--feed: no static GTFS feed 'inn'" in done.stderr
    assert "byflyt gtfs load" in done.stderr


def test_a_changed_entity_that_does_not_parse_rejects_the_snapshot_and_keeps_the_state(
    make: Make,
) -> None:
    # Only the entities that changed are parsed: a corrupt one among repeated ones is found
    # then, and the snapshot is rejected whole, as protobuf's parse of it would be.
    connector = make()
    bus = trip_update(T["bus_5_day"], delay=300, start_date="20251027")
    first = poll(connector, feed(AT, bus))
    assert (len(first.records), first.rejected) == (1, [])
    corrupt_update = b"\x0a\x03abc\x0f\x00"  # a trip descriptor, then wire type 7
    corrupt = b"\x12" + bytes([7 + len(corrupt_update)]) + b"\x0a\x03bad\x1a"
    corrupt += bytes([len(corrupt_update)]) + corrupt_update
    data = feed(AT + timedelta(seconds=20), bus) + corrupt
    assert decode.walk(data) is not None  # well framed: only parsing the entity finds it out
    with pytest.raises(DecodeError):
        rt.FeedMessage.FromString(data)
    dead = one_rejected(poll(connector, data, AT))
    assert (dead.code, dead.context["rule"]) == ("invalid_snapshot", "parse")
    assert "does not parse" in dead.reason
    # The trip kept from the first snapshot is still known: the next one repeats it.
    later = poll(connector, feed(AT + timedelta(seconds=40), bus), AT)
    assert later.rejected == []
    assert later.counts["unchanged_trips"] == 1
    assert trips(later)[T["bus_5_day"]].snapshot_at == AT + timedelta(seconds=40)
