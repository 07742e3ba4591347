"""GTFS-realtime decoding: a snapshot read from its bytes, each entity parsed only when needed.

A national TripUpdates snapshot (10,000 trips × 24 stop time updates) is about 9 MB that
protobuf parses into some 50 MB, and most of its trips repeat the previous snapshot byte for
byte but for their ``timestamp``. :func:`walk` reads only the message's framing (its header
and each entity's id and encoded trip update, never a stop time update), so the connector can
recognise a repeated trip by its bytes less the timestamp (:func:`untimed`) and parse just the
entities that changed (:meth:`Entities.parsed`), one at a time. A message with anything else
(vehicle positions, alerts, ``is_deleted``, a field twice) is parsed whole, as protobuf does.

:func:`read_update` reads one parsed stop time update into a plain tuple, once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

# Field tags (field number << 3 | wire type) of what the walk reads.
_HEADER = 0x0A  # FeedMessage.header, length-delimited
_ENTITY = 0x12  # FeedMessage.entity
_ID = 0x0A  # FeedEntity.id
_TRIP_UPDATE = 0x1A  # FeedEntity.trip_update
_TIMESTAMP = 0x20  # TripUpdate.timestamp, a varint


# POSIX seconds byflyt believes (2000-01-01 … 2100-01-01); milliseconds are far beyond.
EPOCH_RANGE = (946_684_800, 4_102_444_800)


def plausible(seconds: int) -> bool:
    """Whether ``seconds`` are POSIX seconds between 2000 and 2100 (not milliseconds)."""
    return EPOCH_RANGE[0] <= seconds <= EPOCH_RANGE[1]


def instant(seconds: int) -> datetime:
    """POSIX seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


class Unparsable(Exception):
    """An entity's bytes do not parse: the whole snapshot is parsed again to say why."""


