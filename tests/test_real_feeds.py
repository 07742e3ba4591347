"""Real feeds as they are (issue 14): one test per defect, in each source's real shape (the
GTFS load's own, defect 4, in tests/test_gtfs_load.py).

SIRI answers are written here in the shape of Entur's Norwegian SIRI profile (``Siri`` in the
SIRI namespace, ``ServiceDelivery`` → ``EstimatedTimetableDelivery`` →
``EstimatedJourneyVersionFrame`` → ``EstimatedVehicleJourney`` with ``RecordedAtTime``,
``FramedVehicleJourneyRef`` and ``RecordedCalls``/``EstimatedCalls``), on the synthetic
Innlandstrafikk static feed (samples/gtfs.py), whose stations have more than one quay.
GTFS-realtime snapshots are built like real ones (tests/gtfs_rt_build.py); GTFS zips are
written file by file; the Trafikkdata answer is served over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from byflyt.connectors.base import PollResult
from byflyt.connectors.gtfs_rt import Snapshot
from byflyt.connectors.siri import SiriConnector, SiriItem
from byflyt.connectors.trafikkdata import TrafikkdataConnector
from byflyt.metrics import Metrics
from byflyt.models.transit import TripState
from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS
from byflyt.settings import Settings
from tests.conftest import Connectors
from tests.gtfs_rt_build import feed, stu, trip_update
from tests.helpers import QuietHandler, direct, http_server, metric_value

MON = date(2025, 10, 27)
RAIL = SYNTHETIC_TRIPS["rail_morning"]  # Lillehammer 06:10 → Moelv → Brumunddal → Hamar → Stange
Q = SYNTHETIC_STOPS
SIRI = "http://www.siri.org.uk/siri"


@pytest.fixture
def siri(connectors: Connectors) -> Callable[..., SiriConnector]:
    return partial(connectors.siri, dataset="BNR")


def read(connector: SiriConnector, data: bytes) -> PollResult:
    return connector.poll(SiriItem(connector.kind, "answer.xml", data), None, direct)


def call(kind: str, quay: str, order: int | None, **times: str) -> str:
    """A RecordedCall or EstimatedCall; ``times`` are element name → text."""
    parts = [f"<StopPointRef>{quay}</StopPointRef>"]
    if order is not None:
        parts.append(f"<Order>{order}</Order>")
    parts += [f"<{name}>{text}</{name}>" for name, text in times.items()]
    return f"<{kind}>{''.join(parts)}</{kind}>"


def journey(
    ref: str,
    recorded: list[str] = (),  # type: ignore[assignment]
    estimated: list[str] = (),  # type: ignore[assignment]
    *,
    recorded_at: str | None = "2025-10-27T07:30:00+01:00",
    extra: bool = False,
    line: str = "BNR:Line:R10",
) -> str:
    """An EstimatedVehicleJourney as Bane NOR publishes it through Entur."""
    head = f"<RecordedAtTime>{recorded_at}</RecordedAtTime>" if recorded_at else ""
    head += f"<LineRef>{line}</LineRef><DirectionRef>0</DirectionRef>"
    if extra:
        head += (
            f"<EstimatedVehicleJourneyCode>{ref}</EstimatedVehicleJourneyCode>"
            "<ExtraJourney>true</ExtraJourney>"
        )
    else:
        head += (
            "<FramedVehicleJourneyRef><DataFrameRef>2025-10-27</DataFrameRef>"
            f"<DatedVehicleJourneyRef>{ref}</DatedVehicleJourneyRef></FramedVehicleJourneyRef>"
        )
    head += "<VehicleMode>rail</VehicleMode><OperatorRef>BNR:Operator:VY</OperatorRef>"
    body = ""
    if recorded:
        body += f"<RecordedCalls>{''.join(recorded)}</RecordedCalls>"
    if estimated:
        body += f"<EstimatedCalls>{''.join(estimated)}</EstimatedCalls>"
    return f"<EstimatedVehicleJourney>{head}{body}</EstimatedVehicleJourney>"


def et_answer(
    *journeys: str,
    at: str = "2025-10-27T07:30:00+01:00",
    namespace: str = SIRI,
) -> bytes:
    """A whole ET answer (``Siri`` → ``ServiceDelivery`` → ``EstimatedTimetableDelivery``)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Siri xmlns="{namespace}" version="2.0">'
        f"<ServiceDelivery><ResponseTimestamp>{at}</ResponseTimestamp>"
        "<ProducerRef>ENT</ProducerRef><MoreData>false</MoreData>"
        f'<EstimatedTimetableDelivery version="2.0"><ResponseTimestamp>{at}</ResponseTimestamp>'
        f"<EstimatedJourneyVersionFrame><RecordedAtTime>{at}</RecordedAtTime>"
        f"{''.join(journeys)}</EstimatedJourneyVersionFrame>"
        "</EstimatedTimetableDelivery></ServiceDelivery></Siri>"
    ).encode()


