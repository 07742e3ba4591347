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
from datetime import date

import msgspec
from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors.gtfs_rt_decode import Update, instant, plausible
from byflyt.errors import BrokenRule
from byflyt.models import codec_trips
from byflyt.models.base import iso_z
from byflyt.models.gtfs import StaticFeed
from byflyt.models.transit import CallRealtime

_STU = rt.TripUpdate.StopTimeUpdate
_NO_DATA = _STU.NO_DATA
_SKIPPED = _STU.SKIPPED


class EntityRejected(BrokenRule):
    """An entity breaks a rule: it goes to the dead-letter topic, the snapshot goes on."""


class CallResolver:
    """Resolves trip updates of feed ``feed`` against its static plans (see the module doc).

    ``stop_kommune`` places every static stop (None: outside the kommuner), ``stop_parent``
    gives a quay's station. After :meth:`calls` or :meth:`added_calls`, ``timed`` holds the calls
    with an actual time (epoch seconds, stop sequence), ``skipped`` the skipped calls' sequences
    and ``sequences`` every call's;
    ``platform_changes`` counts the updates served at a sibling quay since it was last reset.
    """

    def __init__(
        self, feed: str, stop_kommune: dict[str, str | None], stop_parent: dict[str, str]
    ) -> None:
        self.feed = feed
        self.stop_kommune = stop_kommune
        self.stop_parent = stop_parent
        self.plans: dict[tuple[str, date], PlannedTrip] = {}
        self.platform_changes = 0
        self.timed: list[tuple[int, int]] | None = []
        self.skipped: list[int] | None = []
        self.sequences: Sequence[int] = ()

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
            if arrival is None and departure is None:  # delays only, as Entur sends
                continue
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
        # by_sequence.get, inline for the usual run of sequences (a call a stop time update).
        table, first, count = by_sequence.table, by_sequence.first, by_sequence.count
        for update in updates:
            stop_id, sequence = update[0], update[1]
            index = None
            if sequence is not None:
                at: int | None
                if table is None:
                    at = sequence - first
                    if not 0 <= at < count:
                        at = None
                else:
                    at = table.get(sequence)
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
        self, trip_id: str, planned: PlannedTrip, updates: Sequence[Update], trip_delay: int | None
    ) -> bytes:
        """Every static call with the delay that reaches it (GTFS-realtime propagation).

        The calls come encoded, as the record's ``calls`` (see ``models/codec_trips``): most
        take the delay before them, and their bytes are the plan's, pre-encoded, and two
        numbers (no datetime, no object per call).
        """
        stops, sequences = planned.stops, planned.sequences
        matched = self._match(trip_id, stops, sequences, updates, planned.by_sequence)
        if planned.missing is not None:
            raise planned.missing
        current, no_data = trip_delay, False
        parts: list[bytes] = []
        append = parts.append
        # Each call with an actual time, as epoch seconds and stop sequence, and the skipped
        # calls' sequences: what LiveTrip keeps, worked out here.
        timed: list[tuple[int, int]] = []
        self.timed = timed
        skipped: list[int] = []
        self.skipped = skipped
        self.sequences = sequences
        epochs, heads, bounds = planned.epochs, planned.heads, planned.bounds
        encode_int, encode_epoch = codec_trips.encode_int, codec_trips.encode_epoch
        # Why by hand: most calls take the delay before them, and their time fits four bytes;
        # a call to encode each was a tenth of a changed trip's cost.
        pack, packed_head = codec_trips.TIMESTAMP32.pack, codec_trips.TIMESTAMP32_HEAD
        encoded_delay, encoded = None, b""
        last = len(stops) - 1
        for i in range(len(stops)):
            update = matched.get(i) if matched else None
            if update is not None:
                stop_id, _, relation, arrival, arrival_delay, departure, departure_delay = update
                if (
                    arrival is None
                    and departure is None
                    and relation != _NO_DATA
                    and relation != _SKIPPED
                    and (not stop_id or stop_id == stops[i])
                ):
                    # The common update: a delay (Entur sends nothing else), which goes on.
                    if i == last:
                        own_delay = arrival_delay if arrival_delay is not None else departure_delay
                    else:
                        own_delay = (
                            departure_delay if departure_delay is not None else arrival_delay
                        )
                    no_data = False
                    if own_delay is not None:
                        current = own_delay
                else:
                    realtime: CallRealtime = "no_data" if no_data else "scheduled"
                    own_time: int | None = None
                    delay = None if no_data else current
                    if relation == _NO_DATA:
                        no_data, current, delay, realtime = True, None, None, "no_data"
                    else:
                        if i == last:  # the arrival is what counts at the last stop
                            own_time = arrival if arrival is not None else departure
                            own_delay = (
                                arrival_delay if arrival_delay is not None else departure_delay
                            )
                        else:
                            own_time = departure if departure is not None else arrival
                            own_delay = (
                                departure_delay if departure_delay is not None else arrival_delay
                            )
                        if own_delay is None and own_time is not None:
                            own_delay = own_time - epochs[i]
                        if relation == _SKIPPED:
                            realtime = "skipped"
                            delay = own_delay if own_delay is not None else delay
                        else:
                            no_data, realtime = False, "scheduled"
                            if own_delay is not None:
                                current = own_delay
                            delay = current
                    head = heads[bounds[i] : bounds[i + 1]]
                    if stop_id and stop_id != stops[i]:
                        # Served at another platform of the same station: keep the actual quay.
                        head = codec_trips.call_head(
                            sequences[i], stop_id, self.stop_kommune.get(stop_id), epochs[i]
                        )
                        self.platform_changes += 1
                    actual = None
                    if realtime == "skipped":
                        skipped.append(sequences[i])
                    elif own_time is not None:
                        actual = own_time
                    elif delay is not None:
                        actual = epochs[i] + delay
                    if actual is not None:
                        timed.append((actual, sequences[i]))
                    append(head)
                    append(codec_trips.call_tail(delay, actual, realtime))
                    continue
            # The common case: a call the feed says nothing about takes the delay before it.
            append(heads[bounds[i] : bounds[i + 1]])
            if no_data:
                append(_NO_DATA_TAIL)
            elif current is None:
                append(_UNKNOWN_TAIL)
            else:
                at = epochs[i] + current
                timed.append((at, sequences[i]))
                if current != encoded_delay:
                    encoded_delay, encoded = current, encode_int(current)
                append(encoded)
                append(pack(packed_head, at) if 0 <= at < 0x1_0000_0000 else encode_epoch(at))
                append(_SCHEDULED)
        return codec_trips.array_header(len(stops)) + b"".join(parts)

    def planned(self, static: StaticFeed, trip_id: str, service_date: date) -> PlannedTrip | None:
        """What every snapshot needs of a trip's plan, worked out once per trip and date.

        None when the trip does not run on ``service_date``.
        """
        key = (trip_id, service_date)
        planned = self.plans.get(key)
        if planned is not None:
            return planned
        schedule = static.trip_schedule(trip_id, service_date)
        if schedule is None:
            return None
        times: list[int] = []
        missing: EntityRejected | None = None
        last = len(schedule.stops) - 1
        for i, (arrival, departure) in enumerate(
            zip(schedule.arrivals, schedule.departures, strict=True)
        ):
            first, second = (arrival, departure) if i == last else (departure, arrival)
            when = first if first is not None else second
            if when is None:
                missing = EntityRejected(
                    "static_times",
                    f"the static call {schedule.sequences[i]} of {trip_id!r} has no time",
                )
                break
            times.append(when)
        kommunes = [self.stop_kommune.get(s) for s in schedule.stops]
        heads = [
            codec_trips.call_head(q, s, k, t)
            for q, s, k, t in zip(schedule.sequences, schedule.stops, kommunes, times, strict=False)
        ]
        bounds = array("I", [0])
        for head in heads:
            bounds.append(bounds[-1] + len(head))
        planned = PlannedTrip(
            schedule.route_id,
            schedule.stops,
            schedule.sequences,
            missing,
            array("q", times),
            b"".join(heads),
            bounds,
            _SequenceIndex(schedule.sequences),
        )
        if len(self.plans) >= _PLAN_CALLS_MAX:
            self.plans.clear()
        self.plans[key] = planned
        return planned

    def added_calls(self, updates: Sequence[Update]) -> list[codec_trips.Call]:
        """An ADDED trip unknown to the static feed: its updates with an absolute time."""
        calls: list[codec_trips.Call] = []
        timed: list[tuple[int, int]] = []
        self.timed = timed
        skipped: list[int] = []
        self.skipped = skipped
        for n, update in enumerate(updates):
            stop_id, sequence, relation, arrival, arrival_delay, departure, departure_delay = update
            moment = departure if departure is not None else arrival
            if moment is None or not stop_id:
                continue
            sequence = sequence if sequence is not None else n
            if relation == _SKIPPED:
                skipped.append(sequence)
            else:
                timed.append((moment, sequence))
            calls.append(
                codec_trips.Call(
                    sequence,
                    stop_id,
                    self.stop_kommune.get(stop_id),
                    instant(moment),
                    departure_delay if departure_delay is not None else arrival_delay,
                    instant(moment),
                    "skipped" if relation == _SKIPPED else "scheduled",
                )
            )
        self.sequences = [c.stop_sequence for c in calls]
        return calls


class PlannedTrip(msgspec.Struct, gc=False):
    """What the snapshots need of a trip's plan on one date, kept per trip by the resolver.

    Its route, stops and sequences; per call the scheduled instant (departure; arrival at the
    last stop) in epoch seconds and the call's encoded head (``codec_trips.call_head``): call
    ``i``'s is ``heads[bounds[i]:bounds[i + 1]]`` (one bytes a trip: half the memory of one a
    call).
    ``missing`` is the reason the plan cannot be used when a call has no time.
    """

    route_id: str
    stops: tuple[str, ...]
    sequences: tuple[int, ...]
    missing: EntityRejected | None
    epochs: array[int]
    heads: bytes
    bounds: array[int]
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


_PLAN_CALLS_MAX = 200_000  # a national day has ~30 000 trips
_SCHEDULED = codec_trips.REALTIME["scheduled"]
_UNKNOWN_TAIL = codec_trips.call_tail(None, None, "scheduled")
_NO_DATA_TAIL = codec_trips.call_tail(None, None, "no_data")
