"""The wire format of ``transit.trip-updates``: one trip's state as one snapshot tells it.

Version 2 (what byflyt writes): a msgpack array ``[2, feed, snapshot_at, service_date,
trip_id, route_id, mode, status, vehicle_id, occupancy, settled_since, calls]``, each call
``[stop_sequence, stop_id, kommune_nr, scheduled, delay_seconds, actual, realtime]``; times are
msgpack timestamps (UTC), the service date ISO text. About a third of the JSON's size, and
decoded without building a model.

``settled_since`` is what lets a consumer skip most records of a feed that repeats its trips
every few seconds: the ``snapshot_at`` of the previous record of the same trip, given only when
this record makes no call final that an earlier record of the trip had not already made final
(:func:`final_sequences`, the rule of ``streams/transit_calls.final_calls``), and is not
``vanished``. A consumer that applied the earlier records learns nothing from this one, so it
may skip it after reading only the head (:func:`decode_head`).

Version 1 (what byflyt wrote before, and what other producers may still send): the JSON object
of :class:`~byflyt.models.transit.TripState`. A rolling upgrade reads both: a record that is not
a msgpack array is version 1, validated by the model, so what is accepted and the reason a
record is rejected are exactly those of the model.

The connectors build :class:`Trip` records directly (no model per stop-time update) and encode
them with :func:`encode`; :func:`to_state` gives the pydantic model for the edges.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast

import msgspec

from byflyt.models.base import Mode

if TYPE_CHECKING:
    from byflyt.models.transit import TripState

VERSION = 2
_Feed = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_KommuneNr = Annotated[str, msgspec.Meta(pattern=r"^\d{4}$")]
_Sequence = Annotated[int, msgspec.Meta(ge=0)]
Realtime = Literal["scheduled", "skipped", "no_data"]
Status = Literal["scheduled", "added", "cancelled", "vanished"]


class Call(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One scheduled call of a trip (the fields of :class:`~byflyt.models.transit.CallState`)."""

    stop_sequence: _Sequence
    stop_id: _Id
    kommune_nr: _KommuneNr | None
    scheduled: datetime
    delay_seconds: int | None = None
    actual: datetime | None = None
    realtime: Realtime = "scheduled"


class _TripFields(msgspec.Struct, array_like=True, frozen=True, tag=VERSION, gc=False):
    """What a version 2 record holds before its calls (subclasses inherit the wire config)."""

    feed: _Feed
    snapshot_at: datetime
    service_date: date
    trip_id: _Id
    route_id: _Id
    mode: Mode
    status: Status = "scheduled"
    vehicle_id: str | None = None
    occupancy: str | None = None
    settled_since: datetime | None = None

    @property
    def key(self) -> str:
        """The trip's identity: ``feed:service_date:trip_id``."""
        return f"{self.feed}:{self.service_date.isoformat()}:{self.trip_id}"


class Trip(_TripFields, frozen=True):
    """A trip's state (version 2 on the wire; the fields of ``TripState``)."""

    calls: list[Call] = []


class TripHead(_TripFields, frozen=True):
    """A version 2 record with its calls left encoded: cheap to read, to re-stamp and to keep."""

    calls: msgspec.Raw = msgspec.Raw(b"\x90")


class _Peek(msgspec.Struct, array_like=True, frozen=True, tag=VERSION, gc=False):
    """What :func:`settled_key` reads of a version 2 record; the rest is left encoded."""

    feed: str
    snapshot_at: msgspec.Raw
    service_date: str
    trip_id: str
    route_id: msgspec.Raw
    mode: msgspec.Raw
    status: msgspec.Raw
    vehicle_id: msgspec.Raw
    occupancy: msgspec.Raw
    settled_since: msgspec.Raw
    calls: msgspec.Raw = msgspec.Raw(b"\x90")


