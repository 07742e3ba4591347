"""A synthetic Innlandstrafikk day in Entur's SIRI 2.0 shape: ET journeys and VM activities.

SYNTHETIC DATA (see :data:`SYNTHETIC_NOTICE`): made-up real-time data for the made-up network of
:mod:`byflyt.samples.gtfs` (its ``NSR:Quay`` ids, ``INN:ServiceJourney`` ids and ``INN:Line``
ids). :func:`synthetic_day` describes Monday 2025-10-27 (UTC+1) as Entur would serve it every
:data:`TICK` from :data:`FIRST_TICK`: per tick, every visible ``EstimatedVehicleJourney`` as it
stands then (calls already passed are ``RecordedCall`` with actual times, the others
``EstimatedCall`` with expected times), and a ``VehicleActivity`` per running vehicle.

The journeys the GTFS-realtime scenario (:mod:`byflyt.samples.gtfs_rt`) also describes follow
its truth: a call it makes final as served gets the same delay as its actual time (no time at
all when the GTFS-realtime feed never gave a delay), its skipped stop is a cancelled call, its
cancelled trip a cancelled journey; so both feeds give the same departures for those calls.

Entur's quirks, by role (:attr:`SiriDay.roles`): ``rail_midday`` cancels Brumunddal through
``DepartureStatus``/``ArrivalStatus`` only and names Hamar by a railway code (``HMR``) rather
than its quay; ``crossing_reverse`` has a bare ``DatedVehicleJourneyRef``; ``bus_5_day`` has no
``Order`` on its calls, times with fractional seconds and an unknown ``Extensions`` block;
``rail_night`` runs on two service dates (``DataFrameRef`` 2025-10-26 and 2025-10-27) across
midnight; ``extra`` is an ``ExtraJourney`` with an ``EstimatedVehicleJourneyCode``;
``rail_replacement`` is scheduled first and then cancelled whole. One VM activity of the
``crossing`` bus has no ``VehicleRef``; the 150 bus reports occupancy.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from byflyt.clock import OSLO
from byflyt.samples.gtfs import SYNTHETIC_STOPS, SYNTHETIC_TRIPS, given_or_synthetic
from byflyt.samples.gtfs_rt import on_the_road, write_synthetic_snapshots
from byflyt.samples.scenario import Scenario, TripTruth
from byflyt.samples.static_trips import read_static_trips

SYNTHETIC_NOTICE = (
    "SYNTETISKE DATA / SYNTHETIC DATA: made-up SIRI ET/VM answers for a made-up Innlandstrafikk "
    "network in Entur's shape, not real-time data from Innlandstrafikk or Entur."
)
NS = "http://www.siri.org.uk/siri"
SERVICE_DATE = date(2025, 10, 27)
FIRST_TICK = datetime(2025, 10, 26, 22, 30, tzinfo=UTC)
LAST_TICK = datetime(2025, 10, 28, 0, 0, tzinfo=UTC)
TICK = timedelta(minutes=30)
VISIBLE_BEFORE = timedelta(minutes=90)
NEAR_STOP = 0.15
EXTRA_CODE = "INN:ServiceJourney:extra-5-1327"
_RAIL_LINES = {"INN:Line:R10"}


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


@dataclass(frozen=True)
class PlannedCall:
    """A call of a planned journey: quay, aimed time, coordinates, the kommune it lies in."""

    stop_id: str
    aimed: datetime
    lat: float
    lon: float
    kommune_nr: str | None


@dataclass
class JourneyPlan:
    """What the generator does with one journey; ``delays[i]`` None: no time ever given."""

    key: str
    trip_id: str
    service_date: date
    line_ref: str
    calls: list[PlannedCall]
    delays: list[int | None]
    first_guess: list[int]
    cancelled_calls: frozenset[int] = frozenset()
    status_cancelled: frozenset[int] = frozenset()
    cancel_from: datetime | None = None
    framed: bool = True
    orders: bool = True
    fractional: bool = False
    extensions: bool = False
    extra: bool = False
    stop_refs: dict[int, str] = field(default_factory=dict)
    vehicle_ref: str | None = None
    occupancy: tuple[str, str] | None = None
    anonymous_tick: int | None = None
    mode: str | None = None
    operator_ref: str = "INN:Operator:synthetic"

    @property
    def vehicle_mode(self) -> str:
        """SIRI ``VehicleMode``: ``mode`` when set, else by the line."""
        return self.mode or ("rail" if self.line_ref in _RAIL_LINES else "bus")

    def due(self, i: int) -> datetime:
        """When call ``i`` is passed: aimed + final delay."""
        return self.calls[i].aimed + timedelta(seconds=self.delays[i] or 0)


@dataclass(frozen=True)
class VehicleTruth:
    """One VM activity: where the generator put the vehicle and in which kommune."""

    tick: datetime
    recorded_at: datetime
    vehicle_ref: str | None
    trip_id: str
    line_ref: str
    lat: float
    lon: float
    kommune_nr: str | None
    occupancy: str | None


@dataclass(frozen=True)
class SiriDay:
    """The day as served: per tick the ET journeys (key → XML) and the VM activities."""

    ticks: tuple[datetime, ...]
    et: tuple[dict[str, bytes], ...]
    vm: tuple[tuple[bytes, ...], ...]
    vehicles: tuple[VehicleTruth, ...]
    plans: dict[str, JourneyPlan]
    roles: dict[str, str]
    gtfs_rt: Scenario | None = None

    def changes(self, tick: int) -> list[bytes]:
        """The journeys that are new or changed at ``tick`` (all of them at tick 0)."""
        before = self.et[tick - 1] if tick > 0 else {}
        return [xml for key, xml in self.et[tick].items() if before.get(key) != xml]


def synthetic_day(static_zip: Path | None = None, *, seed: int = 7) -> SiriDay:
    """The synthetic SIRI day for the synthetic static feed (same arguments, same bytes)."""
    with given_or_synthetic(static_zip) as path, tempfile.TemporaryDirectory() as rt_dir:
        scenario = write_synthetic_snapshots(Path(rt_dir), static_zip=path)
        trips = read_static_trips(path, SERVICE_DATE)
        night = [
            t
            for t in read_static_trips(path, SERVICE_DATE - timedelta(days=1))
            if t.calls[-1].scheduled >= FIRST_TICK
        ]
    rng = random.Random(seed)
    ticks = day_ticks()
    plans: dict[str, JourneyPlan] = {}
    for trip in [*night, *trips]:
        calls = [
            PlannedCall(c.stop_id, c.scheduled, c.lat, c.lon, c.kommune_nr) for c in trip.calls
        ]
        count = len(calls)
        plan = JourneyPlan(
            key=f"{trip.service_date}:{trip.trip_id}",
            trip_id=trip.trip_id,
            service_date=trip.service_date,
            line_ref=trip.route_id,
            calls=calls,
            delays=[rng.randint(-30, 240) for _ in range(count)],
            first_guess=[rng.randint(-60, 120) for _ in range(count)],
            vehicle_ref=f"INN:VehicleRef:{9000 + rng.randint(0, 999)}",
        )
        truth = scenario.trips.get((trip.trip_id, trip.service_date))
        if truth is not None:
            _follow(plan, truth)
        plans[plan.key] = plan
    roles = _roles(plans, rng)
    return serve(plans, roles, ticks, rng, scenario)


def day_ticks() -> tuple[datetime, ...]:
    """The instants the day is served at: every :data:`TICK` from FIRST_TICK to LAST_TICK."""
    ticks = []
    moment = FIRST_TICK
    while moment <= LAST_TICK:
        ticks.append(moment)
        moment += TICK
    return tuple(ticks)


def serve(
    plans: dict[str, JourneyPlan],
    roles: dict[str, str],
    ticks: tuple[datetime, ...],
    rng: random.Random,
    scenario: Scenario | None = None,
) -> SiriDay:
    """The :class:`SiriDay` of ``plans``: per tick, each visible journey and running vehicle."""
    et: list[dict[str, bytes]] = []
    vm: list[tuple[bytes, ...]] = []
    vehicles: list[VehicleTruth] = []
    for index, tick in enumerate(ticks):
        et.append(
            {
                key: etree.tostring(_journey_xml(plan, tick))
                for key, plan in plans.items()
                if tick >= plan.calls[0].aimed - VISIBLE_BEFORE
            }
        )
        activities = []
        for plan in plans.values():
            seen = _vehicle(plan, tick, index, rng)
            if seen is not None:
                vehicles.append(seen)
                activities.append(etree.tostring(_activity_xml(seen)))
        vm.append(tuple(activities))
    return SiriDay(ticks, tuple(et), tuple(vm), tuple(vehicles), plans, roles, scenario)


def _follow(plan: JourneyPlan, truth: TripTruth) -> None:
    """Make a journey the GTFS-realtime scenario also has tell the same final calls."""
    if truth.status == "cancelled":
        plan.cancel_from = plan.calls[0].aimed - timedelta(minutes=22)
    skipped = set()
    for i, call in enumerate(truth.calls):
        if call.status == "served":
            plan.delays[i] = call.delay_seconds
        elif call.status == "skipped":
            skipped.add(i)
    plan.cancelled_calls = frozenset(skipped)
    if truth.trip_id == SYNTHETIC_TRIPS["bus_150_morning"]:
        plan.vehicle_ref = "INN:VehicleRef:1501"
        plan.occupancy = ("manySeatsAvailable", "fewSeatsAvailable")
    elif truth.trip_id == SYNTHETIC_TRIPS["crossing"]:
        plan.vehicle_ref = "INN:VehicleRef:1302"
        plan.anonymous_tick = 0
    elif truth.status == "cancelled":
        plan.vehicle_ref = None


def _roles(plans: dict[str, JourneyPlan], rng: random.Random) -> dict[str, str]:
    def plan_of(role: str) -> JourneyPlan:
        return plans[f"{SERVICE_DATE}:{SYNTHETIC_TRIPS[role]}"]

    midday = plan_of("rail_midday")
    midday.status_cancelled = frozenset({2})
    midday.stop_refs = {3: "HMR"}
    plan_of("crossing_reverse").framed = False
    bus5 = plan_of("bus_5_day")
    bus5.orders, bus5.fractional, bus5.extensions = False, True, True
    start = datetime(2025, 10, 27, 13, 5, tzinfo=UTC)
    hamar, stange = SYNTHETIC_STOPS["hamar_bus"], SYNTHETIC_STOPS["stange_bus"]
    extra = JourneyPlan(
        key=f"{SERVICE_DATE}:{EXTRA_CODE}",
        trip_id=EXTRA_CODE,
        service_date=SERVICE_DATE,
        line_ref="INN:Line:5",
        calls=[
            PlannedCall(hamar, start, 60.7914, 11.0741, "3403"),
            PlannedCall(stange, start + timedelta(minutes=22), 60.7181, 11.1931, "3413"),
        ],
        delays=[rng.randint(0, 120), rng.randint(0, 120)],
        first_guess=[0, 0],
        extra=True,
        vehicle_ref="INN:VehicleRef:5099",
    )
    plans[extra.key] = extra
    return {
        "status_cancelled": midday.key,
        "railway_code": midday.key,
        "bare_ref": plan_of("crossing_reverse").key,
        "no_order": bus5.key,
        "extra": extra.key,
        "cancelled": plan_of("rail_replacement").key,
        "skipped": plan_of("bus_150_morning").key,
        "night": f"{SERVICE_DATE - timedelta(days=1)}:{SYNTHETIC_TRIPS['rail_night']}",
    }


def _time(value: datetime, fractional: bool) -> str:
    return value.astimezone(OSLO).isoformat(timespec="milliseconds" if fractional else "seconds")


def _add(parent: Any, name: str, text: object) -> Any:
    child = etree.SubElement(parent, _q(name))
    child.text = str(text)
    return child


def _journey_xml(plan: JourneyPlan, tick: datetime) -> Any:
    journey = etree.Element(_q("EstimatedVehicleJourney"), nsmap={None: NS})
    _add(journey, "LineRef", plan.line_ref)
    _add(journey, "DirectionRef", "0")
    if plan.extra:
        _add(journey, "EstimatedVehicleJourneyCode", plan.trip_id)
    elif plan.framed:
        framed = etree.SubElement(journey, _q("FramedVehicleJourneyRef"))
        _add(framed, "DataFrameRef", plan.service_date.isoformat())
        _add(framed, "DatedVehicleJourneyRef", plan.trip_id)
    else:
        _add(journey, "DatedVehicleJourneyRef", plan.trip_id)
    _add(journey, "VehicleMode", plan.vehicle_mode)
    cancelled = plan.cancel_from is not None and tick >= plan.cancel_from
    if plan.extra:
        _add(journey, "ExtraJourney", "true")
    if cancelled:
        _add(journey, "Cancellation", "true")
    _add(journey, "OperatorRef", plan.operator_ref)
    if plan.vehicle_ref and not cancelled:
        _add(journey, "VehicleRef", plan.vehicle_ref)
    recorded = etree.SubElement(journey, _q("RecordedCalls"))
    estimated = etree.SubElement(journey, _q("EstimatedCalls"))
    passing = not cancelled
    last = len(plan.calls) - 1
    for i, call in enumerate(plan.calls):
        off = cancelled or i in plan.cancelled_calls or i in plan.status_cancelled
        passed = tick > (call.aimed if off else plan.due(i))
        passing = passing and passed
        parent = recorded if passing else estimated
        element = etree.SubElement(parent, _q("RecordedCall" if passing else "EstimatedCall"))
        _add(element, "StopPointRef", plan.stop_refs.get(i, call.stop_id))
        if plan.orders:
            _add(element, "Order", i + 1)
        # A RecordedCall has no ArrivalStatus/DepartureStatus: once passed, it says Cancellation.
        if cancelled or i in plan.cancelled_calls or (passing and i in plan.status_cancelled):
            _add(element, "Cancellation", "true")
        delay = plan.delays[i]
        if not passing and delay is not None and not off:
            lead = call.aimed - tick
            delay = delay if lead <= timedelta(minutes=20) else plan.first_guess[i]
        for kind, applies in (("Arrival", i > 0), ("Departure", i < last)):
            if not applies:
                continue
            aimed = call.aimed - timedelta(minutes=1 if kind == "Arrival" and i < last else 0)
            _add(element, f"Aimed{kind}Time", _time(aimed, plan.fractional))
            if delay is not None and not off:
                label = "Actual" if passing else "Expected"
                value = aimed + timedelta(seconds=delay)
                _add(element, f"{label}{kind}Time", _time(value, plan.fractional))
            if off and (cancelled or i in plan.status_cancelled) and not passing:
                _add(element, f"{kind}Status", "cancelled")
        if passing and plan.occupancy is not None and not off:
            _add(element, "Occupancy", plan.occupancy[0 if i < len(plan.calls) // 2 else 1])
    _add(journey, "IsCompleteStopSequence", "true")
    if plan.extensions:
        extensions = etree.SubElement(journey, _q("Extensions"))
        etree.SubElement(extensions, "{urn:example:synthetic}Note").text = "synthetic"
    return journey


def _vehicle(
    plan: JourneyPlan, tick: datetime, index: int, rng: random.Random
) -> VehicleTruth | None:
    """Where the journey's vehicle is at ``tick`` (None: not on the road or cancelled)."""
    if plan.vehicle_ref is None or plan.cancel_from is not None:
        return None
    times = [plan.due(i) for i in range(len(plan.calls))]
    where = on_the_road(times, [call.kommune_nr for call in plan.calls], tick)
    if where is None:
        return None
    segment, near, far, fraction = where
    a, b = plan.calls[near], plan.calls[far]
    # Kommuner are small near the stops: between two of them the vehicle waits at its stop.
    fraction = min(fraction, NEAR_STOP) if a.kommune_nr == b.kommune_nr else 0.0
    occupancy = None
    if plan.occupancy is not None:
        occupancy = plan.occupancy[0 if segment < len(plan.calls) // 2 else 1]
    return VehicleTruth(
        tick=tick,
        recorded_at=tick - timedelta(seconds=rng.randint(5, 25)),
        vehicle_ref=None if plan.anonymous_tick == index else plan.vehicle_ref,
        trip_id=plan.trip_id,
        line_ref=plan.line_ref,
        lat=round(a.lat + (b.lat - a.lat) * fraction, 5),
        lon=round(a.lon + (b.lon - a.lon) * fraction, 5),
        kommune_nr=a.kommune_nr,
        occupancy=occupancy,
    )


def _activity_xml(seen: VehicleTruth) -> Any:
    activity = etree.Element(_q("VehicleActivity"), nsmap={None: NS})
    _add(activity, "RecordedAtTime", _time(seen.recorded_at, False))
    _add(activity, "ValidUntilTime", _time(seen.recorded_at + timedelta(minutes=10), False))
    journey = etree.SubElement(activity, _q("MonitoredVehicleJourney"))
    _add(journey, "LineRef", seen.line_ref)
    framed = etree.SubElement(journey, _q("FramedVehicleJourneyRef"))
    _add(framed, "DataFrameRef", seen.tick.astimezone(OSLO).date().isoformat())
    _add(framed, "DatedVehicleJourneyRef", seen.trip_id)
    _add(journey, "VehicleMode", "rail" if seen.line_ref in _RAIL_LINES else "bus")
    location = etree.SubElement(journey, _q("VehicleLocation"))
    _add(location, "Longitude", seen.lon)
    _add(location, "Latitude", seen.lat)
    if seen.occupancy is not None:
        _add(journey, "Occupancy", seen.occupancy)
    if seen.vehicle_ref is not None:
        _add(journey, "VehicleRef", seen.vehicle_ref)
    return activity


# -- whole answers -------------------------------------------------------------------------------
def _head(kind: str, response_at: datetime, more_data: bool) -> tuple[bytes, bytes]:
    stamp = _time(response_at, False)
    delivery = "EstimatedTimetableDelivery" if kind == "et" else "VehicleMonitoringDelivery"
    frame_open = (
        f"<EstimatedJourneyVersionFrame><RecordedAtTime>{stamp}</RecordedAtTime>"
        if kind == "et"
        else ""
    )
    frame_close = "</EstimatedJourneyVersionFrame>" if kind == "et" else ""
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Siri xmlns="{NS}" version="2.0">'
        f"<ServiceDelivery><ResponseTimestamp>{stamp}</ResponseTimestamp>"
        f"<ProducerRef>ENT</ProducerRef><MoreData>{str(more_data).lower()}</MoreData>"
        f'<{delivery} version="2.0"><ResponseTimestamp>{stamp}</ResponseTimestamp>{frame_open}'
    )
    tail = f"{frame_close}</{delivery}></ServiceDelivery></Siri>\n"
    return head.encode(), tail.encode()


