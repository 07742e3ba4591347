"""The hostile-input corpus (tests/corpus/cases.py), run through the commands a user runs.

One command per source plays every case of that source at once: ``byflyt ingest siri-et
--replay DIR`` and ``byflyt ingest gtfs-rt --replay DIR`` over the case files, ``byflyt ingest
trafikkdata`` against a local server answering from the Trafikkdata case files, and one
``byflyt gtfs load`` per zip. For every case: the dead-letter reason codes it must produce
(told apart by the file or point they name), one clear reason, no traceback, and the good
records beside the bad ones still arriving. The SIRI run also proves that external entities
never read a file or open a connection, and bounds the command's peak memory (its own
``getrusage``, through ``os.wait4``) while it plays a 10,000-call journey and entity bombs.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import zipfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from byflyt.models.counts import CountObservation
from byflyt.models.envelope import Rejected
from byflyt.models.transit import TripState
from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS
from byflyt.settings import Settings
from tests.corpus.cases import GTFS, GTFS_RT, HERE, SIRI, TRAFIKKDATA, Case
from tests.gtfs_rt_build import feed, stu, trip_update
from tests.helpers import QuietHandler, http_server
from tests.kafka_util import read_all

BYFLYT = (sys.executable, "-m", "byflyt")
PEAK_RSS_LIMIT_MB = 700  # the command's imports (pandas, shapely, lxml) take ~250 MB
HAMAR, STANGE = SYNTHETIC_STOPS["hamar_bus"], SYNTHETIC_STOPS["stange_bus"]


def run(env: dict[str, str], *args: str) -> tuple[int, str, str, int]:
    """Run ``byflyt args``: exit code, stdout, stderr and the child's own peak RSS in kB."""
    with subprocess.Popen(
        [*BYFLYT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=lambda: out.append(proc.stdout.read())),  # type: ignore[union-attr]
            threading.Thread(target=lambda: err.append(proc.stderr.read())),  # type: ignore[union-attr]
        ]
        for reader in readers:
            reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        for reader in readers:
            reader.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, out[0], err[0], usage.ru_maxrss


def dead_letters(settings: Settings) -> list[Rejected]:
    return [
        Rejected.from_bytes(v) for _, v in read_all(settings, settings.topic("dlq.rejected")) if v
    ]


def assert_ran_within_limits(code: int, err: str, peak_kb: int) -> None:
    """A replay ended well: exit 0, no traceback, peak RSS under the limit."""
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    assert peak_kb / 1024 < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_kb / 1024:.0f} MB"


def assert_transit_cases(settings: Settings, letters: list[Rejected], cases: list[Case]) -> None:
    """Every case of a transit replay ended as its row says (:func:`check`), with its trips on
    ``transit.trip-updates`` and its dead letters (by file), and no dead letter is of no case."""
    good = {
        TripState.from_bytes(v).trip_id
        for _, v in read_all(settings, settings.topic("transit.trip-updates"))
        if v
    }
    by_file: dict[str, list[Rejected]] = defaultdict(list)
    for r in letters:
        by_file[Path(r.context.get("location", "?")).stem].append(r)
    problems: list[str] = []
    for case in cases:
        check(case, by_file.pop(case.name, []), good, problems)
    assert not by_file, f"dead letters of no case: {dict(by_file)}"
    assert not problems, "\n".join(problems)


def check(case: Case, found: list[Rejected], good: set[str], problems: list[str]) -> None:
    """Compare a case's outcome with its row of the table; describe any difference."""
    codes = sorted(r.code for r in found)
    if codes != sorted(case.rejected):
        problems.append(f"{case.name}: dead letters {codes}, expected {sorted(case.rejected)}")
    if case.says and found and not any(case.says in r.reason for r in found):
        problems.append(f"{case.name}: no reason says {case.says!r}: {[r.reason for r in found]}")
    for r in found:
        if "Traceback" in r.reason or not r.reason.strip():
            problems.append(f"{case.name}: unclear reason {r.reason!r}")
        if len(r.raw) > 4200:
            problems.append(f"{case.name}: unbounded excerpt ({len(r.raw)} chars)")
    missing = [g for g in case.good if g not in good]
    if missing:
        problems.append(f"{case.name}: good records missing: {missing}")


