"""``byflyt gtfs load`` on real-shaped broken feeds (issue 14, defect 4): it validates.

A GTFS zip is written file by file from the synthetic static feed (samples/gtfs.py) with one
rule broken at a time; what breaks a rule is counted and dropped, and a feed that cannot be used
is refused in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from byflyt.models.gtfs import StaticFeed
from byflyt.samples.gtfs import SYNTHETIC_TRIPS


def rewrite(source: Path, target: Path, **changes: Callable[[str], str]) -> Path:
    """A copy of a GTFS zip with some files' text changed (``stop_times=lambda text: …``)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            text = old.read(name).decode("utf-8")
            change = changes.get(name.removesuffix(".txt"))
            new.writestr(name, change(text) if change else text)
    return target


def gtfs_load(env: dict[str, str], zip_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "byflyt",
            "gtfs",
            "load",
            "--feed",
            "inn",
            "--zip",
            str(zip_path),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_gtfs_load_counts_and_drops_what_breaks_the_rules(
    static_zip: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    def stop_times(text: str) -> str:
        lines = text.splitlines()
        header, rows = lines[0], lines[1:]
        columns = header.split(",")
        trip = columns.index("trip_id")
        first = rows[0]
        # 3,000 duplicates of one row, a row of an unknown trip and one of an unknown stop.
        dupes = [first] * 3000
        ghost = first.split(",")
        ghost[trip] = "INN:ServiceJourney:ghost"
        unknown_stop = first.split(",")
        unknown_stop[columns.index("stop_id")] = "NSR:Quay:0"
        unknown_stop[columns.index("stop_sequence")] = "99"
        backwards = []
        for row in rows:
            cells = row.split(",")
            if (
                cells[trip] == SYNTHETIC_TRIPS["bus_5_day"]
                and cells[columns.index("stop_sequence")] == "1"
            ):
                cells[columns.index("arrival_time")] = "00:01:00"
                cells[columns.index("departure_time")] = "00:01:00"
            backwards.append(",".join(cells))
        return (
            "\n".join([header, *backwards, *dupes, ",".join(ghost), ",".join(unknown_stop)]) + "\n"
        )

    def trips(text: str) -> str:
        lines = text.splitlines()
        return "\n".join([*lines, lines[1]]) + "\n"  # one trip twice

    broken = rewrite(static_zip, tmp_path / "broken.zip", stop_times=stop_times, trips=trips)
    done = gtfs_load(worker_env, broken)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for rule, count in (
        ("duplicate_stop_time", 3000),
        ("unknown_trip", 1),
        ("unknown_stop", 1),
        ("times_backwards", 1),
        ("duplicate_trip_id", 1),
    ):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), out
    static = StaticFeed.load(Path(worker_env["BYFLYT_DATA_DIR"]) / "gtfs" / "inn")
    assert SYNTHETIC_TRIPS["bus_5_day"] not in set(static.trips["trip_id"])
    assert not static.stop_times.duplicated(["trip_id", "stop_sequence"]).any()


def test_gtfs_load_refuses_an_unusable_feed_in_one_line(
    static_zip: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"bergen": {"name": "Bergen", "kommuner": ["4601"]}}))
    env = {**worker_env, "BYFLYT_REGIONS_FILE": str(regions)}
    none_there = gtfs_load(env, static_zip, "--region", "bergen")
    assert none_there.returncode != 0
    assert "0 trips kept" in none_there.stderr
    assert len(none_there.stderr.strip().splitlines()) == 1
    bomb = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(static_zip) as good,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for name in good.namelist():
            out.writestr(name, good.read(name))
        out.writestr("shapes.txt", b"0" * (200 * 1024 * 1024))  # 200 MB in ~200 KB
    refused = gtfs_load(worker_env, bomb)
    assert refused.returncode != 0
    assert "zip bomb" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    missing = rewrite(static_zip, tmp_path / "nostops.zip")
    with zipfile.ZipFile(static_zip) as good, zipfile.ZipFile(missing, "w") as out:
        for name in good.namelist():
            if name != "stops.txt":
                out.writestr(name, good.read(name))
    no_stops = gtfs_load(worker_env, missing)
    assert no_stops.returncode != 0
    assert "no stops.txt" in no_stops.stderr
