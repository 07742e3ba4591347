"""The wire format of ``bike.counts`` and ``bike.counts.by-kommune``: one count observation.

Version 2 (what byflyt writes): a msgpack array ``[2, source, point_id, kommune_nr, mode, start,
end, volume, coverage, retrieved_at]``, times as whole UTC epoch seconds. About a third of the
JSON's size, and decoded without building a model.

Version 1 (what byflyt wrote before, and what other producers may still send): the JSON object
of :class:`~byflyt.models.counts.CountObservation`. A rolling upgrade reads both: a record that
is not a msgpack array is version 1. Version 1 is decoded by a fast path for the common, clean
shape; anything the fast path does not take goes through the pydantic model, so what is accepted
and the reason a record is rejected are exactly those of the model.

The connectors validate what they receive from outside with the pydantic model (the edge) and
encode it here with :func:`encode`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, cast

import msgspec

from byflyt.models.base import Mode
from byflyt.models.counts import MAX_INTERVAL, CountObservation

VERSION = 2
_MAX_INTERVAL_S = int(MAX_INTERVAL.total_seconds())
_Volume = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
_Coverage = Annotated[float, msgspec.Meta(ge=0, le=100)]
_KommuneNr = Annotated[str, msgspec.Meta(pattern=r"^\d{4}$")]
_Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Text128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Count(msgspec.Struct, array_like=True, frozen=True, tag=VERSION, gc=False):
    """One count observation as the agents use it (version 2 on the wire)."""

    source: _Text64
    point_id: _Text128
    kommune_nr: str
    """Four digits (:data:`_KommuneNr`), checked by :func:`decode` after the record is decoded:
    a regex per record cost more than the rest of the decode."""
    mode: Mode
    start: int
    end: int
    volume: _Volume | None
    coverage: _Coverage
    retrieved_at: int | None = None

    def __post_init__(self) -> None:
        length = self.end - self.start
        if length <= 0:
            raise ValueError(f"interval end {self.end} is not after start {self.start}")
        if length > _MAX_INTERVAL_S:
            raise ValueError(f"interval {self.start}–{self.end} is longer than one hour")

    @property
    def hour(self) -> int:
        """The UTC hour the interval starts in, as epoch seconds."""
        return self.start - self.start % 3600

    @property
    def key(self) -> str:
        """``source:point_id``, the connectors' key."""
        return f"{self.source}:{self.point_id}"


class _StrictCount(msgspec.Struct, array_like=True, frozen=True, tag=VERSION, gc=False):
    """:class:`Count` with every constraint in the decoder (the kommune number's pattern too).

    Decoded only when the fast path finds a record wrong: what it accepts and the reason it
    gives are exactly those of a decode with the whole schema.
    """

    source: _Text64
    point_id: _Text128
    kommune_nr: _KommuneNr
    mode: Mode
    start: int
    end: int
    volume: _Volume | None
    coverage: _Coverage
    retrieved_at: int | None = None

    def __post_init__(self) -> None:
        Count.__post_init__(cast(Count, self))


class _JsonV1(msgspec.Struct, frozen=True, gc=False):
    """The version-1 JSON shape, for the fast path (constraints as the model's)."""

    source: _Text64
    point_id: _Text128
    kommune_nr: _KommuneNr
    start: datetime
    end: datetime
    coverage: _Coverage
    mode: Mode = "bicycle"
    volume: _Volume | None = None
    retrieved_at: datetime | None = None
    kind: Literal["count"] = "count"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Count)
_strict_decoder = msgspec.msgpack.Decoder(_StrictCount)
_json_decoder = msgspec.json.Decoder(_JsonV1)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _whole_seconds(value: datetime | None) -> bool:
    return value is None or value.microsecond == 0


# The fields the wire record and the model hold alike (the times differ: epoch seconds, datetimes).
_SAME_FIELDS = ("source", "point_id", "kommune_nr", "mode", "volume", "coverage")


def _same_fields(record: object) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _SAME_FIELDS}