def load_static(env: dict[str, str], static_zip: Path) -> None:
    code, _, err, _ = run(env, "gtfs", "load", "--feed", "inn", "--zip", str(static_zip))
    assert code == 0, err


# -- SIRI ----------------------------------------------------------------------------------------
def good_journey(name: str) -> str:
    """The good extra journey that rides beside each case's bad part."""
    text = (HERE / "siri" / "s14_local_times.xml").read_text()
    start = text.index("<EstimatedVehicleJourney>")
    end = text.index("</EstimatedVehicleJourney>") + len("</EstimatedVehicleJourney>")
    return text[start:end].replace("good-s14", f"good-{name}")


def wrap(body: str, head: str = "") -> str:
    text = (HERE / "siri" / "s14_local_times.xml").read_text()
    start = text.index("<EstimatedVehicleJourney>")
    end = text.index("</EstimatedVehicleJourney>") + len("</EstimatedVehicleJourney>")
    return text[:start].replace("<Siri ", f"{head}<Siri ", 1) + body + text[end:]


def siri_generated(folder: Path, secret: Path, port: int) -> None:
    """The cases too large for git or that name this machine's temp file and port."""
    entity = "A" * 100_000
    quadratic = f'<!DOCTYPE Siri [<!ENTITY a "{entity}">]>\n'
    (folder / "s06_quadratic_blowup.xml").write_text(
        wrap(good_journey("s06").replace("good-s06", "&a;" * 2000), quadratic)
    )
    xxe_file = f'<!DOCTYPE Siri [<!ENTITY leak SYSTEM "file://{secret}">]>\n'
    (folder / "s07_xxe_file.xml").write_text(
        wrap(good_journey("s07").replace("good-s07", "&leak;"), xxe_file)
    )
    xxe_net = f'<!DOCTYPE Siri [<!ENTITY net SYSTEM "http://127.0.0.1:{port}/x">]>\n'
    (folder / "s08_xxe_network.xml").write_text(
        wrap(good_journey("s08").replace("good-s08", "&net;"), xxe_net)
    )
    nested = "<Extensions>" + "<a>" * 10_000 + "</a>" * 10_000 + "</Extensions>"
    bad = good_journey("s10-nested").replace(
        "</EstimatedVehicleJourney>", nested + "</EstimatedVehicleJourney>"
    )
    (folder / "s10_deeply_nested.xml").write_text(wrap(good_journey("s10") + bad))
    call = (
        "<EstimatedCall><StopPointRef>{q}</StopPointRef><Order>{n}</Order>"
        "<AimedDepartureTime>2025-10-27T11:00:00</AimedDepartureTime></EstimatedCall>"
    )
    calls = "".join(call.format(q=HAMAR, n=n + 1) for n in range(10_000))
    huge = good_journey("s13-huge").replace(
        "</RecordedCalls>", f"</RecordedCalls><EstimatedCalls>{calls}</EstimatedCalls>"
    )
    (folder / "s13_journey_10000_calls.xml").write_text(wrap(huge + good_journey("s13")))


