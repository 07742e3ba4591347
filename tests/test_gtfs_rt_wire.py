"""Trip records written in pieces (``models/codec_trips``) are the bytes ``encode`` writes.

The GTFS-realtime connector encodes a trip's calls from its plan's pre-encoded heads and re-sends
a repeated trip from its kept bytes with only its times patched; consumers decode the records
with msgspec. Both must be exactly what encoding the records whole gives.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from byflyt.models import codec_trips

AT = datetime(2025, 10, 27, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delay", "actual", "realtime"),
    [
        (None, None, "scheduled"),
        (0, 0, "scheduled"),
        (-45, -45, "scheduled"),
        (-3_000, -3_000, "scheduled"),  # a negative int16
        (127, 127, "skipped"),
        (70_000, 70_000, "scheduled"),  # a uint32
        (None, None, "no_data"),
    ],
)
def test_a_call_in_pieces_is_the_call_encoded(
    delay: int | None, actual: int | None, realtime: codec_trips.Realtime
) -> None:
    scheduled = int(AT.timestamp())
    moment = None if actual is None else AT + timedelta(seconds=actual)
    for kommune in ("3403", None):
        call = codec_trips.Call(7, "NSR:Quay:7021", kommune, AT, delay, moment, realtime)
        pieces = codec_trips.call_head(7, "NSR:Quay:7021", kommune, scheduled)
        pieces += codec_trips.call_tail(
            delay, None if moment is None else int(moment.timestamp()), realtime
        )
        assert pieces == msgspec.msgpack.encode(call)


def test_times_beyond_four_bytes_and_long_arrays_are_encoded_as_msgspec_does() -> None:
    for moment in (datetime(1969, 12, 31, tzinfo=UTC), datetime(2110, 1, 1, tzinfo=UTC)):
        seconds = int(moment.timestamp())
        assert codec_trips.encode_epoch(seconds) == msgspec.msgpack.encode(moment)
    for length in (0, 15, 16, 65_535, 65_536):
        encoded = msgspec.msgpack.encode([None] * length)
        assert codec_trips.array_header(length) + b"\xc0" * length == encoded


def test_a_record_in_pieces_is_the_record_encoded_at_any_snapshot() -> None:
    calls = [codec_trips.Call(1, "NSR:Quay:1", "3403", AT, 60, AT + timedelta(seconds=60))]
    head = codec_trips.head_of(
        codec_trips.Trip(
            feed="ent",
            snapshot_at=AT,
            service_date=date(2025, 10, 27),
            trip_id="VYG:ServiceJourney:2104",
            route_id="VYG:Line:R10",
            mode="rail",
            vehicle_id="2104",
            occupancy="MANY_SEATS_AVAILABLE",
            calls=calls,
        )
    )
    before, after, encoded_calls = codec_trips.head_parts(head)
    later = AT + timedelta(seconds=10)
    for settled in (None, AT):
        expected = msgspec.structs.replace(head, snapshot_at=later, settled_since=settled)
        stamp = codec_trips.encode_time(later)
        since = codec_trips.NIL if settled is None else codec_trips.encode_time(settled)
        record = b"".join((before, stamp, after, since, encoded_calls))
        assert record == codec_trips.encode(expected)
        assert codec_trips.decode(record).calls == calls