def answer(
    kind: str, elements: Iterable[bytes], response_at: datetime, *, more_data: bool = False
) -> bytes:
    """A whole SIRI answer (``kind`` et or vm) holding ``elements`` (serialised journeys)."""
    head, tail = _head(kind, response_at, more_data)
    return head + b"".join(_bare(e) for e in elements) + tail


def _bare(element: bytes) -> bytes:
    """A serialised element without its own namespace declaration (the answer declares it)."""
    return element.replace(f' xmlns="{NS}"'.encode(), b"", 1)


def error_answer(kind: str, response_at: datetime, text: str) -> bytes:
    """An answer whose delivery carries an ``ErrorCondition`` (Status false)."""
    stamp = _time(response_at, False)
    delivery = "EstimatedTimetableDelivery" if kind == "et" else "VehicleMonitoringDelivery"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Siri xmlns="{NS}" version="2.0">'
        f"<ServiceDelivery><ResponseTimestamp>{stamp}</ResponseTimestamp>"
        f'<ProducerRef>ENT</ProducerRef><{delivery} version="2.0">'
        f"<ResponseTimestamp>{stamp}</ResponseTimestamp><Status>false</Status>"
        f"<ErrorCondition><OtherError><ErrorText>{text}</ErrorText></OtherError>"
        f"<Description>{text}</Description></ErrorCondition></{delivery}>"
        f"</ServiceDelivery></Siri>\n"
    ).encode()


def write_replay(directory: Path, day: SiriDay, kind: str = "et") -> list[Path]:
    """Write the day as recorded answers, one file a tick: the full answer, then the changes."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, tick in enumerate(day.ticks):
        elements = day.changes(index) if kind == "et" else list(day.vm[index])
        path = directory / f"{index:04d}-{kind}.xml"
        path.write_bytes(answer(kind, elements, tick))
        paths.append(path)
    return paths


def write_big_et_answer(path: Path, target_bytes: int, day: SiriDay | None = None) -> int:
    """Write one ET answer of about ``target_bytes`` by repeating the day's journeys.

    Streams to the file (the answer is never held in memory); returns the number of journeys.
    """
    day = day or synthetic_day()
    journeys = [_bare(xml) for xml in day.et[-1].values()]
    head, tail = _head("et", day.ticks[-1], False)
    written, count = len(head) + len(tail), 0
    with path.open("wb") as out:
        out.write(head)
        while written < target_bytes:
            for xml in journeys:
                out.write(xml)
                written += len(xml)
                count += 1
        out.write(tail)
    return count
