"""Done-when of the transit issue: recorded snapshots → ingest --replay → worker --drain → table.

The synthetic GTFS-realtime scenario (delays, a cancelled trip, a skipped stop, a repeated and a
malformed snapshot, trips that vanish, vehicles) is replayed through the real connector into a
real broker, drained through the transit agents into the store, and compared with the table
and flows computed independently by ``tests/transit_expect.py``. A second replay changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from byflyt.kafka import create_topics
from byflyt.models.envelope import Rejected
from byflyt.settings import Settings
from samples.gtfs_rt import write_synthetic_snapshots
from tests.helpers import byflyt, drain, load_static, stored
from tests.kafka_util import read_all
from tests.transit_expect import expected_transit

pytestmark = pytest.mark.kafka


def test_replayed_snapshots_equal_the_independent_table(
    settings: Settings, worker_env: dict[str, str], static_zip: Path, tmp_path: Path
) -> None:
    create_topics(settings)
    static = load_static(settings, worker_env, static_zip, "inn")
    snapshots = tmp_path / "rt"
    scenario = write_synthetic_snapshots(snapshots, static_zip=static_zip)

    byflyt(worker_env, "ingest", "gtfs-rt", "--feed", "inn", "--replay", str(snapshots))
    drain(worker_env)
    expected = expected_transit(static, snapshots, feed="inn", scenario=scenario)
    hourly, flows = stored(settings)
    assert flows == sorted(expected.flows)
    assert hourly == sorted(expected.hourly)
    metrics = {row[2] for row in hourly}
    assert {"departures", "cancelled_calls", "on_time_calls", "trips_out", "trips_in"} <= metrics

    # Every rejected snapshot is in the dead-letter topic with its reason.
    rejected = [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected"))
    ]
    malformed = [r for r in rejected if r.code == "invalid_snapshot"]
    assert len(malformed) == 1, [r.reason for r in rejected]

    # Replaying the same recording again changes nothing: not the table, not the flows.
    byflyt(worker_env, "ingest", "gtfs-rt", "--feed", "inn", "--replay", str(snapshots))
    drain(worker_env)
    assert stored(settings) == (hourly, flows)
