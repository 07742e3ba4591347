"""A feed that repeats its trips: states kept per trip, not resolved again, and skipped downstream.

The synthetic national-size snapshots of the benchmark (bench/gtfs_rt.py), cut down to 60 trips
of 6 calls over 30 snapshots 10 s apart, in which a twentieth of the trips change: each
snapshot is polled by one connector that keeps its trips, and by a new connector that resolves
everything afresh. Their records must be the same states; what the ``derive_calls`` agent
makes of them, skipping the records that say they bring nothing new, must be exactly what it
makes of every record decoded in full.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from bench import gtfs_rt as synthetic
from byflyt.connectors.gtfs_rt import GtfsRtConnector, Snapshot
from byflyt.models import codec_trips
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, load_gtfs
from byflyt.settings import Settings
from byflyt.streams.transit_calls import TripDeriver

NOW = synthetic.FIRST_SNAPSHOT + timedelta(days=1)


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> StaticFeed:
    work = tmp_path_factory.mktemp("repeats")
    synthetic.write_static(work / "static.zip", trips=60, calls=6)
    load_gtfs(
        work / "static.zip", feed="syn", region=None, locator=KommuneLocator.from_file()
    ).save(work / "static")
    return StaticFeed.load(work / "static")


def connector(static: StaticFeed) -> GtfsRtConnector:
    return GtfsRtConnector(
        Settings(), static=static, trip_updates="http://127.0.0.1:9/tu", clock=lambda: NOW
    )


def poll(made: GtfsRtConnector, blob: bytes, position: str | None) -> Any:
    return made.poll(Snapshot("trip_updates", "test", blob), position, lambda r, w: r())


def derived(deriver: TripDeriver, value: bytes, skip: bool) -> tuple[list[str], list[str]]:
    if skip and deriver.settled(value):
        return [], []
    calls, facts = deriver.apply(codec_trips.decode(value))
    return [c.to_bytes().decode() for c in calls], [f.to_bytes().decode() for f in facts]


def test_repeated_trips_are_the_states_resolved_afresh_and_derive_the_same(
    static: StaticFeed, tmp_path: Path
) -> None:
    # Trips running around the first snapshot, so that calls become final along the way.
    paths = synthetic.write_snapshots(tmp_path / "snapshots", static, 30, changed=0.05)
    keeping = connector(static)
    skipping, full = TripDeriver(table={}), TripDeriver(table={})
    position: str | None = None
    settled = repeated = 0
    outputs: list[tuple[list[str], list[str]]] = []
    for path in paths:
        blob = path.read_bytes()
        kept = poll(keeping, blob, position)
        fresh = connector(static)
        afresh = poll(fresh, blob, None)
        fresh.close()
        states = [codec_trips.decode(r.value) for r in kept.records]
        expected = [codec_trips.decode(r.value) for r in afresh.records]
        assert [msgspec.structs.replace(s, settled_since=None) for s in states] == expected
        repeated += kept.counts["unchanged_trips"]
        for record in kept.records:
            settled += codec_trips.settled_key(record.value) is not None
            mine = derived(skipping, record.value, skip=True)
            theirs = derived(full, record.value, skip=False)
            assert mine == theirs
            outputs.append(mine)
        position = kept.checkpoint
    keeping.close()
    assert skipping.table == full.table
    # Most trips repeat, most records say they bring nothing new, and calls did become final.
    assert repeated > 0.9 * 29 * 60
    assert settled > 0.8 * 29 * 60
    assert sum(len(calls) for calls, _ in outputs) > 0


def test_a_repeated_trip_whose_call_time_passes_is_not_settled(static: StaticFeed) -> None:
    made = connector(static)
    plan = static.trip_plan("SYN:ServiceJourney:000001", synthetic.SERVICE_DATE)
    assert plan is not None
    second = plan.departures[1]
    assert second is not None
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    entity = message.entity.add()
    entity.id = "SYN:ServiceJourney:000001-2025-10-27"
    update = entity.trip_update
    update.trip.trip_id = "SYN:ServiceJourney:000001"
    update.trip.start_date = "20251027"
    update.stop_time_update.add(stop_sequence=1).departure.delay = 0

    def at(moment: Any, position: str | None) -> tuple[codec_trips.Trip, str]:
        message.header.timestamp = int(moment.timestamp())
        update.timestamp = int(moment.timestamp())
        result = poll(made, message.SerializeToString(), position)
        (record,) = result.records
        return codec_trips.decode(record.value), result.checkpoint

    first, position = at(second - timedelta(seconds=30), None)
    assert first.settled_since is None  # new
    before, position = at(second - timedelta(seconds=10), position)
    assert before.settled_since == first.snapshot_at  # nothing passed
    after, position = at(second + timedelta(seconds=10), position)
    assert after.settled_since is None  # the second call's departure passed: it is final now
    again, _ = at(second + timedelta(seconds=20), position)
    assert again.settled_since == after.snapshot_at
    assert again.calls == after.calls == first.calls
    made.close()
