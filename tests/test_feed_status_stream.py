"""``feed_status`` through a real worker: feed polls → ``sensors.status`` and outages.

The agent reads ``transit.feed-health`` a fetch at a time on the batched sink and keeps each
feed's machine in the table ``status-feeds``, written to its changelog once per feed a flush.
A second ``worker --drain`` is a new process: it must go on from the machine the first one left
in the changelog (closing the outage it opened), and a record that does not parse goes to the
dead-letter topic alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from byflyt.kafka import create_topics
from byflyt.models.envelope import Rejected
from byflyt.models.status import FeedHealth, SensorStatus
from byflyt.settings import Settings
from byflyt.store import Store
from tests.helpers import drain
from tests.kafka_util import produce, read_all

pytestmark = pytest.mark.kafka

SOURCE, KIND = "gtfs-rt:inn", "trip_updates"
START = datetime(2025, 10, 27, 6, tzinfo=UTC)
TICK = timedelta(seconds=10)
THRESHOLDS = {"bad_snapshots": 3, "recover_snapshots": 3, "min_samples": 5}


def polls(at: datetime, n: int, entities: int) -> list[FeedHealth]:
    """``n`` polls 10 s apart from ``at``, each of a snapshot taken 2 s before it was read."""
    return [
        FeedHealth(
            source=SOURCE,
            kind=KIND,
            read_at=at + i * TICK,
            snapshot_at=at + i * TICK - timedelta(seconds=2),
            entities=entities,
        )
        for i in range(n)
    ]


def send(settings: Settings, records: list[FeedHealth | bytes]) -> None:
    produce(
        settings,
        settings.topic("transit.feed-health"),
        [
            (f"{SOURCE}:{KIND}".encode(), r if isinstance(r, bytes) else r.to_bytes())
            for r in records
        ],
    )


def outages(settings: Settings) -> list[tuple[str, str, str, datetime, datetime | None]]:
    store = Store(settings.database_url)
    try:
        return [
            (o.source, o.point_id, o.kind, o.started, o.ended)
            for o in store.query_outages()
            if o.source == SOURCE
        ]
    finally:
        store.close()


def test_feed_polls_open_and_close_an_outage_across_worker_runs(
    settings: Settings, worker_env: dict[str, str]
) -> None:
    create_topics(settings)
    env = {**worker_env, "BYFLYT_FEED_STATUS": json.dumps(THRESHOLDS)}
    healthy = polls(START, 20, 120)
    empty_from = START + 20 * TICK
    empty = polls(empty_from, 5, 0)
    send(settings, [*healthy, b'{"source": "gtfs-rt:inn", "kind"', *empty])
    drain(env)
    assert outages(settings) == [(SOURCE, KIND, "empty", empty_from, None)]

    # A fresh worker restores the machine from the changelog and closes the same outage.
    back_from = empty_from + 5 * TICK
    send(settings, polls(back_from, 3, 118))
    drain(env)
    assert outages(settings) == [(SOURCE, KIND, "empty", empty_from, back_from)]

    states = [
        (s.state, s.since)
        for s in (
            SensorStatus.from_bytes(v)
            for _, v in read_all(settings, settings.topic("sensors.status"))
            if v
        )
        if s.source == SOURCE
    ]
    assert states == [("up", START), ("empty", empty_from), ("up", back_from)]
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected")) if v
    ]
    assert [(r.source, r.code, r.stage) for r in rejected] == [
        ("transit.feed-health", "invalid_record", "feed_status")
    ]
