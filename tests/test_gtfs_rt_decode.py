"""The GTFS-realtime snapshot walk: what it reads of the bytes agrees with protobuf's parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from byflyt.connectors import gtfs_rt_decode as decode
from tests.gtfs_rt_build import feed, stu, trip_update, vehicle

AT = datetime(2025, 10, 27, 5, 30, tzinfo=UTC)


def spans_of(data: bytes) -> list[tuple[str, bytes]]:
    walked = decode.walk(data)
    assert walked is not None
    header, spans = walked
    assert header is not None
    assert rt.FeedHeader.FromString(header).timestamp == int(AT.timestamp())
    return [(entity_id, data[start:end]) for entity_id, start, end in spans]


def test_the_walk_finds_each_entity_id_and_its_trip_update_as_protobuf_reads_them() -> None:
    entities = [
        trip_update(f"INN:ServiceJourney:{n}", [stu(f"NSR:Quay:{n}", 1, delay=60 * n)])
        for n in range(3)
    ]
    # An entity id longer than 127 bytes has a two-byte length.
    entities.append(trip_update("INN:ServiceJourney:long", entity_id="x" * 300))
    # A trip update of more than 16 kB has a three-byte length.
    many = [stu(f"NSR:Quay:{n}", n, delay=n) for n in range(1, 1_000)]
    entities.append(trip_update("INN:ServiceJourney:many", many))
    data = feed(AT, *entities)
    parsed = rt.FeedMessage.FromString(data)
    assert spans_of(data) == [(e.id, e.trip_update.SerializeToString()) for e in parsed.entity]


def test_anything_but_ids_and_trip_updates_is_left_to_protobuf() -> None:
    positions = feed(AT, trip_update("INN:ServiceJourney:1"), vehicle("v1", vehicle_id="bus-7"))
    assert decode.walk(positions) is None
    deleted = rt.FeedEntity(id="gone", is_deleted=True)
    assert decode.walk(feed(AT, deleted)) is None
    assert decode.walk(b"\x0a\xff\xff\xff") is None  # truncated: protobuf says why
    assert decode.walk(feed(AT)) is not None  # a feed with no entity is walked


def test_the_untimed_bytes_leave_out_the_trailing_timestamp_and_nothing_else() -> None:
    def untimed(delay: int, stamp: datetime | None) -> tuple[bytes, int | None]:
        entity = trip_update("T", [stu("NSR:Quay:1", 1, delay=delay)], timestamp=stamp)
        (_, update), *_ = spans_of(feed(AT, entity))
        end, tail = decode.untimed(update, 0, len(update))
        return update[:end], tail

    first, later = untimed(60, AT), untimed(60, AT + timedelta(seconds=10))
    assert first[0] == later[0]
    assert (first[1], later[1]) == (int(AT.timestamp()), int(AT.timestamp()) + 10)
    assert untimed(61, AT)[0] != first[0]
    # Without a timestamp the whole update is kept (the same bytes), and no timestamp is claimed.
    assert untimed(60, None) == (first[0], None)


def test_the_walk_prints_each_trip_update_as_untimed_and_its_hash_say() -> None:
    entities = [
        trip_update("A", [stu("NSR:Quay:1", 1, delay=60)], timestamp=AT),
        trip_update("B", [stu("NSR:Quay:1", 1, delay=60)], timestamp=None),
        trip_update("C", [stu("NSR:Quay:1", 1, delay=60)], timestamp=AT),  # a timestamp seen
        trip_update("D", [], timestamp=AT + timedelta(seconds=5)),
    ]
    data = feed(AT, *entities)
    prints: list[tuple[int, int | None]] = []
    walked = decode.walk(data, prints)
    assert walked is not None
    expected = []
    for _, start, end in walked[1]:
        stop, tail = decode.untimed(data, start, end)
        expected.append((hash(data[start:stop]), tail))
    assert prints == expected
    stamp = int(AT.timestamp())
    assert [tail for _, tail in prints] == [stamp, None, stamp, stamp + 5]


def test_a_walked_entity_reads_its_stop_time_updates_as_protobuf_does() -> None:
    updates = [
        stu("NSR:Quay:1", 1, delay=60),
        stu("NSR:Quay:2", 2, delay=0),  # a delay of 0 is a delay
        stu("NSR:Quay:3", 3, delay=-90, arrival_delay=-3_000),
        stu("NSR:Quay:4", None, arrival=AT, departure=AT + timedelta(seconds=30)),
        stu("NSR:Quay:5", 0, relation="SKIPPED"),
        stu(None, 6, relation="NO_DATA"),
        stu("NSR:Quay:7", 7),
    ]
    updates[0].stop_time_properties.assigned_stop_id = "NSR:Quay:11"  # not read: kept
    updates[6].arrival.uncertainty = 30  # an event with neither delay nor time
    entity = trip_update("INN:ServiceJourney:1", updates, delay=120, timestamp=AT)
    data = feed(AT, entity)
    walked = decode.walk(data)
    assert walked is not None
    lite, read = decode.Entities(None, data, walked[1]).parsed(0)
    real = rt.FeedMessage.FromString(data).entity[0]
    assert read == [decode.read_update(u) for u in real.trip_update.stop_time_update]
    assert (lite.id, lite.trip_update.delay, lite.trip_update.vehicle.id) == (
        real.id,
        real.trip_update.delay,
        real.trip_update.vehicle.id,
    )
    # What a dead letter carries is the entity as protobuf writes it.
    full = decode.full_entity(lite)
    assert full.SerializePartialToString() == real.SerializePartialToString()


def test_a_walked_entity_whose_event_does_not_parse_is_unparsable() -> None:
    update = rt.TripUpdate.StopTimeUpdate(stop_id="NSR:Quay:1")
    update.arrival.delay = 60
    data = feed(AT, trip_update("INN:ServiceJourney:1", [update]))
    broken = data.replace(update.arrival.SerializeToString(), b"\x08\xff")  # a cut varint
    walked = decode.walk(broken)
    assert walked is not None
    with pytest.raises(decode.Unparsable):
        decode.Entities(None, broken, walked[1]).parsed(0)
    with pytest.raises(DecodeError):  # as protobuf's parse of the whole message
        rt.FeedMessage.FromString(broken)
