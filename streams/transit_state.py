"""The transit agents' state as named records, and the shape their faust tables keep it in.

``trip-calls`` (``derive_calls``) keeps per trip a :class:`TripCalls`: its service date and its
calls already final, each a :class:`FinalCall`. ``transit-hours`` (``aggregate_transit``) keeps
per kommune-hour an :class:`HourCell`: the facts it has seen, by identity.

Both tables are backed by changelog topics, so their values outlive the code that wrote them.
The records below are declared with the exact JSON shape the first version wrote (a cell's
one-letter keys ``c``, ``r``, ``o``, ``i``, ``v``, ``f``; a final call as the list ``[status,
kommune_nr, actual]``, a call fact as ``[status, delay_seconds, trip_id]``), so a worker of this
version restores a changelog an older one wrote, and during a rolling upgrade an older worker
restores what this one writes. Those letters live here and nowhere else. The tables keep the
records themselves; only a changelog write or a restore encodes or decodes one (msgspec JSON:
several times cheaper per fact than copying plain dicts and encoding them with faust's JSON
codec, as the first version did).
"""

from __future__ import annotations

from datetime import date

import msgspec


class FinalCall(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A call of a trip that became final: how, where, and when it was served."""

    status: str
    """``served``, ``cancelled`` or ``skipped``."""
    kommune_nr: str | None
    actual: str | None
    """The served time as ISO 8601 UTC text, None when it was not served."""


class TripCalls(msgspec.Struct, gc=False):
    """A trip's final calls by stop sequence (as text), and its service date (for expiry)."""

    day: str = msgspec.field(name="date")
    """The service date, ISO 8601."""
    done: dict[str, FinalCall] = {}

    @property
    def service_date(self) -> date:
        """:attr:`day` as a date."""
        return date.fromisoformat(self.day)


class CallFact(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A final call counted in a kommune-hour."""

    status: str
    delay_seconds: int | None
    trip_id: str | None


class HourCell(msgspec.Struct, omit_defaults=True, gc=False):
    """Everything a kommune-hour's metrics are recomputed from, each fact by its identity."""

    calls: dict[str, CallFact] = msgspec.field(default_factory=dict, name="c")
    """Final calls by call key."""
    reported: dict[str, int] = msgspec.field(default_factory=dict, name="r")
    """Scheduled calls of trips the feed reported on (coverage), by call key; the value is 1."""
    trips_out: dict[str, str | None] = msgspec.field(default_factory=dict, name="o")
    """Crossings leaving the kommune, by crossing id: the kommune they went to."""
    trips_in: dict[str, str | None] = msgspec.field(default_factory=dict, name="i")
    """Crossings entering the kommune, by crossing id: the kommune they came from."""
    vehicles: dict[str, str | None] = msgspec.field(default_factory=dict, name="v")
    """Vehicles seen, by vehicle id: their occupancy."""
    feeds: dict[str, int] = msgspec.field(default_factory=dict, name="f")
    """The feeds that sent a fact for the hour (the value is 1)."""


_encoder = msgspec.json.Encoder()
_trip_decoder = msgspec.json.Decoder(TripCalls)
_cell_decoder = msgspec.json.Decoder(HourCell)


def encode(record: TripCalls | HourCell) -> bytes:
    """A table value as its changelog keeps it: JSON in the first version's shape."""
    return _encoder.encode(record)


def decode_trip(raw: bytes) -> TripCalls:
    """A ``trip-calls`` changelog value, as this or an older version wrote it."""
    return _trip_decoder.decode(raw)


def decode_cell(raw: bytes) -> HourCell:
    """A ``transit-hours`` changelog value, as this or an older version wrote it."""
    return _cell_decoder.decode(raw)