def vm_answer(at: str = "2025-10-27T07:30:00+01:00") -> bytes:
    """A VM answer with one VehicleActivity at Hamar."""
    return (
        f'<Siri xmlns="{SIRI}" version="2.0"><ServiceDelivery>'
        f"<ResponseTimestamp>{at}</ResponseTimestamp>"
        f'<VehicleMonitoringDelivery version="2.0"><ResponseTimestamp>{at}</ResponseTimestamp>'
        f"<VehicleActivity><RecordedAtTime>{at}</RecordedAtTime>"
        f"<ValidUntilTime>{at}</ValidUntilTime><MonitoredVehicleJourney>"
        "<LineRef>INN:Line:5</LineRef><FramedVehicleJourneyRef>"
        "<DataFrameRef>2025-10-27</DataFrameRef>"
        f"<DatedVehicleJourneyRef>{SYNTHETIC_TRIPS['bus_5_day']}</DatedVehicleJourneyRef>"
        "</FramedVehicleJourneyRef><VehicleMode>bus</VehicleMode>"
        "<VehicleLocation><Longitude>11.0741</Longitude><Latitude>60.7914</Latitude>"
        "</VehicleLocation><VehicleRef>INN:Vehicle:1</VehicleRef>"
        "</MonitoredVehicleJourney></VehicleActivity></VehicleMonitoringDelivery>"
        "</ServiceDelivery></Siri>"
    ).encode()


def poll_gtfs_rt(connectors: Connectors, at: datetime, *entities: Any) -> PollResult:
    """A TripUpdates snapshot of ``entities`` taken ``at``, polled by a connector whose clock
    says ``at``."""
    connector = connectors.gtfs_rt(clock=lambda: at)
    return connector.poll(Snapshot("trip_updates", "tu", feed(at, *entities)), None, direct)


def states(result: PollResult) -> list[TripState]:
    return [TripState.from_bytes(r.value) for r in result.records]


# -- 1. platform changes ---------------------------------------------------------------------
def test_a_call_at_a_sibling_quay_is_the_planned_call_served_there(
    siri: Callable[..., SiriConnector], registry: CollectorRegistry
) -> None:
    recorded = [
        call(
            "RecordedCall",
            Q["lillehammer_rail"],
            1,
            ActualDepartureTime="2025-10-27T06:11:00+01:00",
        ),
        # Moelv and Brumunddal served at platform B, the other quay of the same StopPlace.
        call("RecordedCall", Q["moelv_bus"], 2, ActualDepartureTime="2025-10-27T06:37:00+01:00"),
        call(
            "RecordedCall", Q["brumunddal_bus"], 3, ActualDepartureTime="2025-10-27T06:47:00+01:00"
        ),
    ]
    connector = siri()
    for _ in range(2):  # a second answer repeating the calls does not count them again
        result = read(connector, et_answer(journey(RAIL, recorded)))
        assert not result.rejected
    (state,) = states(result)
    moelv, brumunddal = state.calls[1], state.calls[2]
    assert (moelv.stop_id, brumunddal.stop_id) == (Q["moelv_bus"], Q["brumunddal_bus"])
    assert moelv.actual == datetime(2025, 10, 27, 5, 37, tzinfo=UTC)
    assert brumunddal.actual == datetime(2025, 10, 27, 5, 47, tzinfo=UTC)
    assert (moelv.stop_sequence, moelv.kommune_nr) == (1, "3411")
    assert (
        metric_value(registry, "byflyt_platform_changes_total", feed="inn", connector="siri-et")
        == 2
    )
    assert not metric_value(
        registry, "byflyt_siri_warnings_total", source="siri:BNR", warning="stop_not_on_journey"
    )