_NIL = b"\xc0"
_NIL_RAW = msgspec.Raw(_NIL)
_STRUCTS = (Trip, TripHead)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Trip)
_head_decoder = msgspec.msgpack.Decoder(TripHead)
_peek_decoder = msgspec.msgpack.Decoder(_Peek)
_R = TypeVar("_R", Trip, TripHead)


def is_v2(raw: bytes) -> bool:
    """Whether ``raw`` is a version 2 (or later) record rather than version 1 JSON."""
    return 0x90 <= raw[0] <= 0x9F or raw[0] == 0xDC  # a msgpack array: version 2 or later


def encode(record: Trip | TripHead | TripState) -> bytes:
    """Version 2 bytes of ``record``."""
    if type(record) not in _STRUCTS:  # Why not isinstance: it costs as much as the encoding
        record = from_state(cast("TripState", record))
    return _encoder.encode(record)


def decode(raw: bytes | None) -> Trip:
    """A record of either version; raises ``ValueError`` (pydantic's, for version 1) if invalid."""
    return _decode_either(raw, _decoder, _trip_of_v1)


def decode_head(raw: bytes | None) -> TripHead:
    """The head of a record of either version (its calls validated only by :func:`decode`)."""
    return _decode_either(raw, _head_decoder, lambda v1: head_of(_trip_of_v1(v1)))


def _decode_either(
    raw: bytes | None, v2: msgspec.msgpack.Decoder[_R], v1: Callable[[bytes], _R]
) -> _R:
    """``raw`` read by the ``v2`` decoder, or by ``v1`` when it is version 1 JSON."""
    if not raw:
        raise ValueError("empty record")
    if not is_v2(raw):
        return v1(raw)
    try:
        return v2.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"trip record (version {VERSION}): {exc}") from exc


def _trip_of_v1(raw: bytes) -> Trip:
    from byflyt.models.transit import TripState

    return from_state(TripState.from_bytes(raw))


def settled_key(raw: bytes | None) -> str | None:
    """The trip key of a version 2 record that gives ``settled_since``, else None.

    Reads no more of the record than that, so a consumer can pass over the records that bring
    nothing new at the cost of a dictionary lookup; the rest of a record it uses is validated
    by :func:`decode`.
    """
    # Why inline (is_v2, the Raw compared as it is): a consumer asks this of every record.
    if not raw or not (0x90 <= raw[0] <= 0x9F or raw[0] == 0xDC):
        return None
    try:
        peek = _peek_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if peek.settled_since == _NIL_RAW:
        return None
    return f"{peek.feed}:{peek.service_date}:{peek.trip_id}"


def head_of(trip: Trip) -> TripHead:
    """``trip`` with its calls encoded."""
    return TripHead(
        feed=trip.feed,
        snapshot_at=trip.snapshot_at,
        service_date=trip.service_date,
        trip_id=trip.trip_id,
        route_id=trip.route_id,
        mode=trip.mode,
        status=trip.status,
        vehicle_id=trip.vehicle_id,
        occupancy=trip.occupancy,
        settled_since=trip.settled_since,
        calls=msgspec.Raw(_encoder.encode(trip.calls)),
    )


def final_sequences(trip: Trip) -> set[int]:
    """The stop sequences of the calls ``trip`` makes final (not ``vanished`` trips).

    The rule of ``streams/transit_calls.final_calls``: every call of a cancelled trip, a skipped
    call, and a call whose actual time lies before the snapshot.
    """
    if trip.status == "cancelled":
        return {c.stop_sequence for c in trip.calls}
    at = trip.snapshot_at
    return {
        c.stop_sequence
        for c in trip.calls
        if c.realtime == "skipped" or (c.actual is not None and c.actual < at)
    }


# The fields a trip and a call share with the models (``settled_since`` is the wire's own).
_TRIP_FIELDS = tuple(f for f in Trip.__struct_fields__ if f not in ("calls", "settled_since"))
_CALL_FIELDS = Call.__struct_fields__


