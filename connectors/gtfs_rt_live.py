"""What the GTFS-realtime connector keeps of each live trip between snapshots.

A :class:`LiveTrip` is a trip's last record with its calls left encoded, the fingerprint of the
update it was resolved from, and which of its calls are final or become final when their time
passes: enough to re-send a repeated trip without resolving it, to tell a record that makes no
new call final (``settled_since``, see ``models/codec_trips``) and to report a trip that
vanished from a FULL_DATASET feed.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from datetime import datetime

import msgspec

from byflyt.models import codec_trips

_NOTHING_PENDING: tuple[array[float], array[int]] = (array("d"), array("q"))


class LiveTrip:
    """What the connector keeps of a live trip: its last record, compactly, and its entity.

    ``head`` is the last record with its calls left encoded (about a kilobyte a trip).
    ``print_`` is the fingerprint of the entity's trip update as the feed encoded it, less its
    ``timestamp`` (:func:`~byflyt.connectors.gtfs_rt_decode.fingerprint`): the same bytes
    resolve to the same state, so the trip is not parsed nor resolved again. None: the state
    depends on more than the entity (the service date on the clock, an ADDED trip's metrics)
    and is always resolved. ``stamp`` is the update's ``timestamp`` (for a print that keeps it).
    ``final`` holds the stop sequences of the calls the trip's records made final so far;
    ``pending`` the calls that become final when the snapshot passes their actual time: epoch
    seconds (sorted) and stop sequences, as arrays (a few hundred bytes a trip, not two objects
    a call). Together they give each
    record its ``settled_since`` (see ``models/codec_trips``).
    """

    __slots__ = (
        "cancelled",
        "entity_id",
        "final",
        "head",
        "key",
        "no_vehicle",
        "pending",
        "platform_changes",
        "print_",
        "repeated",
        "stamp",
    )

    def __init__(
        self,
        head: codec_trips.TripHead,
        key: str,
        final: tuple[int, ...],
        pending: tuple[array[float], array[int]],
        print_: int | None,
        entity_id: str | None,
        stamp: int,
        no_vehicle: bool,
        platform_changes: int,
    ) -> None:
        self.head = head
        self.key = key
        self.final = final
        self.pending = pending
        self.print_ = print_
        self.entity_id = entity_id
        self.stamp = stamp
        self.no_vehicle = no_vehicle
        self.platform_changes = platform_changes
        self.repeated = False
        self.cancelled = head.status == "cancelled"

    @classmethod
    def of(
        cls,
        trip: codec_trips.Trip,
        last: LiveTrip | None,
        print_: int | None,
        entity_id: str | None,
        *,
        timed: list[tuple[float, int]] | None,
        skipped: list[int] | None,
        stamp: int,
        no_vehicle: bool,
        platform_changes: int,
    ) -> LiveTrip:
        """A freshly resolved trip; ``last`` is what its previous record left, if any.

        ``timed`` are its calls with an actual time (epoch seconds, stop sequence) and
        ``skipped`` its skipped calls' sequences, when the resolution worked them out.
        """
        if trip.status == "cancelled" or timed is None or skipped is None:
            final = codec_trips.final_sequences(trip)
            if timed is None:
                timed = [
                    (c.actual.timestamp(), c.stop_sequence)
                    for c in trip.calls
                    if c.actual is not None and c.realtime != "skipped"
                ]
        else:  # final_sequences' rule, on the epoch seconds at hand
            at = trip.snapshot_at.timestamp()
            final = {q for t, q in timed if t < at}
            final.update(skipped)
        if last is not None and final.issubset(last.final):
            trip = msgspec.structs.replace(trip, settled_since=last.head.snapshot_at)
        pending = _NOTHING_PENDING
        if trip.status != "cancelled" and timed:
            timed.sort()
            pending = (array("d", [t for t, _ in timed]), array("q", [q for _, q in timed]))
        seen = final.union(last.final) if last is not None else final
        head = codec_trips.head_of(trip)
        return cls(
            head,
            head.key,
            tuple(sorted(seen)),
            pending,
            print_,
            entity_id,
            stamp,
            no_vehicle,
            platform_changes,
        )

    def same(self, entity_id: str, occupancy: dict[str, str]) -> bool:
        """Whether the repeated entity resolves to this state (its id and occupancy too)."""
        if self.entity_id is not None and self.entity_id != entity_id:
            return False
        return occupancy.get(self.head.trip_id) == self.head.occupancy

    def restamped(self, taken: datetime) -> LiveTrip:
        """The same state at snapshot ``taken``, settled unless it makes a call final.

        A new object: this one stays as it was until the snapshot is accepted whole.
        """
        since = self.head.snapshot_at
        if since == taken:  # the trip came twice in this snapshot: once is its record
            return self
        (times, sequences), final = self.pending, self.final
        newly = []
        until = taken.timestamp()
        for at in range(bisect_left(times, since.timestamp()), len(times)):
            if times[at] >= until:
                break
            if sequences[at] not in final:
                newly.append(sequences[at])
        head = msgspec.structs.replace(
            self.head, snapshot_at=taken, settled_since=None if newly else since
        )
        restamped = LiveTrip(
            head,
            self.key,
            tuple(sorted({*final, *newly})) if newly else final,
            self.pending,
            self.print_,
            self.entity_id,
            self.stamp,
            self.no_vehicle,
            self.platform_changes,
        )
        restamped.repeated = True
        return restamped
