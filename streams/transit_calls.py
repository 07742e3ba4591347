"""Deriving final stop calls from trip states: the rule of ``derive_calls``, without faust.

``derive_calls`` reads ``transit.trip-updates`` (one :class:`TripState` per trip and accepted
snapshot, keyed by trip) and keeps, in the faust table ``trip-calls``, which calls of each trip
are final. A call becomes final once: when its actual time (departure; arrival at the last stop)
lies before the snapshot's timestamp (served), when the trip is cancelled or the call skipped,
or when the trip vanished from a FULL_DATASET feed after its last call's time (its remaining
calls were served). A trip that vanishes before that leaves its open calls uncounted. A served
call whose nearest earlier served call lies in another kommune is a crossing, timed at the
departure from that call. Each final call goes out once as a :class:`StopCall` on
``transit.stop-calls`` and, with crossings and coverage markers, as :class:`TransitFact` on
``transit.facts.by-kommune``. Replays are harmless: state is keyed by the call. Trip state
expires by service date (:data:`TRIP_RETENTION` behind the newest), never by the wall clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from byflyt.models import codec_trips
from byflyt.models.base import hour_floor, iso_z
from byflyt.models.codec_trips import Trip
from byflyt.models.transit import (
    CallState,
    StopCall,
    TransitFact,
    TripState,
)
from byflyt.streams.transit_state import FinalCall, TripCalls

TRIP_RETENTION = timedelta(days=3)


def call_key(trip: TripState | Trip, call: CallState | codec_trips.Call) -> str:
    """``feed:service_date:trip_id:stop_sequence``, as :attr:`StopCall.key`."""
    return f"{trip.key}:{call.stop_sequence}"


def _when(call: CallState | codec_trips.Call) -> datetime:
    """The call's actual time, or its scheduled time when the feed gave nothing for it."""
    return call.actual or call.scheduled


def final_calls(
    trip: TripState | Trip, done: Mapping[str, FinalCall]
) -> list[tuple[CallState | codec_trips.Call, str, datetime | None]]:
    """Calls of ``trip`` that become final with this state: (call, status, actual time).

    ``done`` maps stop_sequence (as text) of calls already final to their record; they are
    skipped. Pure: the caller records the result.
    """
    out: list[tuple[CallState | codec_trips.Call, str, datetime | None]] = []
    if not trip.calls:
        return out
    finished = trip.status == "vanished" and trip.snapshot_at > _when(trip.calls[-1])
    for call in trip.calls:
        if str(call.stop_sequence) in done:
            continue
        if trip.status == "cancelled":
            out.append((call, "cancelled", None))
        elif call.realtime == "skipped":
            out.append((call, "skipped", None))
        elif trip.status == "vanished":
            if finished:
                out.append((call, "served", _when(call)))
        elif call.actual is not None and call.actual < trip.snapshot_at:
            # Only a known time: a call the feed says nothing about becomes final when its
            # trip finishes (vanishes after its last call) or is cancelled.
            out.append((call, "served", call.actual))
    return out


