"""SIRI ET call derivation: one ``EstimatedVehicleJourney`` as a whole-trip record.

A journey read by :mod:`byflyt.connectors.siri_elements` becomes a whole-trip record through
:class:`JourneyResolver`; one that cannot be used raises :class:`JourneyRejected`. ET
semantics, mapped onto the GTFS-realtime connector's :class:`TripState` so every agent
downstream is shared:

- the journey is ``FramedVehicleJourneyRef`` (``DataFrameRef`` = service date,
  ``DatedVehicleJourneyRef`` = the GTFS ``trip_id``), a bare ``DatedVehicleJourneyRef`` (service
  date: the running date of the static trip nearest to its first aimed time) or, for an
  ``ExtraJourney``, its ``EstimatedVehicleJourneyCode`` (status ``added``); a ref that is a
  train number and date (Bane NOR, ``3520:2018-08-28``) is the static rail trip with that
  ``trip_short_name`` running that day (:mod:`byflyt.connectors.trains`); one that names no
  such trip is rejected (``unknown_train``, ``train_not_running``);
- ``Cancellation`` on the journey: status ``cancelled``, every call of the trip cancelled;
- a known journey is sent whole, on the static feed's calls (stop order, kommune of the quay); a
  SIRI call is matched by ``Order`` (1-based) when that static call has its ``StopPointRef`` (or
  the ref is not a quay the feed knows: railway codes, operator ids), else by ``StopPointRef``
  forward from the previous match; calls without ``Order`` are matched by stop;
- a ``RecordedCall`` is final: served at its ``Actual…`` time (departure; arrival at the last
  stop), else its ``Expected…`` time, else its aimed time with no delay known; an
  ``EstimatedCall`` is not final, its ``Expected…`` time only gives the predicted delay
  (``actual`` stays None so that a prediction already in the past is not counted as served);
- ``Cancellation`` on a call, or its ``DepartureStatus`` (``ArrivalStatus`` at the last stop)
  ``cancelled``: the call is cancelled (``skipped``);
- scheduled = ``AimedDepartureTime`` (``AimedArrivalTime`` at the last stop), else the static
  time; delay = actual − aimed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec
import pandas as pd

from byflyt.connectors.siri_elements import SiriCall, SiriJourney
from byflyt.connectors.trains import TrainIndex, TrainNotResolved, TrainRef, parse_train_ref
from byflyt.errors import BrokenRule
from byflyt.metrics import Metrics
from byflyt.models import codec_trips
from byflyt.models.base import Mode, iso_z
from byflyt.models.gtfs import StaticFeed, TripPlan
from byflyt.models.transit import TripStatus

_SEEN_CHANGES_MAX = 100_000  # platform changes remembered so that repeats count once
_MAX_REF = 256  # the longest journey, line or stop ref a record carries

VEHICLE_MODES: dict[str, Mode] = {
    "bus": "bus",
    "coach": "coach",
    "rail": "rail",
    "tram": "tram",
    "metro": "metro",
    "water": "ferry",
    "ferry": "ferry",
    "air": "air",
    "taxi": "taxi",
}


@dataclass(frozen=True)
class _StaticTrip:
    """A static trip on one date: route, quays, and its calls as rows.

    Each row is a call's index, quay, sequence, kommune, scheduled time and whether it is the
    last: what building its record reads, in one tuple (cheaper to unpack than to zip).
    """

    route_id: str
    stops: list[str]
    rows: tuple[tuple[int, str, int, str | None, datetime | None, bool], ...]

    @property
    def first_time(self) -> datetime | None:
        """The first call's scheduled time."""
        return self.rows[0][4]

    @classmethod
    def of(cls, plan: TripPlan | None, kommune_of: dict[str, str | None]) -> _StaticTrip | None:
        if plan is None:
            return None
        last = len(plan.stops) - 1
        times: list[datetime | None] = []
        for i, (arrival, departure) in enumerate(zip(plan.arrivals, plan.departures, strict=True)):
            first, second = (arrival, departure) if i == last else (departure, arrival)
            times.append(first if first is not None else second)
        return cls(
            route_id=plan.route_id,
            stops=list(plan.stops),
            rows=tuple(
                (i, stop, sequence, kommune_of.get(stop), time, i == last)
                for i, (stop, sequence, time) in enumerate(
                    zip(plan.stops, plan.sequences, times, strict=True)
                )
            ),
        )


