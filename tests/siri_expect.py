"""The SIRI pipeline's expected table, computed independently from the XML the server served.

Rules of that computation:

1. Journeys are read in the order served. A journey is ``DatedVehicleJourneyRef`` (framed or
   bare) or ``EstimatedVehicleJourneyCode``; its service date is ``DataFrameRef``, else the
   Europe/Oslo date of its first aimed time. A SIRI call is the static call at ``Order`` − 1, or
   the first static call with its quay when it has no Order. An extra journey's calls are its
   SIRI calls, stop_sequence ``Order`` − 1.
2. A call counts once, when first final: cancelled with its journey (``Cancellation``) or on its
   own (``Cancellation``, ``DepartureStatus``/``ArrivalStatus`` cancelled), at its scheduled
   time; served when it is a RecordedCall, at its actual time (departure; arrival at the last
   stop), delay = actual − aimed; at its aimed time with no delay when it has no actual time.
3. Hourly rows as in the transit issue (departures, cancelled_calls, trips, delay_seconds_sum,
   delay_count, on_time_calls, trips_out/in, vehicles_active); coverage = reported calls (every
   call with a kommune of every journey served) over the static feed's calls in the
   kommune/mode/hour, capped at 100, 100 without static calls.
4. vehicles_active: distinct VehicleRefs by the hour of RecordedAtTime, in the kommune the
   generator placed them, mode of the static route of their journey.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any

from lxml import etree

from byflyt.clock import OSLO
from byflyt.models.gtfs import StaticFeed
from byflyt.samples.siri import SiriDay
from tests.transit_expect import vehicle_and_flow_rows

NS = "{http://www.siri.org.uk/siri}"


def _t(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


Finals = dict[tuple[date, str, int], tuple[str, int | None, datetime, str | None, str]]
Reported = dict[tuple[str, str, datetime], set[str]]
#: A journey element → its static (trip_id, service_date), None when it names no static trip.
Resolver = Callable[[Any], tuple[str, date] | None]


def expected_siri(static: StaticFeed, day: SiriDay) -> tuple[list[Any], list[Any], dict[Any, Any]]:
    """Hourly rows, flow rows and final calls (key → status, delay, at, kommune, mode)."""
    finals, reported = siri_calls(static, day)
    scheduled = scheduled_calls(static)
    vehicles: dict[tuple[str, str, datetime], set[str]] = defaultdict(set)
    route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
    route_of = dict(zip(static.trips["trip_id"], static.trips["route_id"], strict=True))
    for seen in day.vehicles:
        if seen.vehicle_ref is None or seen.kommune_nr is None:
            continue
        mode = route_mode[route_of.get(seen.trip_id, seen.line_ref)]
        vehicles[(seen.kommune_nr, mode, _hour(seen.recorded_at))].add(seen.vehicle_ref)
    hourly, flows = aggregate(lambda cell: scheduled.get(cell, 0), finals, reported, vehicles)
    return hourly, flows, finals


def _own_ref(journey: Any) -> tuple[str, date]:
    trip_id = journey.findtext(f".//{NS}DatedVehicleJourneyRef") or journey.findtext(
        f"{NS}EstimatedVehicleJourneyCode"
    )
    calls = [c for c in journey.iter(f"{NS}RecordedCall", f"{NS}EstimatedCall")]
    frame = journey.findtext(f".//{NS}DataFrameRef")
    first = _t(calls[0].findtext(f"{NS}AimedDepartureTime")) or _t(
        calls[0].findtext(f"{NS}AimedArrivalTime")
    )
    assert first is not None
    return trip_id, date.fromisoformat(frame) if frame else first.astimezone(OSLO).date()


def siri_calls(
    static: StaticFeed, day: SiriDay, resolve: Resolver = _own_ref
) -> tuple[Finals, Reported]:
    """Final calls (rules 1–2) and reported calls per kommune/mode/hour of the journeys served."""
    route_mode = dict(zip(static.routes["route_id"], static.routes["mode"], strict=True))
    finals: Finals = {}
    reported: Reported = defaultdict(set)
    for tick in range(len(day.ticks)):
        for xml in day.changes(tick):
            journey = etree.fromstring(xml)
            resolved = resolve(journey)
            if resolved is None:
                continue
            trip_id, service_date = resolved
            calls = [c for c in journey.iter(f"{NS}RecordedCall", f"{NS}EstimatedCall")]
            rows = static.trip_calls(trip_id, service_date)
            if rows.empty:  # the extra journey
                mode = route_mode[journey.findtext(f"{NS}LineRef")]
                stops = [c.findtext(f"{NS}StopPointRef") for c in calls]
                kommuner = [static.stops.set_index("stop_id")["kommune_nr"].get(s) for s in stops]
                sequences = [int(c.findtext(f"{NS}Order")) - 1 for c in calls]
            else:
                mode = str(rows["mode"].iloc[0])
                stops = [str(s) for s in rows["stop_id"]]
                kommuner = list(rows["kommune_nr"])
                sequences = [int(s) for s in rows["stop_sequence"]]
            kommuner = [k if isinstance(k, str) else None for k in kommuner]
            for index, sequence in enumerate(sequences):
                if kommuner[index] is not None:
                    when = rows["scheduled_departure"].iloc[index] if not rows.empty else None
                    at = _t(when.isoformat()) if when is not None else _time(calls[index], True)
                    assert at is not None
                    reported[(kommuner[index], mode, _hour(at))].add(
                        f"{service_date}:{trip_id}:{sequence}"
                    )
            cancelled = journey.findtext(f"{NS}Cancellation") == "true"
            position = -1
            for call in calls:
                order = call.findtext(f"{NS}Order")
                if order is not None:
                    position = int(order) - 1
                else:
                    stop = call.findtext(f"{NS}StopPointRef")
                    position = stops.index(stop, position + 1)
                last = position == len(stops) - 1
                key = (service_date, trip_id, sequences[position])
                if key in finals:
                    continue
                scheduled = _time(call, last, "Aimed")
                assert scheduled is not None
                statuses = {call.findtext(f"{NS}DepartureStatus")}
                statuses |= {call.findtext(f"{NS}ArrivalStatus")}
                off = cancelled or call.findtext(f"{NS}Cancellation") == "true"
                if off or "cancelled" in statuses:
                    status = "cancelled" if cancelled else "skipped"
                    finals[key] = (status, None, scheduled, kommuner[position], mode)
                elif call.tag == f"{NS}RecordedCall":
                    actual = _time(call, last, "Actual")
                    delay = None if actual is None else round((actual - scheduled).total_seconds())
                    at = actual or scheduled
                    finals[key] = ("served", delay, at, kommuner[position], mode)
            if cancelled and not rows.empty:
                for index, sequence in enumerate(sequences):
                    scheduled_at = _t(rows["scheduled_departure"].iloc[index].isoformat())
                    assert scheduled_at is not None
                    finals.setdefault(
                        (service_date, trip_id, sequence),
                        ("cancelled", None, scheduled_at, kommuner[index], mode),
                    )
    return finals, reported


def _time(call: Any, last: bool, label: str = "Aimed") -> datetime | None:
    kinds = ("Arrival", "Departure") if last else ("Departure", "Arrival")
    for kind in kinds:
        value = _t(call.findtext(f"{NS}{label}{kind}Time"))
        if value is not None:
            return value
    return None


def scheduled_calls(static: StaticFeed) -> dict[tuple[str, str, datetime], int]:
    """Static calls per kommune/mode/hour of their scheduled departure, every service date."""
    scheduled: dict[tuple[str, str, datetime], int] = defaultdict(int)
    for day in sorted(set(static.service_days["service_date"])):
        calls = static.scheduled_calls(day).dropna(subset=["kommune_nr"])
        for row in calls.itertuples(index=False):
            scheduled[
                (row.kommune_nr, row.mode, _hour(_t(row.scheduled_departure.isoformat())))
            ] += 1
    return scheduled


def aggregate(
    scheduled: Callable[[tuple[str, str, datetime]], int],
    finals: dict[Any, Any],
    reported: Reported,
    vehicles: dict[tuple[str, str, datetime], set[str]],
) -> tuple[list[Any], list[Any]]:
    """Hourly and flow rows (rule 3); ``scheduled`` gives a cell's static calls for coverage."""
    cells: dict[tuple[str, str, datetime], dict[Any, Any]] = defaultdict(dict)
    served: dict[tuple[date, str], list[tuple[int, Any]]] = defaultdict(list)
    for (service_date, trip_id, sequence), final in finals.items():
        status, _, at, kommune, mode = final
        if status == "served":
            served[(service_date, trip_id)].append((sequence, final))
        if kommune is not None:
            cells[(kommune, mode, _hour(at))][(service_date, trip_id, sequence)] = final

    def coverage(cell: tuple[str, str, datetime]) -> float:
        total = scheduled(cell)
        return 100.0 if not total else round(min(100.0, 100 * len(reported[cell]) / total), 2)

    rows = []
    for cell, calls in cells.items():
        kept = [f for f in calls.values()]
        ok = [f for f in kept if f[0] == "served"]
        delays = [f[1] for f in ok if f[1] is not None]
        trips = {k[:2] for k in calls}
        values = {
            "departures": len(ok),
            "cancelled_calls": len(kept) - len(ok),
            "trips": len({k[:2] for k, f in calls.items() if f[0] == "served"}),
            "delay_seconds_sum": sum(delays),
            "delay_count": len(delays),
            "on_time_calls": sum(1 for d in delays if -60 <= d < 180),
        }
        for metric, value in values.items():
            rows.append((*cell[:2], metric, cell[2], float(value), coverage(cell), len(trips)))
    crossings: dict[tuple[str, str, str, datetime], list[Any]] = defaultdict(list)
    for trip, calls in served.items():
        placed = sorted((c for c in calls if c[1][3] is not None), key=lambda c: c[0])
        for (_, a), (_, b) in pairwise(placed):
            if a[3] != b[3]:
                crossings[(a[3], b[3], a[4], _hour(a[2]))].append(trip)
    more, flows = vehicle_and_flow_rows(vehicles, crossings, coverage)
    return sorted(rows + more), sorted(flows)
