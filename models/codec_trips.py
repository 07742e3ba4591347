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

from collections.abc import Callable
from datetime import date, datetime
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
    if not raw or not is_v2(raw):
        return None
    try:
        peek = _peek_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if bytes(peek.settled_since) == _NIL:
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