@dataclass
class TripDeriver:
    """State and fact-building of ``derive_calls`` (one per worker)."""

    table: Any
    dates: dict[str, date] = field(default_factory=dict)
    newest: date | None = None

    def apply(self, trip: TripState | Trip) -> tuple[list[StopCall], list[TransitFact]]:
        """Record what ``trip`` makes final; return the stop calls and facts to send."""
        state: TripCalls | None = self.table.get(trip.key)
        facts: list[TransitFact] = []
        if state is None:
            state = TripCalls(day=trip.service_date.isoformat())
            facts.extend(_reported(trip))
        done = dict(state.done)
        calls: list[StopCall] = []
        for call, status, actual in final_calls(trip, done):
            record = StopCall(
                feed=trip.feed,
                service_date=trip.service_date,
                trip_id=trip.trip_id,
                route_id=trip.route_id,
                mode=trip.mode,
                stop_id=call.stop_id,
                stop_sequence=call.stop_sequence,
                kommune_nr=call.kommune_nr,
                scheduled=call.scheduled,
                actual=actual,
                delay_seconds=call.delay_seconds if status == "served" else None,
                status=status,
                vehicle_id=trip.vehicle_id,
                occupancy=trip.occupancy,
            )
            calls.append(record)
            if record.kommune_nr is not None:
                facts.append(_call_fact(trip, record))
            done[str(call.stop_sequence)] = FinalCall(
                status=status,
                kommune_nr=call.kommune_nr,
                actual=iso_z(actual) if actual else None,
            )
        if any(c.status == "served" for c in calls):
            # Recomputed over the whole trip: a call served late (known only when its trip
            # finished) can open a crossing to a call that was final before it.
            facts.extend(crossings(trip, done))
        if calls or facts or trip.key not in self.table:
            self.table[trip.key] = TripCalls(day=state.day, done=done)
            self._expire(trip.key, trip.service_date)
        return calls, facts

    def settled(self, raw: bytes | None) -> bool:
        """Whether a record adds nothing: settled since one applied to a trip still kept.

        See ``settled_since`` in ``models/codec_trips``.
        """
        key = codec_trips.settled_key(raw)
        return key is not None and key in self.table

    def evicted(self, trip: TripState | Trip) -> bool:
        """Whether ``trip``'s state was evicted: deriving it again would count its calls twice."""
        return (
            self.newest is not None
            and trip.service_date < self.newest - TRIP_RETENTION
            and trip.key not in self.table
        )

    def _expire(self, key: str, service_date: date) -> None:
        if not self.dates and len(self.table):
            self.dates = {k: v.service_date for k, v in self.table.items() if v is not None}
        self.dates[key] = service_date
        if self.newest is None or service_date > self.newest:
            self.newest = service_date
            horizon = self.newest - TRIP_RETENTION
            for old in [k for k, d in self.dates.items() if d < horizon]:
                del self.dates[old]
                if old in self.table:
                    del self.table[old]


def _reported(trip: TripState | Trip) -> list[TransitFact]:
    """Coverage markers: every scheduled call of a trip the feed reported on, once."""
    return [
        TransitFact(
            kind="reported",
            feed=trip.feed,
            kommune_nr=call.kommune_nr,
            mode=trip.mode,
            hour_start=hour_floor(call.scheduled),
            id=call_key(trip, call),
            trip_id=trip.trip_id,
        )
        for call in trip.calls
        if call.kommune_nr is not None
    ]


def _call_fact(trip: TripState | Trip, call: StopCall) -> TransitFact:
    assert call.kommune_nr is not None
    return TransitFact(
        kind="call",
        feed=trip.feed,
        kommune_nr=call.kommune_nr,
        mode=trip.mode,
        hour_start=hour_floor(call.actual or call.scheduled),
        id=call.key,
        trip_id=trip.trip_id,
        status=call.status,
        delay_seconds=call.delay_seconds,
        occupancy=trip.occupancy,
    )


def crossings(trip: TripState | Trip, done: Mapping[str, FinalCall]) -> list[TransitFact]:
    """Every crossing of the trip's served calls so far, as ``out`` and ``in`` facts.

    Served calls are walked in stop order; stops placed in no kommune are passed over (they do
    not hide that the trip went from A to B). A crossing is timed at the departure from the
    call in A and identified by the two calls, so sending it again replaces it. Known limit: a
    crossing sent before a call between its two ends was known to be served is not withdrawn.
    """
    served = [
        (c.stop_sequence, final, final.kommune_nr)
        for c in trip.calls
        if (final := done.get(str(c.stop_sequence))) is not None
        and final.status == "served"
        and final.kommune_nr is not None
    ]
    out: list[TransitFact] = []
    for (seq_a, call_a, a), (seq_b, _, b) in itertools.pairwise(served):
        if a == b or call_a.actual is None:
            continue
        common = {
            "feed": trip.feed,
            "mode": trip.mode,
            "hour_start": hour_floor(datetime.fromisoformat(call_a.actual)),
            "id": f"{trip.key}:{seq_a}>{seq_b}",
        }
        out.append(TransitFact(kind="out", kommune_nr=a, other_kommune=b, **common))
        out.append(TransitFact(kind="in", kommune_nr=b, other_kommune=a, **common))
    return out
