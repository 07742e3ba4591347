"""Transit feed status: stale and empty feeds, mass cancellations, and the connector's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from byflyt.connectors.gtfs_rt import GtfsRtConnector, Snapshot
from byflyt.models.status import FeedHealth
from byflyt.samples.gtfs import SYNTHETIC_TRIPS
from byflyt.settings import FeedThresholds
from byflyt.streams.sensors import Change, FeedMachine
from tests.conftest import Connectors
from tests.gtfs_rt_build import feed, trip_update

TH = FeedThresholds(
    stale_seconds=60, empty_share=0.25, bad_snapshots=3, recover_snapshots=3, min_samples=5
)
START = datetime(2025, 10, 27, 6, tzinfo=UTC)
TICK = timedelta(seconds=10)


def polls(
    machine: FeedMachine,
    at: datetime,
    n: int,
    entities: int | None,
    *,
    age: float = 2.0,
    cancelled: int = 0,
    frozen: datetime | None = None,
) -> tuple[list[Change], datetime]:
    """``n`` polls every 10 s from ``at``; ``frozen`` keeps the snapshot timestamp fixed."""
    changes: list[Change] = []
    for _ in range(n):
        snapshot = frozen or at - timedelta(seconds=age)
        health = FeedHealth(
            source="gtfs-rt:inn",
            kind="trip_updates",
            read_at=at,
            snapshot_at=snapshot,
            entities=entities,
            cancelled=cancelled,
        )
        changes.extend(machine.step(health, TH))
        at += TICK
    return changes, at


def test_an_empty_feed_is_empty_after_three_polls_and_back_after_three() -> None:
    machine = FeedMachine("gtfs-rt:inn", "trip_updates")
    first, at = polls(machine, START, 20, 120)
    assert [(c.previous, c.state) for c in first] == [(None, "up")]
    empty_from = at
    changes, at = polls(machine, at, 5, 0)
    assert [(c.state, c.since, c.as_of) for c in changes] == [
        ("empty", empty_from, empty_from + 2 * TICK)
    ]
    assert changes[0].details == "0 entities, usually 120"
    back_from = at
    changes, at = polls(machine, at, 3, 118)
    assert [(c.previous, c.previous_since, c.state, c.since) for c in changes] == [
        ("empty", empty_from, "up", back_from)
    ]


def test_the_machine_survives_a_round_trip_through_a_table() -> None:
    machine = FeedMachine("gtfs-rt:inn", "trip_updates")
    _, at = polls(machine, START, 20, 120)
    _, at = polls(machine, at, 2, 0)
    again = FeedMachine.from_dict(machine.to_dict())
    changes, _ = polls(again, at, 1, 0)
    assert [c.state for c in changes] == ["empty"]


def test_a_stale_feed_is_stale_until_snapshots_are_fresh_again() -> None:
    machine = FeedMachine("gtfs-rt:inn", "trip_updates")
    _, at = polls(machine, START, 10, 120)
    frozen = at - timedelta(seconds=2)
    # The feed keeps answering the same snapshot (or 304): no entities, an ever older snapshot.
    changes, at = polls(machine, at, 12, None, frozen=frozen)
    (stale,) = changes
    assert stale.state == "stale"
    assert stale.since == frozen + timedelta(seconds=62)  # the first poll over 60 s after it
    assert "s old when read" in stale.details
    changes, _ = polls(machine, at, 3, 121)
    assert [(c.previous, c.state) for c in changes] == [("stale", "up")]


def test_mass_cancellations_are_service_not_an_outage() -> None:
    machine = FeedMachine("gtfs-rt:inn", "trip_updates")
    _, at = polls(machine, START, 20, 120)
    changes, _ = polls(machine, at, 30, 120, cancelled=110)
    assert changes == []
    assert machine.state == "up"


def test_a_quiet_hour_without_history_is_not_judged_empty() -> None:
    machine = FeedMachine("gtfs-rt:inn", "trip_updates")
    polls(machine, START, 20, 120)
    night = START.replace(hour=1)  # 02:00 local: no history for that hour of day yet
    changes, _ = polls(machine, night, 10, 3)
    assert changes == []


# -- the connector's health records ------------------------------------------------------------
@pytest.fixture
def connector(connectors: Connectors) -> GtfsRtConnector:
    at = datetime(2025, 10, 27, 5, 30, 5, tzinfo=UTC)
    return connectors.gtfs_rt(clock=lambda: at)


def test_the_gtfs_rt_connector_notes_every_poll(connector: GtfsRtConnector) -> None:
    taken = datetime(2025, 10, 27, 5, 30, tzinfo=UTC)
    trips = SYNTHETIC_TRIPS
    data = feed(
        taken,
        trip_update(trips["rail_morning"]),
        trip_update(trips["bus_5_day"], relation="CANCELED"),
    )

    def poll(position: datetime | None) -> None:
        stamp = None if position is None else position.isoformat()
        item = Snapshot("trip_updates", "test", data)
        connector.poll(item, stamp, lambda request, what: request())

    poll(None)
    poll(taken)  # the same snapshot again
    records = connector.health.take()
    assert connector.health.take() == []
    assert {r.topic.name for r in records} == {"transit.feed-health"}
    first, repeat = (FeedHealth.from_bytes(r.value) for r in records)
    assert records[0].key == "gtfs-rt:inn:trip_updates"
    assert (first.entities, first.cancelled, first.snapshot_at) == (2, 1, taken)
    assert first.age_seconds == 5
    assert (repeat.entities, repeat.snapshot_at) == (None, taken)
    # The same poll on the connector's /metrics: entities and the snapshot's age when read.
    registry = connector.metrics.registry
    labels = {"source": "gtfs-rt:inn", "kind": "trip_updates"}
    assert registry.get_sample_value("byflyt_feed_entities", labels) == 2
    assert registry.get_sample_value("byflyt_feed_snapshot_age_seconds", labels) == 5