class _Listener:
    """A TCP port that records whether anything ever connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.kafka
def test_siri_corpus(
    static_zip: Path, settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "siri"
    folder.mkdir()
    for case in SIRI:
        source = HERE / "siri" / f"{case.name}.xml"
        if source.exists():
            (folder / source.name).write_bytes(source.read_bytes())
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    listener = _Listener()
    try:
        siri_generated(folder, secret, listener.port)
        assert {p.stem for p in folder.iterdir()} == {c.name for c in SIRI}
        load_static(worker_env, static_zip)
        code, out, err, peak_kb = run(
            worker_env, "ingest", "siri-et", "--dataset", "INN", "--replay", str(folder)
        )
    finally:
        listener.close()
    assert_ran_within_limits(code, err, peak_kb)
    assert listener.connections == 0  # XXE never opened a connection
    letters = dead_letters(settings)
    assert not any("TOP-SECRET" in r.raw or "TOP-SECRET" in r.reason for r in letters)
    assert "TOP-SECRET" not in out + err
    assert_transit_cases(settings, letters, SIRI)


# -- GTFS-realtime -------------------------------------------------------------------------------
def good_added(name: str, at: datetime) -> Any:
    return trip_update(
        f"good-{name}",
        [
            stu(HAMAR, 0, departure=at + timedelta(minutes=5)),
            stu(STANGE, 1, arrival=at + timedelta(minutes=25)),
        ],
        relation="ADDED",
        route_id="INN:Line:5",
        start_date="20251027",
    )


def gtfs_rt_cases(folder: Path) -> None:
    """Every GTFS-realtime case as a recorded snapshot, header times rising file by file."""
    base = datetime(2025, 10, 27, 9, 0, tzinfo=UTC)
    at = {c.name: base + timedelta(minutes=i) for i, c in enumerate(GTFS_RT)}
    rail = SYNTHETIC_TRIPS["rail_morning"]

    def snapshot(name: str, *bad: Any) -> bytes:
        return feed(at[name], *bad, good_added(name.split("_")[0], at[name]))

    valid = snapshot("g02_truncated")
    random.seed(14)
    ms = int(at["g06_ms_entity_time"].timestamp()) * 1000
    files = {
        "g01_empty": b"",
        "g02_truncated": valid[: len(valid) // 2 + 3],
        "g03_random_bytes": bytes(random.randrange(256) for _ in range(512)),
        "g04_html_error_page": b"<!DOCTYPE html><html><body><h1>503</h1></body></html>",
        "g05_ms_header": _ms_header(at["g05_ms_header"]),
        "g06_ms_entity_time": _with_ms_entity(at["g06_ms_entity_time"], ms),
        "g07_duplicate_entity_ids": feed(
            at["g07_duplicate_entity_ids"],
            good_added("g07", at["g07_duplicate_entity_ids"]),
            trip_update(
                rail,
                [stu(SYNTHETIC_STOPS["moelv_rail"], 1, delay=60)],
                entity_id="good-g07",
                start_date="20251027",
            ),
        ),
        "g08_added_without_route": feed(
            at["g08_added_without_route"],
            good_added("g08", at["g08_added_without_route"]),
            trip_update(
                "bart-added-g08",
                [
                    stu(HAMAR, 1, departure=at["g08_added_without_route"]),
                    stu(STANGE, 2, arrival=at["g08_added_without_route"] + timedelta(minutes=20)),
                ],
                relation="ADDED",
                vehicle_id=None,
            ),
        ),
        "g09_trip_10000_updates": snapshot(
            "g09_trip_10000_updates",
            trip_update(
                "huge-g09",
                [stu(HAMAR, n, arrival=at["g09_trip_10000_updates"]) for n in range(10_000)],
                relation="ADDED",
            ),
        ),
        "g10_unknown_trip": snapshot(
            "g10_unknown_trip", trip_update("INN:ServiceJourney:nowhere", [stu(HAMAR, 0, delay=60)])
        ),
        "g11_times_decrease": snapshot(
            "g11_times_decrease",
            trip_update(
                "back-g11",
                [
                    stu(HAMAR, 0, departure=at["g11_times_decrease"]),
                    stu(STANGE, 1, arrival=at["g11_times_decrease"] - timedelta(hours=1)),
                ],
                relation="ADDED",
            ),
        ),
        "g12_far_future_header": feed(datetime(2099, 1, 1, tzinfo=UTC), good_added("g12", base)),
        "g13_far_past_header": feed(datetime(2001, 1, 1, tzinfo=UTC), good_added("g13", base)),
        "g14_unknown_stop": snapshot(
            "g14_unknown_stop",
            trip_update(
                "stop-g14",
                [stu("NSR:Quay:0", 0, departure=at["g14_unknown_stop"])],
                relation="ADDED",
            ),
        ),
    }
    for name, data in files.items():
        (folder / f"{name}.pb").write_bytes(data)


def _ms_header(at: datetime) -> bytes:
    from google.transit import gtfs_realtime_pb2 as rt

    message = rt.FeedMessage()
    message.ParseFromString(feed(at, good_added("g05", at)))
    message.header.timestamp = int(at.timestamp()) * 1000
    return message.SerializeToString()


def _with_ms_entity(at: datetime, ms: int) -> bytes:
    from google.transit import gtfs_realtime_pb2 as rt

    bad = trip_update("ms-g06", [stu(HAMAR, 0, departure=at)], relation="ADDED")
    bad.trip_update.stop_time_update[0].departure.time = ms
    message = rt.FeedMessage()
    message.ParseFromString(feed(at, bad, good_added("g06", at)))
    return message.SerializeToString()


@pytest.mark.kafka
def test_gtfs_rt_corpus(
    static_zip: Path, settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "gtfs-rt"
    folder.mkdir()
    gtfs_rt_cases(folder)
    load_static(worker_env, static_zip)
    code, _out, err, peak_kb = run(
        worker_env, "ingest", "gtfs-rt", "--feed", "inn", "--replay", str(folder)
    )
    assert_ran_within_limits(code, err, peak_kb)
    assert_transit_cases(settings, dead_letters(settings), GTFS_RT)


# -- Trafikkdata ---------------------------------------------------------------------------------
class _Trafikkdata(QuietHandler):
    """Answers byflyt's two queries from the corpus files, as the API does (HTTP 200)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        folder = HERE / "trafikkdata"
        if "trafficRegistrationPoints" in body["query"]:
            path = folder / "points.json"
        else:
            point = body["variables"]["id"]
            path = next(folder.glob(f"hours-{point}.*"))
        kind = "text/html; charset=utf-8" if path.suffix == ".html" else "application/json"
        self.reply(200, path.read_bytes(), {"Content-Type": kind})