class JourneyRejected(BrokenRule):
    """A journey breaks a rule: it goes to the dead-letter topic, the answer goes on."""


class JourneyResolver:
    """ET journeys of one dataset as trip records on its static feed ``static``.

    ``source`` and ``name`` (``siri:INN``, ``siri-et``) label its metrics.
    """

    def __init__(self, static: StaticFeed, *, source: str, name: str, metrics: Metrics) -> None:
        self.static = static
        self.feed = static.feed
        self.source = source
        self.name = name
        self.metrics = metrics
        trips = static.trips
        self._trip_service = dict(zip(trips["trip_id"], trips["service_id"], strict=True))
        self._route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
        stops = static.stops
        self._stop_kommune: dict[str, str | None] = {
            str(s): (None if pd.isna(k) else str(k))
            for s, k in zip(stops["stop_id"], stops["kommune_nr"], strict=True)
        }
        self._stop_parent: dict[str, str] = {
            str(s): str(p)
            for s, p in zip(stops["stop_id"], stops["parent_station"], strict=True)
            if not pd.isna(p) and p
        }
        self._changes_seen: set[tuple[str, date, int]] = set()
        self._static_trips: dict[int, tuple[TripPlan, _StaticTrip | None]] = {}
        self._trains: TrainIndex | None = None
        self._span: tuple[datetime, datetime, datetime] | None = None
        self._run_dates: dict[tuple[str, datetime], date] = {}

    def warn(self, warning: str) -> None:
        """Count a SIRI warning."""
        self.metrics.siri_warnings.labels(self.source, warning).inc()

    def trip_state(self, journey: SiriJourney, snapshot_at: datetime) -> codec_trips.Trip:
        """The trip state of one journey, as its record (raises ``JourneyRejected``)."""
        trip_id = journey.journey_ref
        if not trip_id:
            raise JourneyRejected(
                "no_journey_ref",
                "no DatedVehicleJourneyRef, FramedVehicleJourneyRef or EstimatedVehicleJourneyCode",
            )
        known = trip_id in self._trip_service
        train = None if known or journey.extra else parse_train_ref(trip_id)
        if train is not None:
            trip_id, service_date = self._train_trip(train, journey)
            known = True
        elif not known and not journey.extra:
            raise JourneyRejected(
                "unknown_journey",
                f"journey {trip_id!r} is not in static feed {self.feed!r} and not an ExtraJourney",
            )
        else:
            service_date = journey.service_date or self._service_date(trip_id, journey, known)
        status: TripStatus = "cancelled" if journey.cancelled else "scheduled"
        if journey.extra and not journey.cancelled:
            status = "added"
        if known:
            planned = self._static_trip(trip_id, service_date)
            if planned is None:
                raise JourneyRejected(
                    "not_running", f"journey {trip_id!r} does not run on {service_date}"
                )
            route_id = planned.route_id
            calls = self._known_calls(planned, journey.calls, (trip_id, service_date))
        else:
            route_id = journey.line_ref or ""
            if not route_id:
                raise JourneyRejected("no_line_ref", f"ExtraJourney {trip_id!r} has no LineRef")
            calls = self._extra_calls(journey.calls)
        mode = self._route_mode.get(route_id) or VEHICLE_MODES.get(
            (journey.vehicle_mode or "").lower(), "other"
        )
        span = self._span
        if span is None or span[0] != snapshot_at:  # an answer's journeys share its time
            span = self._span = (snapshot_at, *_span_around(snapshot_at))
        _check_span(calls, *span)
        occupancy = journey.occupancy
        if occupancy is None:  # else the last one a recorded call tells
            for call in reversed(journey.calls):
                if call.recorded and call.occupancy:
                    occupancy = call.occupancy
                    break
        if _ref_too_long(trip_id, route_id, calls):
            raise JourneyRejected("ref_too_long", f"a ref is longer than {_MAX_REF} characters")
        return codec_trips.Trip(
            feed=self.feed,
            snapshot_at=snapshot_at,
            service_date=service_date,
            trip_id=trip_id,
            route_id=route_id,
            mode=mode,
            status=status,
            vehicle_id=journey.vehicle_ref,
            occupancy=occupancy,
            calls=calls,
        )

    def _train_trip(self, train: TrainRef, journey: SiriJourney) -> tuple[str, date]:
        """The static trip and service date of a journey named by train number (Bane NOR).

        The date is the ref's own (``3520:2018-08-28``), else ``DataFrameRef``, else the
        Europe/Oslo date of the first aimed time. Of several trips of the train that day the one
        whose stops (or their stations) the journey's calls name most is kept.
        """
        if self._trains is None:
            self._trains = TrainIndex(self.static)
        outcome = self.metrics.siri_train_refs
        day = train.service_date or journey.service_date
        if day is None:
            aimed = next(
                (t for c in journey.calls for t in (c.aimed_departure, c.aimed_arrival) if t), None
            )
            if aimed is None:
                outcome.labels(self.source, "no_service_date").inc()
                raise JourneyRejected(
                    "no_service_date", f"train {train.number}: no date, no aimed times"
                )
            day = aimed.astimezone(self.static.timezone).date()
        try:
            trips = self._trains.resolve(train.number, day)
        except TrainNotResolved as exc:
            outcome.labels(self.source, exc.rule).inc()
            raise JourneyRejected(exc.rule, exc.reason) from None
        outcome.labels(self.source, "resolved").inc()
        if len(trips) == 1:
            return trips[0], day
        refs = {c.stop_ref for c in journey.calls}
        refs |= {self._stop_parent[r] for r in refs if r in self._stop_parent}

        def named(trip_id: str) -> int:
            planned = self._static_trip(trip_id, day)
            stops = planned.stops if planned is not None else []
            return sum(1 for s in stops if s in refs or self._stop_parent.get(s) in refs)

        return max(trips, key=named), day

    def _service_date(self, trip_id: str, journey: SiriJourney, known: bool) -> date:
        """No DataFrameRef: the running date whose static first call is nearest the aimed one."""
        aimed = next(
            (t for c in journey.calls for t in (c.aimed_departure, c.aimed_arrival) if t), None
        )
        if aimed is None:
            raise JourneyRejected("no_service_date", "no DataFrameRef and no aimed times")
        if not known:
            return aimed.astimezone(self.static.timezone).date()
        # Why a memo: the answers after the first repeat a journey with the same first aimed time.
        # (Looked up first: the local date costs a time zone conversion, more than the lookup.)
        day = self._run_dates.get((trip_id, aimed))
        if day is None:
            local = aimed.astimezone(self.static.timezone).date()
            day = self._nearest_run(trip_id, aimed, local)
            if len(self._run_dates) >= _SEEN_CHANGES_MAX:
                self._run_dates.clear()
            self._run_dates[trip_id, aimed] = day
        return day

    def _nearest_run(self, trip_id: str, aimed: datetime, local: date) -> date:
        dates = [
            d
            for d in self.static.service_dates(self._trip_service[trip_id])
            if abs((d - local).days) <= 1
        ]
        if not dates:
            raise JourneyRejected("not_running", f"journey {trip_id!r} does not run near {local}")

        def distance(day: date) -> float:
            planned = self._static_trip(trip_id, day)
            first = planned.first_time if planned is not None else None
            return abs((first - aimed).total_seconds()) if first is not None else float("inf")

        return min(dates, key=distance)

    def sibling(self, planned: str, actual: str) -> bool:
        """Another quay of the planned quay's stop place (a platform change)."""
        parent = self._stop_parent.get(planned)
        return parent is not None and planned != actual and self._stop_parent.get(actual) == parent

    def _match(self, stops: list[str], calls: Iterable[SiriCall]) -> dict[int, SiriCall]:
        """Static call index → its SIRI call (see the module docstring for the rule)."""
        matched: dict[int, SiriCall] = {}
        last = -1
        count = len(stops)
        for siri in calls:
            ref, order = siri.stop_ref, siri.order
            # The usual case first: the call's Order names the static call at its quay.
            if order is not None and last < order - 1 < count and stops[order - 1] == ref:
                last = order - 1
                matched[last] = siri
                continue
            index: int | None = None
            at = order - 1 if order is not None else None
            in_range = at is not None and last < at < count
            if ref in stops[last + 1 :]:
                index = stops.index(ref, last + 1)
            elif in_range and self.sibling(stops[at], ref):  # type: ignore[index]
                index = at
            elif ref in self._stop_parent and at is None:
                index = next(
                    (i for i in range(last + 1, count) if self.sibling(stops[i], ref)), None
                )
            elif in_range and ref not in self._stop_kommune:
                self.warn("stop_ref_mismatch")
                index = at
            if index is None:
                self.warn("stop_not_on_journey")
                continue
            matched[index] = siri
            last = index
        return matched

    def _static_trip(self, trip_id: str, service_date: date) -> _StaticTrip | None:
        """The static calls of a trip on a date (None: not running); the feed caches its plans."""
        plan = self.static.trip_plan(trip_id, service_date)
        if plan is None:
            return None
        # Kept per plan object (and holding it): the feed keeps one per trip and date.
        kept = self._static_trips.get(id(plan))
        if kept is None or kept[0] is not plan:
            if len(self._static_trips) >= _SEEN_CHANGES_MAX:
                self._static_trips.clear()
            kept = self._static_trips[id(plan)] = (plan, _StaticTrip.of(plan, self._stop_kommune))
        return kept[1]

    def _known_calls(
        self,
        planned: _StaticTrip,
        siri_calls: tuple[SiriCall, ...],
        run: tuple[str, date],
    ) -> list[codec_trips.Call]:
        matched = self._match(planned.stops, siri_calls)
        calls: list[codec_trips.Call] = []
        new_call = codec_trips.Call
        for i, stop_id, sequence, kommune, static_time, last in planned.rows:
            siri = matched.get(i)
            if siri is None:
                if static_time is None:
                    raise JourneyRejected("static_times", f"static call {sequence} has no time")
                calls.append(new_call(sequence, stop_id, kommune, static_time))
                continue
            if siri.stop_ref != stop_id and self.sibling(stop_id, siri.stop_ref):
                # The same call at another platform: keep the quay it was actually served at.
                stop_id = siri.stop_ref
                kommune = self._kommune(stop_id) or kommune
                self._platform_change((*run, sequence))
            state = _call_state(siri, sequence, stop_id, kommune, last, static_time)
            if state is None:
                raise JourneyRejected("static_times", f"static call {sequence} has no time")
            calls.append(state)
        return calls

    def _extra_calls(self, siri_calls: tuple[SiriCall, ...]) -> list[codec_trips.Call]:
        calls: list[codec_trips.Call] = []
        previous = -1
        for n, siri in enumerate(siri_calls):
            sequence = siri.order - 1 if siri.order is not None else previous + 1
            if sequence <= previous or not siri.stop_ref:
                self.warn("stop_not_on_journey")
                continue
            last = n == len(siri_calls) - 1
            state = _call_state(
                siri, sequence, siri.stop_ref, self._kommune(siri.stop_ref), last, None
            )
            if state is not None:
                calls.append(state)
                previous = sequence
        return calls

    def _kommune(self, stop_id: str) -> str | None:
        return self._stop_kommune.get(stop_id)

    def _platform_change(self, call: tuple[str, date, int]) -> None:
        """Count a platform change once per call, however many answers repeat it."""
        if call in self._changes_seen:
            return
        if len(self._changes_seen) >= _SEEN_CHANGES_MAX:
            self._changes_seen.clear()
        self._changes_seen.add(call)
        self.metrics.platform_changes.labels(self.feed, self.name).inc()


