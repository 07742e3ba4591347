"""The GTFS-realtime connector over HTTP and from recorded files, into the real Kafka.

The rules each snapshot is held to are tested on ``poll`` in tests/test_gtfs_rt_connector.py;
these tests run the same connector the way ``byflyt ingest gtfs-rt`` does: a local server
answering in Entur's shapes (503, ETag, Last-Modified) and a folder of recorded snapshots.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from byflyt.cli.gtfs import feed_dir
from byflyt.connectors.gtfs_rt import GtfsRtConnector
from byflyt.connectors.http import Backoff
from byflyt.connectors.snapshots import SnapshotRunner
from byflyt.kafka import create_topics
from byflyt.models.envelope import Rejected
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import TripState, VehicleSeen
from byflyt.settings import Settings
from tests.conftest import Connectors
from tests.gtfs_rt_build import AT, RAIL, S, T, feed, stu, trip_update, vehicle
from tests.helpers import QuietHandler, http_server, metric_value
from tests.kafka_util import read_all

REPO = Path(__file__).resolve().parent.parent
FAST = Backoff(base=0.01, cap=0.05, attempts=4)
Make = Callable[..., GtfsRtConnector]


@pytest.fixture
def make(connectors: Connectors) -> Make:
    return lambda **kw: connectors.gtfs_rt(clock=lambda: AT + timedelta(seconds=5), **kw)


class _Feed(QuietHandler):
    """Answers GETs from a queue of (status, headers, body); 304 when If-None-Match matches."""

    answers: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Feed.seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = _Feed.answers.pop(0) if _Feed.answers else (404, {}, b"")
        if (
            status == 200
            and headers.get("ETag")
            and self.headers.get("If-None-Match") == headers["ETag"]
        ):
            status, body = 304, b""
        self.reply(status, body, headers)


@pytest.fixture
def server() -> Iterator[str]:
    _Feed.answers, _Feed.seen = [], []
    with http_server(_Feed) as url:
        yield f"{url}/tu"


def topic_values(settings: Settings, name: str) -> list[tuple[bytes | None, bytes]]:
    return [(k, v) for k, v in read_all(settings, settings.topic(name)) if v is not None]


@pytest.mark.kafka
def test_http_retries_a_503_honours_etag_and_keeps_the_rule_across_restarts(
    settings: Settings,
    make: Callable[..., GtfsRtConnector],
    server: str,
    registry: CollectorRegistry,
) -> None:
    create_topics(settings)
    snapshot = feed(AT, trip_update(RAIL, [stu(S["moelv_rail"], delay=60)]))
    etag = {"ETag": '"v1"', "Last-Modified": "Mon, 27 Oct 2025 05:30:00 GMT"}
    _Feed.answers = [
        (503, {"Retry-After": "0"}, b"busy"),
        (200, etag, snapshot),
        (200, etag, snapshot),
    ]
    connector = make(trip_updates=server, interval=timedelta(seconds=0.05))
    stats = SnapshotRunner(connector, settings, metrics=connector.metrics, backoff=FAST).run_polls(
        2, timedelta(seconds=0.05)
    )
    assert stats.failed == []
    assert [h.get("et-client-name") for h in _Feed.seen] == [settings.client_name] * 3
    assert "if-none-match" not in _Feed.seen[1]
    assert _Feed.seen[2]["if-none-match"] == '"v1"'
    assert _Feed.seen[2]["if-modified-since"] == etag["Last-Modified"]
    records = topic_values(settings, "transit.trip-updates")
    assert len(records) == 1  # the 304 added nothing
    key, value = records[0]
    state = TripState.from_bytes(value)
    assert key == state.key.encode() == f"inn:2025-10-27:{RAIL}".encode()
    assert (
        metric_value(registry, "byflyt_http_errors_total", source="gtfs-rt:inn", status_class="5xx")
        == 1
    )
    labels = {"source": "gtfs-rt:inn", "kind": "trip_updates"}
    assert (
        metric_value(registry, "byflyt_gtfs_rt_snapshots_total", **labels, outcome="not_modified")
        == 1
    )

    # A restarted connector reads the checkpoint from Kafka: an older snapshot is rejected.
    _Feed.answers = [(200, {}, feed(AT - timedelta(minutes=1), trip_update(RAIL)))]
    again = make(trip_updates=server)
    stats = SnapshotRunner(again, settings, metrics=again.metrics, backoff=FAST).run(once=True)
    assert stats.rejected == 1
    dead = [Rejected.from_bytes(v) for _, v in topic_values(settings, "dlq.rejected")]
    assert [(d.code, d.context["rule"]) for d in dead] == [("invalid_snapshot", "older_than_last")]
    assert len(topic_values(settings, "transit.trip-updates")) == 1
    rejected = {"source": "gtfs-rt:inn", "stage": "gtfs-rt", "reason": "invalid_snapshot"}
    assert metric_value(registry, "byflyt_rejected_total", **rejected) == 1


@pytest.mark.kafka
def test_command_replays_recorded_snapshots(
    settings: Settings, static: StaticFeed, worker_env: dict[str, str], tmp_path: Path
) -> None:
    static.save(feed_dir(settings, "inn"))
    folder = tmp_path / "recorded"
    folder.mkdir()
    bus = T["bus_150_morning"]
    files = {
        "001-vehicles.pb": feed(
            AT, vehicle("e1", vehicle_id="NSB-73", trip_id=RAIL, lat=60.7921, lon=11.0762)
        ),
        "002.pb": feed(
            AT, trip_update(RAIL, [stu(S["moelv_rail"], 2, delay=60)]), trip_update(bus)
        ),
        "003.pb": feed(
            AT + timedelta(seconds=10), trip_update(bus), trip_update(RAIL, [stu("NSR:Quay:0")])
        ),
        "004.pb": feed(AT + timedelta(seconds=10), trip_update(bus)),
        "005.pb": b"\xff\xff not protobuf",
        "006.pb": feed(AT + timedelta(seconds=20), trip_update(bus)),
        "notes.txt": b"ignored",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    command = [
        sys.executable,
        "-m",
        "byflyt",
        "ingest",
        "gtfs-rt",
        "--feed",
        "inn",
        "--replay",
        str(folder),
    ]
    done = subprocess.run(
        command, env=worker_env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "gtfs-rt inn: 4 snapshots (1 repeated, 0 not modified), 5 trip states (1 vanished), "
        "1 vehicles, 2 rejected, 0 failed"
    )
    states = [TripState.from_bytes(v) for _, v in topic_values(settings, "transit.trip-updates")]
    assert sorted((s.snapshot_at, s.trip_id, s.status) for s in states) == sorted(
        [
            (AT, RAIL, "scheduled"),
            (AT, bus, "scheduled"),
            (AT + timedelta(seconds=10), bus, "scheduled"),
            (AT + timedelta(seconds=20), RAIL, "vanished"),
            (AT + timedelta(seconds=20), bus, "scheduled"),
        ]
    )
    rail = next(s for s in states if s.trip_id == RAIL and s.status == "scheduled")
    assert [c.delay_seconds for c in rail.calls] == [None, 60, 60, 60, 60]
    vehicles = [VehicleSeen.from_bytes(v) for _, v in topic_values(settings, "transit.vehicles")]
    assert [(v.vehicle_id, v.kommune_nr, v.mode) for v in vehicles] == [("NSB-73", "3403", "rail")]
    dead = [Rejected.from_bytes(v) for _, v in topic_values(settings, "dlq.rejected")]
    assert sorted((d.code, d.context["rule"]) for d in dead) == [
        ("invalid_entity", "unknown_stop"),
        ("invalid_snapshot", "parse"),
    ]