@pytest.mark.kafka
def test_trafikkdata_corpus(settings: Settings, worker_env: dict[str, str]) -> None:
    with http_server(_Trafikkdata) as url:
        code, _out, err, _ = run(
            worker_env,
            "ingest",
            "trafikkdata",
            "--region",
            "mjosbyen",
            "--endpoint",
            f"{url}/",
            "--from",
            "2025-10-27",
            "--to",
            "2025-10-28",
        )
    assert code == 1, err[-3000:]  # two points failed; the rest was delivered
    assert "Traceback" not in err
    assert "incomplete: 10004B1, 10005B1, 10006B1 failed" in err
    counts = [
        CountObservation.from_bytes(v)
        for _, v in read_all(settings, settings.topic("bike.counts"))
        if v
    ]
    good = {c.point_id for c in counts if c.volume is not None}
    volumes = {(c.point_id, c.start.hour, c.volume) for c in counts if c.volume is not None}
    assert volumes == {("10001B1", 6, 12), ("10001B1", 10, 20), ("10007B1", 6, 31)}
    letters = dead_letters(settings)
    problems: list[str] = []
    for case in TRAFIKKDATA:
        if case.failed and not case.rejected:
            if case.says not in err:
                problems.append(f"{case.name}: the log does not say {case.says!r}")
            check(case, [], good, problems)
            continue
        found = [
            r for r in letters if case.says and case.says in r.reason and r.code in case.rejected
        ]
        check(case, found[:1] if case.rejected else [], good, problems)
    assert len(letters) == sum(len(c.rejected) for c in TRAFIKKDATA), [r.reason for r in letters]
    assert not problems, "\n".join(problems)


