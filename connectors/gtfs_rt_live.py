"""What the GTFS-realtime connector keeps of each live trip between snapshots.

A :class:`LiveTrip` is a trip's last record kept in encoded pieces, the bytes of the update it
was resolved from, and which of its calls are final or become final when their time passes:
enough to re-send a repeated trip without resolving or encoding it again, to tell a record that
makes no new call final (``settled_since``, see ``models/codec_trips``) and to report a trip
that vanished from a FULL_DATASET feed.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime

import msgspec

from byflyt.models import codec_trips

_NOTHING_PENDING: tuple[array[float], array[int]] = (array("d"), array("q"))


class LiveTrip(msgspec.Struct, gc=False):
    """What the connector keeps of a live trip: its last record, compactly, and its entity.

    ``head`` is the record the trip was last resolved into, its calls left encoded (about a
    kilobyte a trip), and ``before``, ``after`` and ``calls`` its bytes but for the two times a
    repeat changes (``codec_trips.head_parts``);
    ``snapshot_at`` is the time of the trip's last record (``stamp_bytes`` encoded) and
    ``settled`` that record's ``settled_since``, encoded. ``print_`` is the hash of the
    entity's trip update as the feed encoded it, less its ``timestamp`` (see
    :func:`~byflyt.connectors.gtfs_rt_decode.untimed`; Python's keyed SipHash of the bytes, a
    collision a 2⁻⁶⁴ chance, and less memory than the bytes): the same bytes under the same
    entity id resolve to the same state, so the trip is not parsed nor resolved again. None:
    the state depends on more than the entity (the service date on the clock, an ADDED trip's
    metrics) and is always resolved. ``stamp`` is the update's ``timestamp`` (for a print that
    keeps it).
    ``final`` holds the stop sequences of the calls the trip's records made final so far;
    ``pending`` the calls that become final when the snapshot passes their actual time: epoch
    seconds (sorted) and stop sequences, as arrays (a few hundred bytes a trip, not two objects
    a call; none for a trip whose calls all passed), and ``due`` the first of those times since
    the last record (infinity: none).
    Together they give each record its ``settled_since``.

    Why a Struct without garbage collection: a national feed keeps tens of thousands of them,
    and replaces many every snapshot; each collection would walk them all (they hold no cycle).
    """

    head: codec_trips.TripHead
    key: str
    before: bytes
    after: bytes
    calls: msgspec.Raw
    snapshot_at: datetime
    stamp_bytes: bytes
    settled: bytes
    final: tuple[int, ...]
    pending: tuple[array[float], array[int]]
    due: float
    print_: int | None
    stamp: int
    no_vehicle: bool
    platform_changes: int
    cancelled: bool
    repeated: bool = False

    @classmethod
    def of(
        cls,
        head: codec_trips.TripHead,
        key: str,
        last: LiveTrip | None,
        print_: int | None,
        *,
        stamp_bytes: bytes,
        timed: list[tuple[int, int]] | None,
        skipped: list[int] | None,
        sequences: Iterable[int],
        stamp: int,
        no_vehicle: bool,
        platform_changes: int,
    ) -> LiveTrip:
        """A freshly resolved trip; ``last`` is what its previous record left, if any.

        ``key`` is the head's, ``stamp_bytes`` its ``snapshot_at`` encoded (worked out once).

        ``timed`` are its calls with an actual time (epoch seconds, stop sequence), ``skipped``
        its skipped calls' sequences and ``sequences`` all of its calls' (None: no call was
        resolved, as for a cancelled trip).
        """
        timed, skipped = timed or [], skipped or []
        # The rule of codec_trips.final_sequences, on the epoch seconds at hand.
        at = head.snapshot_at.timestamp()
        if head.status == "cancelled":
            final = set(sequences)
        else:
            final = {q for t, q in timed if t < at}
            final.update(skipped)
        settled = codec_trips.NIL
        if last is not None and final.issubset(last.final):
            head = msgspec.structs.replace(head, settled_since=last.snapshot_at)
            settled = last.stamp_bytes
        pending = _NOTHING_PENDING
        if head.status != "cancelled":
            # Only the calls still to pass: the others are final already.
            coming = sorted((t, q) for t, q in timed if t >= at)
            if coming:
                pending = (array("d", [t for t, _ in coming]), array("q", [q for _, q in coming]))
        seen = final.union(last.final) if last is not None else final
        before, after, calls = codec_trips.head_parts(head)
        return cls(
            head=head,
            key=key,
            before=before,
            after=after,
            calls=calls,
            snapshot_at=head.snapshot_at,
            stamp_bytes=stamp_bytes,
            settled=settled,
            final=tuple(sorted(seen)),
            pending=pending,
            due=pending[0][0] if pending[0] else _NEVER,
            print_=print_,
            stamp=stamp,
            no_vehicle=no_vehicle,
            platform_changes=platform_changes,
            cancelled=head.status == "cancelled",
        )

    def record(self) -> bytes:
        """The trip's last record, encoded."""
        return b"".join((self.before, self.stamp_bytes, self.after, self.settled, self.calls))

    def same(self, occupancy: dict[str, str]) -> bool:
        """Whether the repeated entity resolves to this state (its occupancy too)."""
        return occupancy.get(self.head.trip_id) == self.head.occupancy

    def restamp(self, taken: datetime, until: float, taken_bytes: bytes) -> None:
        """Make this the same state at snapshot ``taken``, settled unless it makes a call final.

        ``until`` is ``taken`` in epoch seconds, ``taken_bytes`` encoded.
        """
        newly = False
        if until > self.due:  # a pending call's time passed since the last record
            (times, sequences), final = self.pending, self.final
            passed = []
            at = bisect_left(times, self.due)
            while at < len(times) and times[at] < until:
                if sequences[at] not in final:
                    passed.append(sequences[at])
                at += 1
            self.due = times[at] if at < len(times) else _NEVER
            if passed:
                self.final = tuple(sorted({*final, *passed}))
                newly = True
        self.settled = codec_trips.NIL if newly else self.stamp_bytes
        self.snapshot_at = taken
        self.stamp_bytes = taken_bytes
        self.repeated = True

    @staticmethod
    def restamp_all(
        trips: list[LiveTrip], taken: datetime, until: float, taken_bytes: bytes
    ) -> None:
        """:meth:`restamp` each of ``trips``.

        Why a loop of its own: a national snapshot repeats ten thousand trips, and most make no
        call final (their next call is not due): those only take the new time, inline.
        """
        for trip in trips:
            if until > trip.due:
                trip.restamp(taken, until, taken_bytes)
            else:
                trip.settled = trip.stamp_bytes
                trip.snapshot_at = taken
                trip.stamp_bytes = taken_bytes
                trip.repeated = True

    def vanished(self, taken: datetime) -> codec_trips.TripHead:
        """The record saying the trip left a FULL_DATASET feed at ``taken``."""
        return msgspec.structs.replace(
            self.head, status="vanished", snapshot_at=taken, settled_since=None
        )


_NEVER = float("inf")