def _fields(source: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(source, name) for name in names}


def from_state(state: TripState) -> Trip:
    """The wire record of a validated model."""
    calls = [Call(**_fields(c, _CALL_FIELDS)) for c in state.calls]
    return Trip(**_fields(state, _TRIP_FIELDS), calls=calls)


def to_state(record: Trip) -> TripState:
    """The pydantic model of ``record`` (for the edges: CLI, tests, the web API)."""
    from byflyt.models.transit import CallState, TripState

    calls = [CallState(**_fields(c, _CALL_FIELDS)) for c in record.calls]
    return TripState(**_fields(record, _TRIP_FIELDS), calls=calls)


# -- Version 2 in pieces, for a producer that resolves a trip's calls on its plan once and sends
# the trip again every few seconds (the GTFS-realtime connector). Byte for byte what
# :func:`encode` writes: tests/test_gtfs_rt_wire.py holds them together.
# msgpack fixext 4 of type -1 (its first two bytes) and whole seconds below 2**32: how
# ``encode_epoch`` writes a time; public for a producer that writes thousands in a loop.
TIMESTAMP32 = struct.Struct(">HI")
TIMESTAMP32_HEAD = 0xD6FF
NIL = _NIL
REALTIME = {r: _encoder.encode(r) for r in ("scheduled", "skipped", "no_data")}
_INTS: dict[int, bytes] = {}


def encode_int(value: int) -> bytes:
    """``value`` as msgpack (a few hundred delays recur: they are kept)."""
    encoded = _INTS.get(value)
    if encoded is None:
        encoded = _encoder.encode(value)
        if len(_INTS) < 65_536:
            _INTS[value] = encoded
    return encoded


def encode_epoch(seconds: int) -> bytes:
    """The instant ``seconds`` after the epoch (UTC) as a record's datetime field."""
    if 0 <= seconds < 1 << 32:
        return TIMESTAMP32.pack(TIMESTAMP32_HEAD, seconds)
    return _encoder.encode(datetime.fromtimestamp(seconds, UTC))


def array_header(length: int) -> bytes:
    """The msgpack header of an array of ``length`` elements."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def call_head(stop_sequence: int, stop_id: str, kommune_nr: str | None, scheduled: int) -> bytes:
    """A :class:`Call`'s first four fields, its array header first (``scheduled``: epoch s)."""
    return (
        b"\x97"
        + _encoder.encode([stop_sequence, stop_id, kommune_nr])[1:]
        + (encode_epoch(scheduled))
    )


def call_tail(delay: int | None, actual: int | None, realtime: str) -> bytes:
    """A :class:`Call`'s last three fields (``actual``: epoch seconds)."""
    return b"".join(
        (
            NIL if delay is None else encode_int(delay),
            NIL if actual is None else encode_epoch(actual),
            REALTIME[realtime],
        )
    )


_BEFORE: dict[str, bytes] = {}


def head_parts(head: TripHead) -> tuple[bytes, bytes, msgspec.Raw]:
    """A :class:`TripHead`'s bytes around ``snapshot_at`` and ``settled_since``.

    ``before + snapshot_at + between + settled_since + after`` (each time encoded, ``NIL`` for
    none) is the record at another snapshot, without encoding the head again.
    """
    before = _BEFORE.get(head.feed)
    if before is None:  # one a feed, shared by its trips
        before = _BEFORE[head.feed] = b"\x9c" + _encoder.encode([VERSION, head.feed])[1:]
    fields = [head.service_date, head.trip_id, head.route_id, head.mode, head.status]
    fields += [head.vehicle_id, head.occupancy]
    return before, _encoder.encode(fields)[1:], head.calls


def encode_time(moment: datetime) -> bytes:
    """``moment`` as a record's datetime field."""
    return _encoder.encode(moment)


def encode_calls(calls: list[Call]) -> bytes:
    """A record's ``calls``, encoded."""
    return _encoder.encode(calls)
