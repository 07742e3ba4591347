"""Bane NOR's train-number refs and `byflyt transit sources`, on a small national-style zip.

The zip is written here in Entur's national shape (several codespaces in one feed, ids prefixed
by codespace, ``calendar_dates.txt`` only, ``trip_short_name`` = train number on rail trips)
and kept tiny, so the expected table below is worked out by hand:

- INN bus ``b1`` Hamar skysstasjon → Gjøvik and ``b2`` back, every day (2025-10-25/26/27): one
  departure in Mjøsbyen each (the last call is no departure). ``b1`` has the
  ``trip_short_name`` 2101 too: a bus, so never a train.
- VYG rail train 2101: on the Monday ``2101-hverdag`` Oslo S → Hamar (platform 1) → Lillehammer,
  on the Saturday ``2101-lordag`` the same at Hamar platform 2; one departure (Hamar) each.
  Train 2110 Lillehammer → Hamar → Oslo S every day: two departures (Lillehammer, Hamar).
- SJN rail train 2301 Hamar → Elverum every day: one departure (Hamar).
- RUT bus in Oslo only: not in Mjøsbyen.

A mean day over the three dates: VYG 5 trips / 3 = 1.7 and 8 departures / 3 = 2.7; INN 2.0 and
2.0; SJN 1.0 and 1.0. On the Monday alone VYG has 2 trips and 3 departures.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from byflyt.connectors.base import PollResult
from byflyt.connectors.siri import SiriConnector, SiriItem
from byflyt.connectors.trains import TrainIndex, TrainNotResolved, TrainRef, parse_train_ref
from byflyt.metrics import Metrics
from byflyt.models.envelope import Rejected
from byflyt.models.geo import KommuneLocator
from byflyt.models.gtfs import StaticFeed, load_gtfs
from byflyt.models.transit import TripState
from byflyt.samples.gtfs import write_zip
from byflyt.samples.siri import answer
from byflyt.settings import Settings

SAT, SUN, MON = date(2025, 10, 25), date(2025, 10, 26), date(2025, 10, 27)
NS = "http://www.siri.org.uk/siri"

FILES = {
    "agency.txt": """agency_id,agency_name,agency_url,agency_timezone
INN:Authority:INN,Innlandstrafikk,https://innlandstrafikk.no,Europe/Oslo
VYG:Authority:VYG,Vy,https://vy.no,Europe/Oslo
SJN:Authority:SJN,SJ Norge,https://sj.no,Europe/Oslo
RUT:Authority:RUT,Ruter,https://ruter.no,Europe/Oslo
""",
    "stops.txt": """stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station,platform_code
NSR:StopPlace:1,Oslo S,59.9111,10.7528,1,,
NSR:Quay:11,Oslo S,59.9112,10.7529,0,NSR:StopPlace:1,1
NSR:StopPlace:2,Hamar stasjon,60.7920,11.0760,1,,
NSR:Quay:21,Hamar stasjon,60.7921,11.0762,0,NSR:StopPlace:2,1
NSR:Quay:22,Hamar stasjon,60.7919,11.0765,0,NSR:StopPlace:2,2
NSR:StopPlace:3,Lillehammer stasjon,61.1146,10.4606,1,,
NSR:Quay:31,Lillehammer stasjon,61.1145,10.4607,0,NSR:StopPlace:3,1
NSR:StopPlace:4,Gjøvik skysstasjon,60.7975,10.6920,1,,
NSR:Quay:41,Gjøvik skysstasjon,60.7976,10.6921,0,NSR:StopPlace:4,A
NSR:StopPlace:5,Elverum stasjon,60.8820,11.5640,1,,
NSR:Quay:51,Elverum stasjon,60.8821,11.5641,0,NSR:StopPlace:5,1
NSR:StopPlace:6,Hamar skysstasjon,60.7915,11.0740,1,,
NSR:Quay:61,Hamar skysstasjon,60.7914,11.0741,0,NSR:StopPlace:6,A
NSR:Quay:71,Jernbanetorget,59.9115,10.7500,0,,
NSR:Quay:72,Majorstuen,59.9296,10.7150,0,,
""",
    "routes.txt": """agency_id,route_id,route_short_name,route_long_name,route_type
INN:Authority:INN,INN:Line:1,1,Hamar–Gjøvik,700
VYG:Authority:VYG,VYG:Line:R10,R10,Oslo S–Lillehammer,106
SJN:Authority:SJN,SJN:Line:R60,R60,Hamar–Røros,106
RUT:Authority:RUT,RUT:Line:20,20,Jernbanetorget–Majorstuen,700
""",
    "trips.txt": """route_id,service_id,trip_id,trip_short_name,direction_id