def _length(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A length varint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise IndexError("varint too long")


def walk(
    data: bytes, prints: list[tuple[int, int | None]] | None = None
) -> tuple[memoryview | None, list[tuple[str, int, int]]] | None:
    """The header's bytes (None: no header) and each entity's id and trip update's span.

    A span is where in ``data`` the entity's encoded trip update starts and ends. ``prints``,
    when given, gets each span's print and timestamp: :func:`untimed`, and Python's hash of
    the bytes it keeps (``data[start:stop]``). Why here: it is needed for every trip of a
    national feed, and a second loop over them cost as much as the hashing.

    None when the message holds anything else (an entity with more than an id and a trip
    update, in that order), or is not framed as a FeedMessage: then it is parsed whole (and
    rejected if it does not parse).
    """
    view = memoryview(data)
    header: memoryview | None = None
    entities: list[tuple[str, int, int]] = []
    append = entities.append
    add_print = prints.append if prints is not None else None
    stamps = _STAMPS
    pos, end = 0, len(data)
    try:
        while pos < end:
            tag = data[pos]
            length = data[pos + 1]
            start = pos + 2
            if length >= 0x80:  # an entity of 128 bytes to 16 kB: two bytes, read inline
                second = data[pos + 2]
                if second < 0x80:
                    length, start = (length & 0x7F) | second << 7, pos + 3
                else:
                    length, start = _length(data, pos + 1)
            pos = start + length
            if tag == _ENTITY:
                # Why inline: this runs once per trip of a national feed, every few seconds.
                if data[start] != _ID:
                    return None
                size, at = data[start + 1], start + 2
                if size >= 0x80:
                    size, at = _length(data, start + 1)
                id_end = at + size
                entity_id = str(data[at:id_end], "utf-8")
                if data[id_end] != _TRIP_UPDATE:
                    return None
                size, at = data[id_end + 1], id_end + 2
                if size >= 0x80:
                    second = data[at]
                    if second < 0x80:
                        size, at = (size & 0x7F) | second << 7, at + 1
                    else:
                        size, at = _length(data, id_end + 1)
                if at + size != pos:
                    return None
                append((entity_id, at, pos))
                if add_print is not None:
                    # untimed's common case inline: a trailing timestamp already seen
                    stamp = None
                    if size >= 6 and data[pos - 6] == _TIMESTAMP:
                        stamp = stamps.get(data[pos - 5 : pos])
                    if stamp is not None and stamp >= 0:
                        add_print((hash(view[at : pos - 6]), stamp))
                    else:
                        stop, tail = untimed(data, at, pos)
                        add_print((hash(view[at:stop]), tail))
            elif tag == _HEADER and header is None:
                header = view[start:pos]
            else:
                return None
    except (IndexError, UnicodeDecodeError):
        return None
    return (header, entities) if pos == end else None


def untimed(data: bytes, start: int, end: int) -> tuple[int, int | None]:
    """Where the trip update ``data[start:end]`` ends less a trailing timestamp; that timestamp.

    Encoders write fields in number order, so a TripUpdate's ``timestamp`` (field 4) is its last
    field unless it has a ``delay`` or trip properties; a POSIX-seconds value this century is
    a five-byte varint. Equal bytes up to that end are equal updates but for their timestamps.
    The timestamp is None (and the end ``end``) when the tail is not one; whoever keeps the
    bytes checks it against the parsed field.
    """
    if end - start >= 6 and data[end - 6] == _TIMESTAMP:
        tail = data[end - 5 : end]
        stamp = _STAMPS.get(tail)
        if stamp is None:
            stamp = _five_byte_varint(tail)
            if len(_STAMPS) >= 4096:  # a snapshot's updates share a handful of timestamps
                _STAMPS.clear()
            _STAMPS[tail] = stamp
        if stamp >= 0:
            return end - 6, stamp
    return end, None


_STAMPS: dict[bytes, int] = {}


def _five_byte_varint(tail: bytes) -> int:
    """The value of a five-byte varint, or -1 when ``tail`` is not one."""
    if tail[4] >= 0x80 or any(b < 0x80 for b in tail[:4]):
        return -1
    return sum((b & 0x7F) << (7 * i) for i, b in enumerate(tail))


class Entities:
    """A snapshot's entities: read from its bytes (:func:`walk`), each parsed when needed.

    ``message`` is the whole parsed message when the snapshot could not be walked; then
    ``spans`` is None and every entity comes from it. Otherwise ``data`` is the snapshot,
    ``spans`` each entity's id and trip update span and ``prints`` their prints (:func:`walk`).
    """

    __slots__ = ("data", "message", "prints", "spans", "view")

    def __init__(
        self,
        message: Any | None,
        data: bytes,
        spans: list[tuple[str, int, int]] | None,
        prints: list[tuple[int, int | None]] | None = None,
    ) -> None:
        self.message = message
        self.data = data
        self.view = memoryview(data)
        self.spans = spans
        self.prints = prints

    def __len__(self) -> int:
        if self.spans is not None:
            return len(self.spans)
        assert self.message is not None
        return len(self.message.entity)

    def parsed(self, n: int) -> tuple[Any, list[Update] | None]:
        """Entity ``n`` as protobuf reads it, and its stop time updates when already read.

        Raises :class:`Unparsable` if its bytes do not parse. A walked entity is read with
        :data:`LiteEntity` and its stop time updates at once (:func:`read_lite`), so whatever
        does not parse fails here, as it would in protobuf's parse of the whole entity.
        """
        if self.message is not None:
            return self.message.entity[n], None
        assert self.spans is not None
        entity_id, start, end = self.spans[n]
        entity = LiteEntity()
        entity.id = entity_id
        try:
            entity.trip_update.ParseFromString(self.view[start:end])
        except DecodeError as exc:
            raise Unparsable(str(exc)) from None
        return entity, list(map(read_lite, entity.trip_update.stop_time_update))


def full_entity(entity: Any) -> Any:
    """``entity`` as a real ``FeedEntity`` (a :data:`LiteEntity` is read again)."""
    if isinstance(entity, LiteEntity):
        return rt.FeedEntity.FromString(entity.SerializePartialToString())
    return entity


# One stop time update as read once: stop_id, stop_sequence, schedule_relationship, then the
# arrival's time and delay and the departure's (None where the feed gives none; a time of 0 is
# none).
Update = tuple[str, int | None, int, int | None, int | None, int | None, int | None]


def read_update(update: Any) -> Update:
    """One stop time update's fields, read once (see :data:`Update`)."""
    # Why HasField only for zeros: an absent field reads 0, and most values are not 0.
    arrival, departure = update.arrival, update.departure
    sequence = update.stop_sequence
    if not sequence and not update.HasField("stop_sequence"):
        sequence = None
    arrival_delay = arrival.delay
    if not arrival_delay and not arrival.HasField("delay"):
        arrival_delay = None
    departure_delay = departure.delay
    if not departure_delay and not departure.HasField("delay"):
        departure_delay = None
    return (
        update.stop_id,
        sequence,
        update.schedule_relationship,
        arrival.time or None,  # a time of 0 is none
        arrival_delay,
        departure.time or None,
        departure_delay,
    )


def _lite_classes() -> tuple[Any, Any]:
    """``FeedEntity`` and ``TripUpdate``, their stop time updates' arrival and departure as bytes.

    Why: protobuf's Python objects cost about a microsecond a stop time update to read, two
    thirds of it the two StopTimeEvent wrappers and their fields; as bytes, the events of a
    whole feed are a few hundred distinct values, read once (:func:`read_lite`). Wire
    compatible: the same bytes parse, and what the lite classes do not name (extensions, trip
    properties, occupancy) is kept as unknown fields.
    """
    name, package = "byflyt/gtfs_rt_lite.proto", "byflyt_gtfs_rt_lite"
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(name)
    except KeyError:
        field = descriptor_pb2.FieldDescriptorProto
        lite = descriptor_pb2.FileDescriptorProto(
            name=name,
            package=package,
            syntax="proto2",
            dependency=[rt.DESCRIPTOR.name],
        )
        optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
        own, rt_type = f".{package}.", ".transit_realtime."
        messages = {  # message → (number, name, type, type name, label) of each field
            "StopTimeUpdate": (
                (1, "stop_sequence", field.TYPE_UINT32, "", optional),
                (2, "arrival", field.TYPE_BYTES, "", optional),
                (3, "departure", field.TYPE_BYTES, "", optional),
                (4, "stop_id", field.TYPE_STRING, "", optional),
                (
                    5,
                    "schedule_relationship",
                    field.TYPE_ENUM,
                    f"{rt_type}TripUpdate.StopTimeUpdate.ScheduleRelationship",
                    optional,
                ),
            ),
            "TripUpdate": (
                (1, "trip", field.TYPE_MESSAGE, f"{rt_type}TripDescriptor", optional),
                (2, "stop_time_update", field.TYPE_MESSAGE, f"{own}StopTimeUpdate", repeated),
                (3, "vehicle", field.TYPE_MESSAGE, f"{rt_type}VehicleDescriptor", optional),
                (4, "timestamp", field.TYPE_UINT64, "", optional),
                (5, "delay", field.TYPE_INT32, "", optional),
            ),
            "FeedEntity": (
                (1, "id", field.TYPE_STRING, "", optional),
                (3, "trip_update", field.TYPE_MESSAGE, f"{own}TripUpdate", optional),
            ),
        }
        for message_name, fields in messages.items():
            message = lite.message_type.add(name=message_name)
            for number, field_name, kind, type_name, label in fields:
                added = message.field.add(name=field_name, number=number, type=kind, label=label)
                if type_name:
                    added.type_name = type_name
        pool.Add(lite)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("byflyt_gtfs_rt_lite.FeedEntity")),
        get(pool.FindMessageTypeByName("byflyt_gtfs_rt_lite.TripUpdate")),
    )


