"""GTFS-realtime call derivation: one trip update's stop time updates on its static plan.

:class:`CallResolver` checks a trip update's stop time updates (known stops, ``stop_sequence``
order, times that never decrease), matches each to a call of the trip's static plan (by
``stop_sequence`` when that call has the same stop, else by ``stop_id`` forward from the last
match, else at a sibling quay of the same ``parent_station``) and gives every static call the
delay that reaches it under GTFS-realtime propagation (its own update, else the nearest
previous one; NO_DATA stops propagation, SKIPPED does not; ``trip_update.delay`` before the
first update). An ADDED trip unknown to the static feed is its updates with an absolute time.
A rule broken raises :class:`EntityRejected`: the entity goes to the dead-letter topic.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors.gtfs_rt_decode import Update, instant, plausible
from byflyt.errors import BrokenRule
from byflyt.models import codec_trips
from byflyt.models.base import iso_z
from byflyt.models.gtfs import TripPlan
from byflyt.models.transit import CallRealtime

_STU = rt.TripUpdate.StopTimeUpdate
_NO_DATA = _STU.NO_DATA
_SKIPPED = _STU.SKIPPED


class EntityRejected(BrokenRule):
    """An entity breaks a rule: it goes to the dead-letter topic, the snapshot goes on."""


class CallResolver:
    """Resolves trip updates of feed ``feed`` against its static plans (see the module doc).

    ``stop_kommune`` places every static stop (None: outside the kommuner), ``stop_parent``
    gives a quay's station. After :meth:`calls`, ``timed`` holds the calls with an actual time
    (epoch seconds, stop sequence) and ``skipped`` the skipped calls' sequences;
    ``platform_changes`` counts the updates served at a sibling quay since it was last reset.
    """

    def __init__(
        self, feed: str, stop_kommune: dict[str, str | None], stop_parent: dict[str, str]
    ) -> None:
        self.feed = feed
        self.stop_kommune = stop_kommune
        self.stop_parent = stop_parent
        self.plans: dict[int, _PlanCalls] = {}
        self.platform_changes = 0
        self.timed: list[tuple[float, int]] | None = None
        self.skipped: list[int] | None = None

    def check_updates(self, updates: Sequence[Update]) -> None:
        """Entity rules: known stops, stop_sequence order, times that never decrease."""
        previous_sequence: int | None = None
        previous_time: int | None = None
        stop_kommune = self.stop_kommune
        for stop_id, sequence, _, arrival, _, departure, _ in updates:
            if stop_id and stop_id not in stop_kommune:
                raise EntityRejected(
                    "unknown_stop",
                    f"stop_id {stop_id!r} is not in static feed {self.feed!r}",
                )
            if sequence is None:
                if not stop_id:
                    raise EntityRejected(
                        "no_stop", "a stop time update has neither stop_id nor stop_sequence"
                    )
            else:
                if previous_sequence is not None and sequence <= previous_sequence:
                    raise EntityRejected(
                        "stop_sequence_order",
                        f"stop time updates are not ordered by stop_sequence "
                        f"({sequence} after {previous_sequence})",
                    )
                previous_sequence = sequence
            for moment in (arrival, departure):
                if moment is None:
                    continue
                if not plausible(moment):
                    raise EntityRejected(
                        "time_out_of_range",
                        f"time {moment} at stop {stop_id[:64] or '?'} is not POSIX seconds "
                        "between 2000 and 2100 (milliseconds?)",
                    )
                if previous_time is not None and moment < previous_time:
                    raise EntityRejected(
                        "times_decrease",
                        f"time {iso_z(instant(moment))} at stop {stop_id or '?'} is "
                        f"before the previous time {iso_z(instant(previous_time))}",
                    )
                previous_time = moment

    def _match(
        self,
        trip_id: str,
        stops: tuple[str, ...],
        sequences: Sequence[int],
        updates: Sequence[Update],
        by_sequence: _SequenceIndex,
    ) -> dict[int, Update]:
        """Call index → its stop time update (see the module docstring for the rule)."""
        matched: dict[int, Update] = {}
        last = -1
        for update in updates:
            stop_id, sequence = update[0], update[1]
            index = None
            if sequence is not None:
                at = by_sequence.get(sequence)
                if at is not None and at > last and stop_id in ("", stops[at]):
                    index = at
            if index is None and stop_id:
                try:
                    index = stops.index(stop_id, last + 1)
                except ValueError:
                    index = self._sibling_index(stop_id, sequence, stops, by_sequence, last)
                    if index is None:
                        where = " after the previous update" if stop_id in stops else ""
                        raise EntityRejected(
                            "stop_not_on_trip",
                            f"stop_id {stop_id!r} is not on trip {trip_id!r}{where}",
                        ) from None
            if index is None:
                raise EntityRejected(
                    "stop_not_on_trip",
                    f"stop_sequence {sequence or 0} is not on trip {trip_id!r}",
                )
            matched[index] = update
            last = index
        return matched

    def _sibling_index(
        self,
        stop_id: str,
        sequence: int | None,
        stops: Sequence[str],
        by_sequence: _SequenceIndex,
        last: int,
    ) -> int | None:
        """The call a stop time update at a sibling quay (same parent_station) belongs to."""
        parent = self.stop_parent.get(stop_id)
        if parent is None:
            return None
        at = by_sequence.get(sequence) if sequence is not None else None
        candidates = [at] if at is not None and at > last else []
        candidates += range(last + 1, len(stops))
        return next((i for i in candidates if self.stop_parent.get(stops[i]) == parent), None)

    def calls(
        self, trip_id: str, plan: TripPlan, updates: Sequence[Update], trip_delay: int | None
    ) -> list[codec_trips.Call]:
        """Every static call with the delay that reaches it (GTFS-realtime propagation)."""
        stops, sequences = plan.stops, plan.sequences
        planned = self._planned(trip_id, plan)
        matched = self._match(trip_id, stops, sequences, updates, planned.by_sequence)
        if isinstance(planned.scheduled, EntityRejected):
            raise planned.scheduled
        stop_kommune = self.stop_kommune
        Call = codec_trips.Call
        current, no_data = trip_delay, False
        shift_of: int | None = None
        shift = timedelta(0)
        calls: list[codec_trips.Call] = []
        # Each call with an actual time, as epoch seconds and stop sequence, and the skipped
        # calls' sequences: what _Live keeps, worked out here without reading the datetimes.
        timed = self.timed = []
        skipped = self.skipped = []
        epochs = planned.epochs
        last = len(stops) - 1
        for i, (stop_id, scheduled, kommune) in enumerate(
            zip(stops, planned.scheduled, planned.kommunes, strict=True)
        ):
            update = matched.get(i) if matched else None
            if update is None:
                # The common case: a call the feed says nothing about takes the delay before it.
                if no_data:
                    calls.append(
                        Call(sequences[i], stop_id, kommune, scheduled, None, None, "no_data")
                    )
                    continue
                actual = None
                if current is not None:
                    if current != shift_of:
                        shift_of, shift = current, timedelta(seconds=current)
                    actual = scheduled + shift
                    timed.append((epochs[i] + current, sequences[i]))
                calls.append(Call(sequences[i], stop_id, kommune, scheduled, current, actual))
                continue
            realtime: CallRealtime = "no_data" if no_data else "scheduled"
            own_time: int | None = None
            delay = None if no_data else current
            _, _, relation, arrival, arrival_delay, departure, departure_delay = update
            if relation == _NO_DATA:
                no_data, current, delay, realtime = True, None, None, "no_data"
            else:
                if i == last:  # the arrival is what counts at the last stop
                    own_time = arrival if arrival is not None else departure
                    own_delay = arrival_delay if arrival_delay is not None else departure_delay
                else:
                    own_time = departure if departure is not None else arrival
                    own_delay = departure_delay if departure_delay is not None else arrival_delay
                if own_delay is None and own_time is not None:
                    own_delay = int((instant(own_time) - scheduled).total_seconds())
                if relation == _SKIPPED:
                    realtime = "skipped"
                    delay = own_delay if own_delay is not None else delay
                else:
                    no_data, realtime = False, "scheduled"
                    if own_delay is not None:
                        current = own_delay
                    delay = current
            if update[0] and update[0] != stop_id:
                # Served at another platform of the same station: keep the actual quay.
                stop_id = update[0]
                kommune = stop_kommune.get(stop_id)
                self.platform_changes += 1
            actual = None
            if realtime == "skipped":
                skipped.append(sequences[i])
            elif own_time is not None:
                actual = instant(own_time)
                timed.append((own_time, sequences[i]))
            elif delay is not None:
                if delay != shift_of:
                    shift_of, shift = delay, timedelta(seconds=delay)
                actual = scheduled + shift
                timed.append((epochs[i] + delay, sequences[i]))
            calls.append(Call(sequences[i], stop_id, kommune, scheduled, delay, actual, realtime))
        return calls

    def _planned(self, trip_id: str, plan: TripPlan) -> _PlanCalls:
        """What every snapshot needs of a trip's plan, worked out once per trip and date."""
        # Keyed by the plan object, held by the entry: the static feed keeps one per trip and date.
        planned = self.plans.get(id(plan))
        if planned is not None and planned.plan is plan:
            return planned
        times: list[datetime] = []
        missing: EntityRejected | None = None
        last = len(plan.stops) - 1
        for i, (arrival, departure) in enumerate(zip(plan.arrivals, plan.departures, strict=True)):
            when = (arrival or departure) if i == last else (departure or arrival)
            if when is None:
                missing = EntityRejected(
                    "static_times",
                    f"the static call {plan.sequences[i]} of {trip_id!r} has no time",
                )
                break
            times.append(when)
        planned = _PlanCalls(
            plan,
            missing or times,
            array("q", [int(t.timestamp()) for t in times]),
            [self.stop_kommune.get(s) for s in plan.stops],
            _SequenceIndex(plan.sequences),
        )
        if len(self.plans) >= _PLAN_CALLS_MAX:
            self.plans.clear()
        self.plans[id(plan)] = planned
        return planned

    def added_calls(self, updates: Sequence[Update]) -> list[codec_trips.Call]:
        """An ADDED trip unknown to the static feed: its updates with an absolute time."""
        calls: list[codec_trips.Call] = []
        for n, update in enumerate(updates):
            stop_id, sequence, relation, arrival, arrival_delay, departure, departure_delay = update
            moment = departure if departure is not None else arrival
            if moment is None or not stop_id:
                continue
            calls.append(
                codec_trips.Call(
                    sequence if sequence is not None else n,
                    stop_id,
                    self.stop_kommune.get(stop_id),
                    instant(moment),
                    departure_delay if departure_delay is not None else arrival_delay,
                    instant(moment),
                    "skipped" if relation == _SKIPPED else "scheduled",
                )
            )
        return calls


@dataclass(frozen=True)
class _PlanCalls:
    """What the snapshots need of a plan, per call: scheduled instant, epoch, kommune, index.

    ``scheduled`` is the reason the plan cannot be used when a call has no time.
    """

    plan: TripPlan
    scheduled: list[datetime] | EntityRejected
    epochs: array[int]
    kommunes: list[str | None]
    by_sequence: _SequenceIndex


class _SequenceIndex:
    """A plan's call index by stop_sequence.

    Arithmetic for the usual run of sequences (0, 1, 2 … or 1, 2, 3 …), a dictionary otherwise.
    """

    __slots__ = ("count", "first", "table")

    def __init__(self, sequences: Sequence[int]) -> None:
        self.first = sequences[0] if sequences else 0
        self.count = len(sequences)
        consecutive = all(q == self.first + i for i, q in enumerate(sequences))
        self.table = None if consecutive else {q: i for i, q in enumerate(sequences)}

    def get(self, sequence: int) -> int | None:
        """The index of the call with ``sequence`` (the last, were there two), or None."""
        if self.table is not None:
            return self.table.get(sequence)
        index = sequence - self.first
        return index if 0 <= index < self.count else None


_PLAN_CALLS_MAX = 200_000  # as the static feed's plan cache