def from_observation(obs: CountObservation | _JsonV1) -> Count:
    """The wire record of a validated observation (or of a version-1 record that is clean)."""
    retrieved = obs.retrieved_at
    return Count(
        **_same_fields(obs),
        start=_epoch(obs.start),
        end=_epoch(obs.end),
        retrieved_at=None if retrieved is None else _epoch(retrieved),
    )


def encode(record: Count | CountObservation) -> bytes:
    """Version 2 bytes of ``record``."""
    if isinstance(record, CountObservation):
        record = from_observation(record)
    return _encoder.encode(record)


def decode(raw: bytes | None) -> Count:
    """A record of either version; raises ``ValueError`` (pydantic's, for version 1) if invalid."""
    if not raw:
        raise ValueError("empty record")
    if 0x90 <= raw[0] <= 0x9F or raw[0] == 0xDC:  # a msgpack array: version 2 or later
        try:
            record = _decoder.decode(raw)
        except msgspec.DecodeError:
            pass
        else:
            kommune_nr = record.kommune_nr
            # What ``^\d{4}$`` matches (``\d`` is a Unicode decimal digit); else the strict decode.
            if len(kommune_nr) == 4 and kommune_nr.isdecimal():
                return record
        return _decode_strict(raw)
    try:
        v1 = _json_decoder.decode(raw)
    except msgspec.DecodeError:
        v1 = None
    if v1 is not None and _clean(v1):
        return from_observation(v1)
    # The model decides (and words the reason); raises pydantic.ValidationError (a ValueError).
    return from_observation(CountObservation.from_bytes(raw))


def decode_all(raws: list[bytes | None]) -> list[Count] | None:
    """Every record of a batch decoded by the fast path, or None if any one needs :func:`decode`.

    The common case (every record a clean version 2 record) without a call of :func:`decode`
    per record; when this returns None, the caller decodes record by record, so what is
    accepted and the reason a record is rejected are exactly :func:`decode`'s.
    """
    decode_one = _decoder.decode
    try:
        records = [decode_one(raw) for raw in raws]  # type: ignore[arg-type]  # None: TypeError
    except (msgspec.DecodeError, TypeError):
        return None
    # :func:`decode` reads a record as version 2 only if it starts as a msgpack array of up to
    # 65,535 items (0x90-0x9F, 0xDC); an array32 (0xDD) is not one.
    if 0xDD in {raw[0] for raw in raws}:  # type: ignore[index]  # every raw decoded: bytes
        return None
    for kommune_nr in {record.kommune_nr for record in records}:
        if len(kommune_nr) != 4 or not kommune_nr.isdecimal():
            return None
    return records


def _decode_strict(raw: bytes) -> Count:
    """A version 2 record decoded with every constraint: the record, or the reason it is wrong."""
    try:
        strict = _strict_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"count record (version {VERSION}): {exc}") from exc
    return Count(*(getattr(strict, name) for name in Count.__struct_fields__))


def _clean(v1: _JsonV1) -> bool:
    """Whether the fast path may take ``v1``: aware whole-second times, a valid interval."""
    times = (v1.start, v1.end, v1.retrieved_at)
    if any(t is not None and (t.tzinfo is None or t.utcoffset() is None) for t in times):
        return False
    if not all(_whole_seconds(t) for t in times):
        return False
    length = v1.end - v1.start
    return MAX_INTERVAL >= length > timedelta(0)


def to_observation(record: Count) -> CountObservation:
    """The pydantic model of ``record`` (for the edges: CLI, tests, the web API)."""
    retrieved = record.retrieved_at
    return CountObservation(
        **_same_fields(record),
        start=utc(record.start),
        end=utc(record.end),
        retrieved_at=None if retrieved is None else utc(retrieved),
    )


@lru_cache(maxsize=1 << 16)
def utc(epoch: int) -> datetime:
    """An epoch second as an aware UTC datetime (cached: a batch repeats few distinct hours)."""
    return datetime.fromtimestamp(epoch, UTC)