LiteEntity, LiteTripUpdate = _lite_classes()
_EVENTS: dict[bytes, tuple[int | None, int | None]] = {b"": (None, None)}


def _event(encoded: bytes) -> tuple[int | None, int | None]:
    """A StopTimeEvent's time (0: none) and delay from its bytes, read once."""
    known = _EVENTS.get(encoded)
    if known is not None:
        return known
    try:
        event = rt.TripUpdate.StopTimeEvent.FromString(encoded)
    except DecodeError as exc:
        raise Unparsable(str(exc)) from None
    delay = event.delay
    if not delay and not event.HasField("delay"):
        delay = None
    known = (event.time or None, delay)
    if len(_EVENTS) >= 65_536:  # delays recur; absolute times less: start afresh
        _EVENTS.clear()
        _EVENTS[b""] = (None, None)
    _EVENTS[encoded] = known
    return known


def read_lite(update: Any) -> Update:
    """:func:`read_update` of a :data:`LiteEntity`'s stop time update."""
    arrival, arrival_delay = _EVENTS.get(update.arrival) or _event(update.arrival)
    departure, departure_delay = _EVENTS.get(update.departure) or _event(update.departure)
    sequence = update.stop_sequence
    if not sequence and not update.HasField("stop_sequence"):
        sequence = None
    return (
        update.stop_id,
        sequence,
        update.schedule_relationship,
        arrival,
        arrival_delay,
        departure,
        departure_delay,
    )
