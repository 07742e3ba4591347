"""GTFS-realtime at national size: CPU per snapshot against bare ``ParseFromString``, peak memory.

1. Write a synthetic static feed (labelled synthetic) of ``trips`` bus trips with ``calls`` stops
   each, on quays along the Hamar–Lillehammer corridor, all running on 2025-10-27, and load it
   the way ``byflyt gtfs load`` does (stops placed in kommuner).
2. Write ``snapshots`` TripUpdates snapshots 10 s apart: every trip with a StopTimeUpdate (delay)
   for each of its calls, so one snapshot holds ``trips`` trip updates × ``calls`` stop time
   updates, Entur-style (delays only, no absolute times).
3. (a) Baseline, in a child process: ``FeedMessage.ParseFromString`` of each snapshot's bytes;
   CPU seconds per snapshot.
4. (b) byflyt, in a child process: each snapshot through the connector (parse, validate, resolve
   every trip against the static feed into a :class:`TripState`, serialise it as produced) and
   through the ``derive_calls`` agent's logic (each record parsed back, as the agent consumes
   it, into :class:`TripDeriver` over a plain dict table: the calls made final and the facts
   sent on, serialised); CPU seconds per snapshot and peak RSS. Kafka's
   transport is not in (b): the cycling benchmark measures the broker round trip.
   (c) The connector alone, in a child process, as ``byflyt ingest gtfs-rt`` runs it: its peak
   RSS with every trip live. (b) and (c) settle the heap as the snapshot runner does
   (``connectors/snapshots.settle_heap``) before the first snapshot.
   All of it twice: snapshots in which every trip's delays change, and snapshots in which 5 %
   of the trips change (the rest repeat, re-stamped).
5. Write both, their ratio, and the share of one core at one snapshot per 10 s, to
   ``bench/results/gtfs_rt.json``. The issue's goal: under half a core.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from google.transit import gtfs_realtime_pb2 as rt

from bench.child import peak_mb, run_child
from byflyt.connectors.gtfs_rt import GtfsRtConnector, Snapshot
from byflyt.connectors.snapshots import settle_heap
from byflyt.models import codec_trips
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, load_gtfs
from byflyt.settings import Settings, load_settings

_T = TypeVar("_T")

SERVICE_DATE = date(2025, 10, 27)
# Snapshot times: Monday 12:00 Europe/Oslo, every 10 s.
FIRST_SNAPSHOT = datetime(2025, 10, 27, 11, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
# Hamar → Lillehammer along the east shore of Mjøsa (Hamar, Ringsaker, Lillehammer).
CORRIDOR = ((60.7945, 11.0680), (61.1153, 10.4662))
QUAYS = 120


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write_static(path: Path, trips: int, calls: int) -> None:
    """A synthetic GTFS zip: ``trips`` bus trips of ``calls`` stops, all on SERVICE_DATE."""
    (lat0, lon0), (lat1, lon1) = CORRIDOR
    stops = [
        [
            f"NSR:Quay:9{q:05d}",
            f"Syntetisk stopp {q}",
            round(lat0 + (lat1 - lat0) * q / (QUAYS - 1), 6),
            round(lon0 + (lon1 - lon0) * q / (QUAYS - 1), 6),
            0,
        ]
        for q in range(QUAYS)
    ]
    trip_rows: list[list[object]] = []
    call_rows: list[list[object]] = []
    for t in range(trips):
        trip_id = f"SYN:ServiceJourney:{t:06d}"
        trip_rows.append(["SYN:Line:1", "SYN:DayType:1", trip_id])
        first_quay = t % (QUAYS - calls)
        start = 5 * 3600 + (t * 7) % (18 * 3600)  # departures spread over 05:00–23:00
        for k in range(calls):
            at = start + 120 * k
            call_rows.append([trip_id, stops[first_quay + k][0], _clock(at), _clock(at), k + 1])
    files = {
        "agency.txt": _csv(
            ["agency_id", "agency_name", "agency_url", "agency_timezone"],
            [
                [
                    "SYN",
                    "Syntetisk operatør (byflyt bench)",
                    "https://example.invalid",
                    "Europe/Oslo",
                ]
            ],
        ),
        "stops.txt": _csv(["stop_id", "stop_name", "stop_lat", "stop_lon", "location_type"], stops),
        "routes.txt": _csv(
            ["agency_id", "route_id", "route_short_name", "route_type"],
            [["SYN", "SYN:Line:1", "1", 700]],
        ),
        "trips.txt": _csv(["route_id", "service_id", "trip_id"], trip_rows),
        "stop_times.txt": _csv(
            ["trip_id", "stop_id", "arrival_time", "departure_time", "stop_sequence"], call_rows
        ),
        "calendar_dates.txt": _csv(
            ["service_id", "date", "exception_type"],
            [["SYN:DayType:1", SERVICE_DATE.strftime("%Y%m%d"), 1]],
        ),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def write_snapshots(
    folder: Path, static: StaticFeed, snapshots: int, changed: float = 1.0
) -> list[Path]:
    """``snapshots`` TripUpdates snapshots: every trip, a delay for each of its calls.

    ``changed`` is the share of trips whose delays change from one snapshot to the next (1.0:
    every trip; the rest repeat their update, re-stamped, as live feeds do). Entity ids are
    Entur's, stable from snapshot to snapshot.
    """
    folder.mkdir(parents=True, exist_ok=True)
    calls = static.stop_times.sort_values(["trip_id", "stop_sequence"])
    by_trip = [
        (trip_id, list(zip(group["stop_sequence"], group["stop_id"], strict=True)))
        for trip_id, group in calls.groupby("trip_id", sort=True)
    ]
    paths = []
    for s in range(snapshots):
        taken = FIRST_SNAPSHOT + STEP * s
        message = rt.FeedMessage()
        message.header.gtfs_realtime_version = "2.0"
        message.header.incrementality = rt.FeedHeader.FULL_DATASET
        message.header.timestamp = int(taken.timestamp())
        for n, (trip_id, stops) in enumerate(by_trip):
            entity = message.entity.add()
            entity.id = f"{trip_id}-{SERVICE_DATE.isoformat()}"
            update = entity.trip_update
            update.trip.trip_id = str(trip_id)
            update.trip.start_date = SERVICE_DATE.strftime("%Y%m%d")
            update.timestamp = int(taken.timestamp())
            # A trip changes in a snapshot when it is among this snapshot's ``changed`` share.
            period = max(1, round(1 / changed))
            version = s if changed >= 1.0 else (s + n) // period
            delay = (n * 37 + version * 5) % 420 - 60
            for sequence, stop_id in stops:
                stu = update.stop_time_update.add()
                stu.stop_sequence = int(sequence)
                stu.stop_id = str(stop_id)
                stu.arrival.delay = delay
                stu.departure.delay = delay
        path = folder / f"{s:04d}-trip-updates.pb"
        path.write_bytes(message.SerializeToString())
        paths.append(path)
    return paths


def _baseline(paths: list[Path], *_: Any) -> dict[str, Any]:
    blobs = [p.read_bytes() for p in paths]
    cpu = []
    for blob in blobs:
        started = time.process_time()
        message = rt.FeedMessage()
        message.ParseFromString(blob)
        cpu.append(time.process_time() - started)
        del message
    return {"cpu_seconds": cpu}


def _connector(paths: list[Path], static_dir: Path, geojson: Path | None) -> dict[str, Any]:
    """The connector alone, as ``byflyt ingest gtfs-rt`` runs it: its memory with every trip
    live (the records of a poll are dropped once produced)."""
    static = StaticFeed.load(static_dir)
    connector = GtfsRtConnector(
        Settings(kommuner_geojson=geojson),
        static=static,
        trip_updates="http://127.0.0.1:9/trip-updates",
        clock=lambda: FIRST_SNAPSHOT + timedelta(days=1),
        locator=KommuneLocator.from_file(geojson),
    )
    settle_heap()  # as the snapshot runner does before its first poll
    cpu: list[float] = []
    position: str | None = None
    for path in paths:
        blob = path.read_bytes()
        started = time.process_time()
        result = connector.poll(Snapshot("trip_updates", str(path), blob), position, _no_call)
        cpu.append(time.process_time() - started)
        position = result.checkpoint
        del result
    connector.close()
    return {"cpu_seconds": cpu}


def _byflyt(paths: list[Path], static_dir: Path, geojson: Path | None) -> dict[str, Any]:
    from byflyt.streams.transit_calls import TripDeriver  # the agent's logic

    static = StaticFeed.load(static_dir)
    settings = Settings(kommuner_geojson=geojson)
    connector = GtfsRtConnector(
        settings,
        static=static,
        trip_updates="http://127.0.0.1:9/trip-updates",
        clock=lambda: FIRST_SNAPSHOT + timedelta(days=1),
        locator=KommuneLocator.from_file(geojson),
    )
    deriver = TripDeriver(table={})
    settle_heap()  # as the snapshot runner does before its first poll
    cpu, states, stop_calls, facts, rejected, derived = [], 0, 0, 0, 0, 0
    position: str | None = None
    for path in paths:
        blob = path.read_bytes()
        started = time.process_time()
        result = connector.poll(Snapshot("trip_updates", str(path), blob), position, _no_call)
        for record in result.records:
            # What the derive_calls agent does with each record it consumes.
            if deriver.settled(record.value):
                continue
            derived += 1
            calls, sent = deriver.apply(codec_trips.decode(record.value))
            for call in calls:
                call.to_bytes()
            for fact in sent:
                fact.to_bytes()
            stop_calls += len(calls)
            facts += len(sent)
        cpu.append(time.process_time() - started)
        states += len(result.records)
        rejected += len(result.rejected)
        position = result.checkpoint
    connector.close()
    return {
        "cpu_seconds": cpu,
        "trip_states": states,
        "stop_calls": stop_calls,
        "facts": facts,
        "rejected": rejected,
        "derived": derived,
    }


def _no_call(request: Callable[[], _T], what: str) -> _T:
    raise AssertionError(f"a replayed snapshot needs no HTTP call, not {what}")


def _child(mode: str, work: Path, geojson: Path | None, folder: str) -> dict[str, Any]:
    return run_child("bench.gtfs_rt", mode, str(work), str(geojson or ""), folder)


def _steady(cpu: list[float]) -> float:
    """CPU of a snapshot in steady state: the median after the first.

    In the first snapshot every trip is new and every call is reported once.
    """
    later = sorted(cpu[1:])
    return later[len(later) // 2]


# The two cases: every trip's delays change in every snapshot, and only 5 % of them do.
CASES = {"snapshots": 1.0, "snapshots-5pct": 0.05}


def run(out: Path, trips: int = 10_000, calls: int = 24, snapshots: int = 6) -> dict[str, Any]:
    """Run the whole benchmark; return and write the figures."""
    settings = load_settings()
    geojson = settings.kommuner_geojson  # None: the shipped boundaries
    measured: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {}
    with tempfile.TemporaryDirectory(prefix="byflyt-bench-gtfs-rt-") as tmp:
        work = Path(tmp)
        write_static(work / "static.zip", trips, calls)
        static = load_gtfs(
            work / "static.zip",
            feed="syn",
            region=None,
            locator=KommuneLocator.from_file(geojson),
        )
        static.save(work / "static")
        for folder, changed in CASES.items():
            paths = write_snapshots(work / folder, static, snapshots, changed)
            size_mb = sum(p.stat().st_size for p in paths) / len(paths) / 1024 / 1024
            base = _child("baseline", work, geojson, folder)
            ours = _child("byflyt", work, geojson, folder)
            measured[folder] = (base, ours, size_mb)
        alone = _child("connector", work, geojson, "snapshots")
    base, ours, size_mb = measured["snapshots"]
    base_cpu, our_cpu = _steady(base["cpu_seconds"]), _steady(ours["cpu_seconds"])
    base5, ours5, _ = measured["snapshots-5pct"]
    base5_cpu, our5_cpu = _steady(base5["cpu_seconds"]), _steady(ours5["cpu_seconds"])
    figures = {
        "benchmark": "GTFS-RT trip updates: connector + derive_calls vs bare ParseFromString "
        "(synthetic national-size snapshots)",
        "measured_at": datetime.now(UTC).isoformat(),
        "trip_updates_per_snapshot": trips,
        "stop_time_updates_per_trip": calls,
        "snapshots": snapshots,
        "snapshot_mb": round(size_mb, 2),
        "baseline_cpu_seconds_per_snapshot": round(base_cpu, 4),
        "byflyt_cpu_seconds_per_snapshot": round(our_cpu, 3),
        "byflyt_to_baseline_cpu_ratio": round(our_cpu / base_cpu, 1) if base_cpu else None,
        "byflyt_first_snapshot_cpu_seconds": round(ours["cpu_seconds"][0], 3),
        "share_of_one_core_at_10s": round(our_cpu / 10.0, 3),
        "goal_share_of_one_core": 0.5,
        "byflyt_trip_states": ours["trip_states"],
        "byflyt_stop_calls": ours["stop_calls"],
        "byflyt_rejected_entities": ours["rejected"],
        "byflyt_peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "byflyt_rss_before_mb": round(ours["rss_before_mb"], 1),
        "connector_peak_rss_mb": round(alone["peak_rss_mb"], 1),
        "connector_rss_before_mb": round(alone["rss_before_mb"], 1),
        "connector_cpu_seconds_per_snapshot": round(_steady(alone["cpu_seconds"]), 3),
        "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "changed_5pct": {
            "baseline_cpu_seconds_per_snapshot": round(base5_cpu, 4),
            "byflyt_cpu_seconds_per_snapshot": round(our5_cpu, 4),
            "byflyt_to_baseline_cpu_ratio": round(our5_cpu / base5_cpu, 2) if base5_cpu else None,
            "byflyt_trip_states": ours5["trip_states"],
            "byflyt_stop_calls": ours5["stop_calls"],
            "byflyt_trips_derived": ours5["derived"],
            "byflyt_peak_rss_mb": round(ours5["peak_rss_mb"], 1),
        },
        "cpu_count": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


Row = tuple[str, str, str, str, str, str]


def rows(figures: dict[str, Any]) -> list[Row]:
    """This benchmark's rows of the one table: benchmark, byflyt, baseline, ratio, goal, met?."""
    ratio = figures["byflyt_to_baseline_cpu_ratio"] or 1e9
    rss = figures["connector_peak_rss_mb"]
    five = figures["changed_5pct"]
    ratio5 = five["byflyt_to_baseline_cpu_ratio"] or 1e9
    trips, calls = figures["trip_updates_per_snapshot"], figures["stop_time_updates_per_trip"]
    return [
        (
            f"GTFS-RT connector + derive_calls, {trips:,} trips × {calls}",
            f"{figures['byflyt_cpu_seconds_per_snapshot']} s CPU a snapshot",
            f"ParseFromString {figures['baseline_cpu_seconds_per_snapshot']} s",
            f"{ratio}×",
            "≤ 20×",
            "yes" if ratio <= 20 else "no",
        ),
        (
            f"GTFS-RT connector RSS, {trips:,} live trips",
            f"peak {rss} MB ({figures['connector_rss_before_mb']} MB of it imports)",
            "",
            "",
            "≤ 250 MB",
            "yes" if rss <= 250 else "no",
        ),
        (
            "GTFS-RT, a snapshot in which 5 % of trips changed",
            f"{five['byflyt_cpu_seconds_per_snapshot']} s CPU a snapshot",
            f"ParseFromString {five['baseline_cpu_seconds_per_snapshot']} s",
            f"{ratio5}×",
            "≤ 3×",
            "yes" if ratio5 <= 3 else "no",
        ),
    ]


def main() -> None:
    """Child entry: ``python -m bench.gtfs_rt baseline|byflyt WORK GEOJSON FOLDER``."""
    mode, work = sys.argv[1], Path(sys.argv[2])
    geojson = Path(sys.argv[3]) if sys.argv[3] else None
    before = peak_mb()
    paths = sorted((work / sys.argv[4]).glob("*.pb"))
    static = work / "static"
    runs = {"baseline": _baseline, "connector": _connector, "byflyt": _byflyt}
    result = runs[mode](paths, static, geojson)
    result["peak_rss_mb"] = peak_mb()
    result["rss_before_mb"] = before
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