# -- GTFS zips -----------------------------------------------------------------------------------
def gtfs_cases(static_zip: Path, folder: Path) -> dict[str, Path]:
    with zipfile.ZipFile(static_zip) as source:
        members = {n: source.read(n) for n in source.namelist()}

    def write(name: str, files: dict[str, bytes], *, raw: bytes | None = None) -> Path:
        path = folder / f"{name}.zip"
        if raw is not None:
            path.write_bytes(raw)
            return path
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            for member, data in files.items():
                out.writestr(member, data)
        return path

    def edit(member: str, change: Any) -> dict[str, bytes]:
        return {**members, member: change(members[member].decode()).encode()}

    random.seed(14)
    whole = static_zip.read_bytes()
    stop_times = members["stop_times.txt"].decode().splitlines()
    header = stop_times[0].split(",")
    no_departure = (
        "\n".join(
            ",".join(
                c for i, c in enumerate(line.split(",")) if i != header.index("departure_time")
            )
            for line in stop_times
        )
        + "\n"
    )
    bad_sequence = [stop_times[0]] + [
        ",".join(
            "x" if i == header.index("stop_sequence") and n == 0 else c
            for i, c in enumerate(line.split(","))
        )
        for n, line in enumerate(stop_times[1:])
    ]
    return {
        "z01_empty": write("z01_empty", {}, raw=b""),
        "z02_random_bytes": write(
            "z02_random_bytes", {}, raw=bytes(random.randrange(256) for _ in range(4096))
        ),
        "z03_truncated": write("z03_truncated", {}, raw=whole[: len(whole) // 2]),
        "z04_zip_bomb": write(
            "z04_zip_bomb", {**members, "shapes.txt": b"0" * (300 * 1024 * 1024)}
        ),
        "z05_no_stops": write(
            "z05_no_stops", {k: v for k, v in members.items() if k != "stops.txt"}
        ),
        "z06_missing_column": write(
            "z06_missing_column", {**members, "stop_times.txt": no_departure.encode()}
        ),
        "z07_none_in_region": write("z07_none_in_region", members),
        "z08_duplicates": write(
            "z08_duplicates",
            {
                **edit("stop_times.txt", lambda t: t + "\n".join(t.splitlines()[1:50]) + "\n"),
                "stops.txt": (
                    members["stops.txt"].decode()
                    + members["stops.txt"].decode().splitlines()[1]
                    + "\n"
                ).encode(),
            },
        ),
        "z09_bad_sequence": write(
            "z09_bad_sequence",
            {**members, "stop_times.txt": ("\n".join(bad_sequence) + "\n").encode()},
        ),
    }


def test_gtfs_zip_corpus(static_zip: Path, worker_env: dict[str, str], tmp_path: Path) -> None:
    zips = gtfs_cases(static_zip, tmp_path)
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"bergen": {"name": "Bergen", "kommuner": ["4601"]}}))
    env = {**worker_env, "BYFLYT_REGIONS_FILE": str(regions)}
    problems: list[str] = []
    for case in GTFS:
        args = ["gtfs", "load", "--feed", "inn", "--zip", str(zips[case.name])]
        if case.name == "z07_none_in_region":
            args += ["--region", "bergen"]
        code, out, err, peak_kb = run(env, *args)
        if "Traceback" in err or peak_kb / 1024 > PEAK_RSS_LIMIT_MB:
            problems.append(f"{case.name}: traceback or {peak_kb / 1024:.0f} MB")
        if case.says:  # refused whole: one line, non-zero exit
            if code == 0 or case.says not in err or len(err.strip().splitlines()) != 1:
                problems.append(f"{case.name}: exit {code}, stderr {err.strip()[-500:]!r}")
        else:  # kept, with the broken rows counted per rule
            rules = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
            if code != 0 or not set(case.good) <= rules:
                problems.append(f"{case.name}: exit {code}, rules {rules}, {err[-500:]!r}")
    assert not problems, "\n".join(problems)