INN:Line:1,INN:DayType:Alle,INN:ServiceJourney:b1,2101,0
INN:Line:1,INN:DayType:Alle,INN:ServiceJourney:b2,,1
VYG:Line:R10,VYG:DayType:Hverdag,VYG:ServiceJourney:2101-hverdag,2101,0
VYG:Line:R10,VYG:DayType:Lordag,VYG:ServiceJourney:2101-lordag,2101,0
VYG:Line:R10,VYG:DayType:Alle,VYG:ServiceJourney:2110,2110,1
SJN:Line:R60,SJN:DayType:Alle,SJN:ServiceJourney:2301,2301,0
RUT:Line:20,RUT:DayType:Alle,RUT:ServiceJourney:r1,,0
""",
    "stop_times.txt": """trip_id,arrival_time,departure_time,stop_id,stop_sequence
INN:ServiceJourney:b1,07:00:00,07:00:00,NSR:Quay:61,0
INN:ServiceJourney:b1,07:50:00,07:50:00,NSR:Quay:41,1
INN:ServiceJourney:b2,16:00:00,16:00:00,NSR:Quay:41,0
INN:ServiceJourney:b2,16:50:00,16:50:00,NSR:Quay:61,1
VYG:ServiceJourney:2101-hverdag,06:02:00,06:02:00,NSR:Quay:11,0
VYG:ServiceJourney:2101-hverdag,07:09:00,07:10:00,NSR:Quay:21,1
VYG:ServiceJourney:2101-hverdag,07:54:00,07:54:00,NSR:Quay:31,2
VYG:ServiceJourney:2101-lordag,07:32:00,07:32:00,NSR:Quay:11,0
VYG:ServiceJourney:2101-lordag,08:39:00,08:40:00,NSR:Quay:22,1
VYG:ServiceJourney:2101-lordag,09:24:00,09:24:00,NSR:Quay:31,2
VYG:ServiceJourney:2110,07:15:00,07:15:00,NSR:Quay:31,0
VYG:ServiceJourney:2110,07:59:00,08:00:00,NSR:Quay:21,1
VYG:ServiceJourney:2110,09:07:00,09:07:00,NSR:Quay:11,2
SJN:ServiceJourney:2301,09:12:00,09:12:00,NSR:Quay:21,0
SJN:ServiceJourney:2301,09:40:00,09:40:00,NSR:Quay:51,1
RUT:ServiceJourney:r1,10:00:00,10:00:00,NSR:Quay:71,0
RUT:ServiceJourney:r1,10:12:00,10:12:00,NSR:Quay:72,1
""",
    "calendar_dates.txt": "service_id,date,exception_type\n"
    + "".join(
        f"{service},{day:%Y%m%d},1\n"
        for service, days in {
            "INN:DayType:Alle": (SAT, SUN, MON),
            "VYG:DayType:Hverdag": (MON,),
            "VYG:DayType:Lordag": (SAT,),
            "VYG:DayType:Alle": (SAT, SUN, MON),
            "SJN:DayType:Alle": (SAT, SUN, MON),
            "RUT:DayType:Alle": (SAT, SUN, MON),
        }.items()
        for day in days
    ),
}


@pytest.fixture(scope="module")
def national_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_zip(tmp_path_factory.mktemp("national") / "national.zip", FILES)


@pytest.fixture(scope="module")
def national(national_zip: Path) -> StaticFeed:
    return load_gtfs(national_zip, feed="national", region=None, locator=KommuneLocator.from_file())


# -- refs and the index -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("3520:2018-08-28", TrainRef("3520", date(2018, 8, 28))),
        ("41:2025-10-27", TrainRef("41", MON)),
        ("0041:2025-10-27", TrainRef("41", MON)),
        ("3520", TrainRef("3520", None)),
        (" 3520:2018-08-28 ", TrainRef("3520", date(2018, 8, 28))),
        ("3520:2018-02-30", None),
        ("VYG:ServiceJourney:2101-hverdag", None),
        ("INN:ServiceJourney:rail_midday", None),
        ("3520:28.08.2018", None),
        ("", None),
        (None, None),
    ],
)
def test_train_refs_are_read_strictly(ref: str | None, expected: TrainRef | None) -> None:
    assert parse_train_ref(ref) == expected


def test_a_train_number_resolves_to_the_trip_of_its_day(national: StaticFeed) -> None:
    index = TrainIndex(national)
    assert len(index) == 3  # 2101, 2110, 2301: the bus with "2101" is no train
    assert index.trips("2101") == (
        "VYG:ServiceJourney:2101-hverdag",
        "VYG:ServiceJourney:2101-lordag",
    )
    assert index.resolve("2101", MON) == ("VYG:ServiceJourney:2101-hverdag",)
    assert index.resolve("2101", SAT) == ("VYG:ServiceJourney:2101-lordag",)
    assert index.resolve("02301", SUN) == ("SJN:ServiceJourney:2301",)
    with pytest.raises(TrainNotResolved) as not_running:
        index.resolve("2101", SUN)
    assert not_running.value.rule == "train_not_running"
    assert "runs on 2025-10-25, 2025-10-27" in not_running.value.reason
    with pytest.raises(TrainNotResolved) as unknown:
        index.resolve("9931", MON)
    assert unknown.value.rule == "unknown_train"
    assert "9931" in unknown.value.reason


# -- the connector ----------------------------------------------------------------------------
def _journey(ref: str, calls: list[tuple[str, str, str]], *, framed: str | None = None) -> bytes:
    """A Bane NOR journey: ``calls`` are (StopPointRef, aimed, actual) local times, all passed."""
    if framed is not None:
        head = (
            f"<FramedVehicleJourneyRef><DataFrameRef>{framed}</DataFrameRef>"
            f"<DatedVehicleJourneyRef>{ref}</DatedVehicleJourneyRef></FramedVehicleJourneyRef>"
        )
    else:
        head = f"<DatedVehicleJourneyRef>{ref}</DatedVehicleJourneyRef>"
    body = "".join(
        f"<RecordedCall><StopPointRef>{stop}</StopPointRef><Order>{n}</Order>"
        f"<AimedDepartureTime>{aimed}</AimedDepartureTime>"
        f"<ActualDepartureTime>{actual}</ActualDepartureTime></RecordedCall>"
        for n, (stop, aimed, actual) in enumerate(calls, start=1)
    )
    return (
        f'<EstimatedVehicleJourney xmlns="{NS}"><LineRef>R10</LineRef>{head}'
        f"<VehicleMode>rail</VehicleMode><OperatorRef>BNR</OperatorRef>"
        f"<VehicleRef>{ref.split(':')[0]}</VehicleRef><RecordedCalls>{body}</RecordedCalls>"
        f"</EstimatedVehicleJourney>"
    ).encode()


@pytest.fixture
def bnr(settings: Settings, national: StaticFeed) -> Iterator[tuple[SiriConnector, Metrics]]:
    metrics = Metrics(CollectorRegistry())
    connector = SiriConnector(
        settings,
        kind="et",
        dataset="BNR",
        static=national,
        endpoint="http://127.0.0.1:9/realtime/v1/rest",
        metrics=metrics,
    )
    yield connector, metrics
    connector.close()


def _read(connector: SiriConnector, *journeys: bytes) -> PollResult:
    at = datetime.fromisoformat("2025-10-27T23:00:00+01:00")
    data = answer("et", journeys, at)
    return connector.poll(SiriItem("et", "bnr.xml", data), None, lambda request, _: request())


def test_bnr_journeys_become_the_static_trips_of_their_day(
    bnr: tuple[SiriConnector, Metrics],
) -> None:
    connector, metrics = bnr
    monday = _journey(
        "2101:2025-10-27",
        [
            ("NSR:Quay:11", "2025-10-27T06:02:00", "2025-10-27T06:03:00"),
            ("HMR", "2025-10-27T07:10:00", "2025-10-27T07:14:00"),  # a railway station code
            ("NSR:Quay:31", "2025-10-27T07:54:00", "2025-10-27T07:55:00"),
        ],
        framed="2025-10-27",
    )
    saturday = _journey(  # the same train number, bare ref, served at the other platform
        "2101:2025-10-25",
        [
            ("NSR:Quay:11", "2025-10-25T07:32:00", "2025-10-25T07:32:00"),
            ("NSR:Quay:21", "2025-10-25T08:40:00", "2025-10-25T08:41:00"),
            ("NSR:Quay:31", "2025-10-25T09:24:00", "2025-10-25T09:25:00"),
        ],
    )
    sunday = _journey(
        "2101:2025-10-26", [("NSR:Quay:11", "2025-10-26T07:32:00", "2025-10-26T07:32:00")]
    )
    freight = _journey(
        "9931:2025-10-27", [("NSR:Quay:21", "2025-10-27T12:00:00", "2025-10-27T12:01:00")]
    )
    result = _read(connector, monday, saturday, sunday, freight)
    states = {s.service_date: s for s in (TripState.from_bytes(r.value) for r in result.records)}
    assert set(states) == {MON, SAT}
    mon, sat = states[MON], states[SAT]
    assert (mon.trip_id, mon.feed, mon.mode, mon.route_id) == (
        "VYG:ServiceJourney:2101-hverdag",
        "national",
        "rail",
        "VYG:Line:R10",
    )
    assert [c.stop_id for c in mon.calls] == ["NSR:Quay:11", "NSR:Quay:21", "NSR:Quay:31"]
    assert [c.kommune_nr for c in mon.calls] == ["0301", "3403", "3405"]
    assert [c.delay_seconds for c in mon.calls] == [60, 240, 60]
    assert sat.trip_id == "VYG:ServiceJourney:2101-lordag"
    assert sat.calls[1].stop_id == "NSR:Quay:21"  # planned at platform 2, served at 1
    rejected: list[Rejected] = list(result.rejected)
    reasons = sorted((r.code, r.context["rule"], r.context["journey"]) for r in rejected)
    assert reasons == [
        ("invalid_journey", "train_not_running", "2101:2025-10-26"),
        ("invalid_journey", "unknown_train", "9931:2025-10-27"),
    ]
    assert all(r.reason.startswith(r.context["rule"] + ": train ") for r in rejected)

    def count(outcome: str) -> float:
        labels = {"source": "siri:BNR", "outcome": outcome}
        return metrics.registry.get_sample_value("byflyt_siri_train_refs_total", labels) or 0.0

    assert [count(o) for o in ("resolved", "unknown_train", "train_not_running")] == [2, 1, 1]
    warnings = {"source": "siri:BNR", "warning": "stop_ref_mismatch"}
    assert metrics.registry.get_sample_value("byflyt_siri_warnings_total", warnings) == 1
    changes = {"feed": "national", "connector": "siri-et"}
    assert metrics.registry.get_sample_value("byflyt_platform_changes_total", changes) == 1


# -- transit sources --------------------------------------------------------------------------
EXPECTED_CSV = """codespace,mode,realtime_dataset,routes,stops,trips_a_day,departures_a_day
VYG,rail,BNR,1,2,1.7,2.7
INN,bus,INN,1,2,2.0,2.0
SJN,rail,BNR,1,2,1.0,1.0
"""
MONDAY_CSV = """codespace,mode,realtime_dataset,routes,stops,trips_a_day,departures_a_day
VYG,rail,BNR,1,2,2.0,3.0
INN,bus,INN,1,2,2.0,2.0
SJN,rail,BNR,1,2,1.0,1.0
"""


def _byflyt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byflyt", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_transit_sources_lists_every_operator_of_the_region(
    national_zip: Path, settings: Settings, worker_env: dict[str, str]
) -> None:
    sources = ["transit", "sources", "--region", "mjosbyen"]
    done = _byflyt(worker_env, *sources, "--zip", str(national_zip), "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED_CSV
    assert "a day is the mean of 2025-10-25 – 2025-10-27" in done.stderr
    monday = ["--date", "2025-10-27", "--format", "json"]
    done = _byflyt(worker_env, *sources, "--zip", str(national_zip), *monday)
    assert done.returncode == 0, done.stderr
    want = list(csv.DictReader(io.StringIO(MONDAY_CSV)))
    got = json.loads(done.stdout)
    assert [{k: str(v) for k, v in row.items()} for row in got] == want
    # The same from a feed loaded for the region, as a table.
    load = ["gtfs", "load", "--feed", "NATIONAL", "--zip", str(national_zip)]
    done = _byflyt(worker_env, *load, "--region", "mjosbyen")
    assert done.returncode == 0, done.stderr
    done = _byflyt(worker_env, *sources, "--feed", "national")
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert lines[0] == list(next(csv.reader(io.StringIO(EXPECTED_CSV))))
    assert lines[2:] == [
        ["VYG", "rail", "BNR", "1", "2", "1.7", "2.7"],
        ["INN", "bus", "INN", "1", "2", "2", "2"],
        ["SJN", "rail", "BNR", "1", "2", "1", "1"],
    ]
    both = _byflyt(worker_env, *sources, "--feed", "national", "--zip", str(national_zip))
    assert both.returncode == 2
    assert "give exactly one of them" in both.stderr
    assert "Traceback" not in both.stderr