def test_gtfs_rt_update_at_a_sibling_quay_matches_by_parent_station(
    connectors: Connectors, registry: CollectorRegistry
) -> None:
    at = datetime(2025, 10, 27, 5, 50, tzinfo=UTC)
    entity = trip_update(
        RAIL,
        [stu(Q["moelv_bus"], 1, delay=120), stu(Q["brumunddal_bus"], 2, delay=60)],
        start_date="20251027",
    )
    result = poll_gtfs_rt(connectors, at, entity)
    assert not result.rejected, result.rejected
    (state,) = states(result)
    assert [c.stop_id for c in state.calls[1:3]] == [Q["moelv_bus"], Q["brumunddal_bus"]]
    assert state.calls[1].delay_seconds == 120
    assert (
        metric_value(registry, "byflyt_platform_changes_total", feed="inn", connector="gtfs-rt")
        == 2
    )


# -- 2. offset-less SIRI times ---------------------------------------------------------------
def test_offset_less_times_are_oslo_local_time_not_an_error_condition(
    siri: Callable[..., SiriConnector],
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The shape of Entur's profile examples: every time local, without an offset.
    recorded = [
        call(
            "RecordedCall",
            Q["lillehammer_rail"],
            1,
            AimedDepartureTime="2025-10-27T06:10:00",
            ActualDepartureTime="2025-10-27T06:12:00",
        ),
    ]
    data = et_answer(
        journey(RAIL, recorded, recorded_at="2025-10-27T07:30:00"), at="2025-10-27T07:30:00"
    )
    connector = siri()
    for _ in range(2):
        result = read(connector, data)
    assert not result.rejected
    (state,) = states(result)
    assert state.snapshot_at == datetime(2025, 10, 27, 6, 30, tzinfo=UTC)  # CET: UTC+1
    assert state.calls[0].actual == datetime(2025, 10, 27, 5, 12, tzinfo=UTC)
    assert state.calls[0].delay_seconds == 120
    labels = {"source": "siri:BNR", "kind": "et"}
    assert metric_value(registry, "byflyt_siri_local_time_answers_total", **labels) == 2
    assert not metric_value(
        registry, "byflyt_siri_answers_total", outcome="error_condition", **labels
    )
    said = [r for r in caplog.records if "Europe/Oslo local time" in r.getMessage()]
    assert len(said) == 1  # once, not per answer


def test_an_unreadable_record_is_rejected_alone_and_nothing_gets_the_wall_clock(
    siri: Callable[..., SiriConnector], tmp_path: Path
) -> None:
    good = journey(
        RAIL,
        [
            call(
                "RecordedCall",
                Q["lillehammer_rail"],
                1,
                ActualDepartureTime="2025-10-27T06:11:00+01:00",
            )
        ],
    )
    unstamped = journey(SYNTHETIC_TRIPS["rail_midday"], [], recorded_at=None)
    (tmp_path / "a.xml").write_bytes(et_answer(good, unstamped, at="soon"))
    connector = siri(replay=tmp_path, endpoint=None)
    item = connector.discover(direct).items[0]
    result = connector.poll(item, None, direct)
    (state,) = states(result)
    assert state.snapshot_at == datetime(2025, 10, 27, 6, 30, tzinfo=UTC)  # its RecordedAtTime
    (rejected,) = result.rejected
    assert rejected.code == "invalid_journey"
    assert rejected.context["rule"] == "no_timestamp"
    assert "'soon'" in rejected.reason


# -- 3. oversized records --------------------------------------------------------------------
def test_a_journey_with_8000_calls_is_rejected_with_an_excerpt_and_the_page_goes_on(
    siri: Callable[..., SiriConnector], registry: CollectorRegistry
) -> None:
    huge = journey(
        "BNR:ServiceJourney:extra-8000",
        estimated=[
            call(
                "EstimatedCall",
                Q["hamar_rail"],
                n + 1,
                AimedDepartureTime="2025-10-27T08:00:00+01:00",
            )
            for n in range(8000)
        ],
        extra=True,
    )
    good = journey(
        RAIL,
        [
            call(
                "RecordedCall",
                Q["lillehammer_rail"],
                1,
                ActualDepartureTime="2025-10-27T06:11:00+01:00",
            )
        ],
    )
    result = read(siri(), et_answer(huge, good))
    assert [s.trip_id for s in states(result)] == [RAIL]
    (rejected,) = result.rejected
    assert rejected.code == "too_many_calls"
    assert "8000 calls, more than the limit of 1000" in rejected.reason
    assert rejected.context["journey"] == "BNR:ServiceJourney:extra-8000"
    assert 0 < len(rejected.raw) < 5000


def test_a_gtfs_rt_trip_with_10000_updates_is_rejected_alone(connectors: Connectors) -> None:
    at = datetime(2025, 10, 27, 5, 50, tzinfo=UTC)
    huge = trip_update(
        "BART:added-huge",
        [stu(Q["hamar_rail"], n, arrival=at) for n in range(10_000)],
        relation="ADDED",
        start_date="20251027",
    )
    good = trip_update(RAIL, [stu(Q["moelv_rail"], 1, delay=30)], start_date="20251027")
    result = poll_gtfs_rt(connectors, at, huge, good)
    assert [s.trip_id for s in states(result)] == [RAIL]
    (rejected,) = result.rejected
    assert rejected.context["rule"] == "too_many_calls"
    assert len(rejected.raw) <= 4096 + 32


# -- 5. GTFS-realtime ADDED trips without route_id -------------------------------------------
def test_added_trips_without_route_id_are_counted_with_their_stops_mode(
    connectors: Connectors, registry: CollectorRegistry
) -> None:
    at = datetime(2025, 10, 27, 9, 0, tzinfo=UTC)
    # The shape of BART's ADDED trips: no route_id, full absolute times at known stops.
    added = trip_update(
        "1539851",
        [
            stu(Q["hamar_bus"], 1, departure=at + timedelta(minutes=5)),
            stu(Q["stange_bus"], 2, arrival=at + timedelta(minutes=25)),
        ],
        relation="ADDED",
        start_date="20251027",
        vehicle_id=None,
    )
    result = poll_gtfs_rt(connectors, at, added)
    assert not result.rejected, result.rejected
    (state,) = states(result)
    assert (state.status, state.mode) == ("added", "bus")
    assert [c.kommune_nr for c in state.calls] == ["3403", "3413"]
    assert (
        metric_value(
            registry, "byflyt_gtfs_rt_added_trips_total", source="gtfs-rt:inn", mode_from="stops"
        )
        == 1
    )


# -- 6. smaller ones -------------------------------------------------------------------------
def test_wrong_namespace_and_the_wrong_kind_of_answer_are_rejected_with_their_reason(
    siri: Callable[..., SiriConnector],
) -> None:
    good = journey(
        RAIL,
        [
            call(
                "RecordedCall",
                Q["lillehammer_rail"],
                1,
                ActualDepartureTime="2025-10-27T06:11:00+01:00",
            )
        ],
    )
    wrong_ns = read(siri(), et_answer(good, namespace="http://www.siri.org.uk/siri/1.3"))
    assert (wrong_ns.records, [r.code for r in wrong_ns.rejected]) == ([], ["siri_wrong_namespace"])
    assert "not SIRI's" in wrong_ns.rejected[0].reason
    vm_to_et = read(siri(), vm_answer())
    assert (vm_to_et.records, [r.code for r in vm_to_et.rejected]) == ([], ["siri_wrong_delivery"])
    assert "VehicleMonitoringDelivery" in vm_to_et.rejected[0].reason
    et_to_vm = read(siri(kind="vm"), et_answer(good))
    assert (et_to_vm.records, [r.code for r in et_to_vm.rejected]) == ([], ["siri_wrong_delivery"])


def test_a_journey_cut_short_counts_the_arrival_at_its_new_last_stop(
    siri: Callable[..., SiriConnector],
) -> None:
    # Cut short at Brumunddal: arrival served, departure and the rest cancelled.
    recorded = [
        call(
            "RecordedCall",
            Q["lillehammer_rail"],
            1,
            ActualDepartureTime="2025-10-27T06:10:00+01:00",
        ),
        call("RecordedCall", Q["moelv_rail"], 2, ActualDepartureTime="2025-10-27T06:35:00+01:00"),
        call(
            "RecordedCall",
            Q["brumunddal_rail"],
            3,
            AimedArrivalTime="2025-10-27T06:45:00+01:00",
            ActualArrivalTime="2025-10-27T06:46:00+01:00",
            ArrivalStatus="arrived",
            AimedDepartureTime="2025-10-27T06:45:00+01:00",
            DepartureStatus="cancelled",
        ),
    ]
    estimated = [
        call(
            "EstimatedCall",
            Q[q],
            n,
            Cancellation="true",
            DepartureStatus="cancelled",
            ArrivalStatus="cancelled",
        )
        for n, q in ((4, "hamar_rail"), (5, "stange_rail"))
    ]
    (state,) = states(read(siri(), et_answer(journey(RAIL, recorded, estimated))))
    brumunddal = state.calls[2]
    assert brumunddal.realtime == "scheduled"
    assert brumunddal.actual == datetime(2025, 10, 27, 5, 46, tzinfo=UTC)
    assert brumunddal.delay_seconds == 60
    assert [c.realtime for c in state.calls[3:]] == ["skipped", "skipped"]


class _Answer(QuietHandler):
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(200, self.body, {"Content-Type": "application/json"})


def test_a_trafikkdata_point_without_a_municipality_says_so(settings: Settings) -> None:
    def point(point_id: str, municipality: Any) -> dict[str, Any]:
        return {
            "id": point_id,
            "name": "Sykkel (syntetisk)",
            "trafficRegistrationType": "BICYCLE",
            "operationalStatus": "OPERATIONAL",
            "location": {
                "coordinates": {"latLon": {"lat": 60.79, "lon": 11.07}},
                "municipality": municipality,
                "county": {"number": 34},
            },
            "dataTimeSpan": {
                "firstData": "2024-01-01T00:00:00+01:00",
                "latestData": {"volumeByHour": "2025-10-27T08:00:00+01:00"},
            },
        }

    points = [point("10001B", None), point("10002B", {"name": "Hamar", "number": 3403})]
    _Answer.body = json.dumps({"data": {"trafficRegistrationPoints": points}}).encode()
    with http_server(_Answer) as url:
        connector = TrafikkdataConnector(
            settings, region="mjosbyen", endpoint=f"{url}/", metrics=Metrics(CollectorRegistry())
        )
        with connector:
            found = connector.discover(direct)
    assert [p.point_id for p in found.items] == ["10002B"]
    (rejected,) = found.rejected
    assert "has no municipality" in rejected.reason
    assert "None" not in rejected.reason