def _call_state(
    siri: SiriCall,
    sequence: int,
    stop_id: str,
    kommune: str | None,
    last: bool,
    static_time: datetime | None,
) -> codec_trips.Call | None:
    """One call: scheduled (aimed, else static), final actual time, delay; None without times.

    At the last stop the arrival counts (its time, its status), elsewhere the departure; the
    other one stands in when it is missing.
    """
    if not last and siri.departure_status == "cancelled" and _cut_short_here(siri):
        # The journey ends here now: the arrival was served, only the departure is cancelled.
        last = True
        siri = msgspec.structs.replace(siri, departure_status=None)
    if last:
        aimed = siri.aimed_arrival or siri.aimed_departure
        expected = siri.expected_arrival or siri.expected_departure
        actual_time = siri.actual_arrival or siri.actual_departure
        status = siri.arrival_status or siri.departure_status
    else:
        aimed = siri.aimed_departure or siri.aimed_arrival
        expected = siri.expected_departure or siri.expected_arrival
        actual_time = siri.actual_departure or siri.actual_arrival
        status = siri.departure_status or siri.arrival_status
    scheduled = aimed or static_time or actual_time or expected
    if scheduled is None:
        return None
    if siri.cancelled or status == "cancelled":
        return codec_trips.Call(sequence, stop_id, kommune, scheduled, None, None, "skipped")
    known = actual_time or expected
    delay = round((known - scheduled).total_seconds()) if known is not None else None
    actual = (known or scheduled) if siri.recorded else None
    return codec_trips.Call(sequence, stop_id, kommune, scheduled, delay, actual, "scheduled")


#: How far a call's time may lie from its answer's time (a journey spans at most a day or two).
MAX_TIME_SPAN = timedelta(days=3)


def _span_around(at: datetime) -> tuple[datetime, datetime]:
    """The earliest and latest call times :data:`MAX_TIME_SPAN` allows around ``at``."""
    try:
        earliest = at - MAX_TIME_SPAN
    except OverflowError:  # an answer stamped at the edge of the calendar
        earliest = _FIRST
    try:
        latest = at + MAX_TIME_SPAN
    except OverflowError:
        latest = _LAST
    return earliest, latest


_FIRST, _LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


def _check_span(
    calls: list[codec_trips.Call], snapshot_at: datetime, earliest: datetime, latest: datetime
) -> None:
    """Reject a journey whose times lie implausibly far from the answer's own time."""
    for call in calls:
        if not earliest <= call.scheduled <= latest:
            raise JourneyRejected(
                "time_out_of_range",
                f"call {call.stop_sequence} is scheduled at {iso_z(call.scheduled)}, more than "
                f"{MAX_TIME_SPAN.days} days from the answer's time {iso_z(snapshot_at)}",
            )


def _ref_too_long(trip_id: str, route_id: str, calls: list[codec_trips.Call]) -> bool:
    if len(trip_id) > _MAX_REF or len(route_id) > _MAX_REF:
        return True
    # Why a loop: any() over a generator costs several times what it checks, every journey.
    for call in calls:  # noqa: SIM110
        if len(call.stop_id) > _MAX_REF:
            return True
    return False


def _cut_short_here(siri: SiriCall) -> bool:
    """A call whose departure is cancelled but whose arrival is not: a new last stop."""
    return (
        not siri.cancelled
        and siri.departure_status == "cancelled"
        and siri.arrival_status != "cancelled"
        and (siri.aimed_arrival or siri.expected_arrival or siri.actual_arrival) is not None
    )
