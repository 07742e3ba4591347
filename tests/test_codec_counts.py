"""The counts wire format: version 2 round-trips, version 1 (today's JSON) still decodes."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from pydantic import ValidationError

from byflyt.models import codec_counts
from byflyt.models.counts import CountObservation

OBS = CountObservation(
    source="trafikkdata",
    point_id="12345V1234567",
    kommune_nr="0301",
    mode="bicycle",
    start=datetime(2025, 3, 30, 0, tzinfo=UTC),
    end=datetime(2025, 3, 30, 1, tzinfo=UTC),
    volume=17,
    coverage=95.83,
    retrieved_at=datetime(2025, 3, 30, 4, 12, 5, tzinfo=UTC),
)
# A record exactly as version 1 producers wrote it (CountObservation.to_bytes()).
V1 = (
    b'{"source":"trafikkdata","point_id":"12345V1234567","kommune_nr":"0301","mode":"bicycle",'
    b'"start":"2025-03-30T00:00:00Z","end":"2025-03-30T01:00:00Z","volume":17,'
    b'"coverage":95.83,"retrieved_at":"2025-03-30T04:12:05Z","kind":"count"}'
)


def test_version_2_round_trips_and_is_compact() -> None:
    raw = codec_counts.encode(OBS)
    record = codec_counts.decode(raw)
    assert codec_counts.to_observation(record) == OBS
    assert record.hour == int(OBS.start.timestamp())
    assert len(raw) < len(OBS.to_bytes()) / 2


def test_version_1_json_still_decodes_to_the_same_record() -> None:
    assert OBS.to_bytes() == V1
    assert codec_counts.decode(V1) == codec_counts.decode(codec_counts.encode(OBS))
    # What only the model accepts (Trafikkdata's integer kommune, an offset) takes the slow path.
    lax = V1.replace(b'"0301"', b"301").replace(b'00:00:00Z"', b'02:00:00+02:00"')
    assert codec_counts.to_observation(codec_counts.decode(lax)) == OBS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (V1.replace(b'00:00Z"', b'00:00"'), "timezone"),
        (V1.replace(b'"volume":17', b'"volume":-5'), "greater than or equal to 0"),
        (V1.replace(b'"0301"', b'"03O1"'), "4 digits"),
        (V1.replace(b'"end":"2025-03-30T01', b'"end":"2025-03-30T03'), "longer than one hour"),
        (b"not json {", "JSON"),
    ],
)
def test_version_1_rejections_keep_the_models_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        codec_counts.decode(raw)


def test_a_broken_version_2_record_is_a_value_error() -> None:
    raw = codec_counts.encode(OBS)
    with pytest.raises(ValueError, match="version 2"):
        codec_counts.decode(raw[:-3])


def _v2(
    kommune_nr: object = "0301", start: int = 0, end: int = 3600, mode: str = "bicycle"
) -> bytes:
    """A version 2 record as any msgpack producer could write it (no checks on the way)."""
    return msgspec.msgpack.encode([2, "s", "p", kommune_nr, mode, start, end, 5, 100.0, None])


def _decoded(raw: bytes | None) -> object:
    """What :func:`codec_counts.decode` makes of ``raw``: the record, or its error's text."""
    try:
        return codec_counts.decode(raw)
    except (ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_the_kommune_number_is_checked_as_its_pattern_would() -> None:
    # The pattern ^\d{4}$ (checked after the decode, not by the decoder): its reason, its quirks.
    assert codec_counts.decode(_v2("0301")).kommune_nr == "0301"
    for wrong in ("03O1", "030", "03011", ""):
        with pytest.raises(ValueError, match=r"matching regex '\^\\\\d\{4\}\$' - at `\$\[3\]`"):
            codec_counts.decode(_v2(wrong))
    # A wrong kommune number is named before a wrong mode or interval, as the schema orders them.
    with pytest.raises(ValueError, match="regex"):
        codec_counts.decode(_v2("03O1", end=0, mode="car"))
    with pytest.raises(ValueError, match="interval end 0 is not after start 0"):
        codec_counts.decode(_v2(end=0))
    # What the pattern itself lets through: Unicode digits, a trailing newline ($).
    assert codec_counts.decode(_v2("٠٣٠١")).kommune_nr == "٠٣٠١"
    assert codec_counts.decode(_v2("0301\n")).kommune_nr == "0301\n"


def test_a_batch_decodes_at_once_only_when_every_record_would() -> None:
    clean = [codec_counts.encode(OBS), _v2(), _v2(start=7200, end=9000)]
    assert codec_counts.decode_all(clean) == [codec_counts.decode(raw) for raw in clean]
    array32 = b"\xdd" + (10).to_bytes(4, "big") + _v2()[1:]
    assert _decoded(array32) != _decoded(_v2())  # decode takes an array32 for JSON
    for odd in (None, b"", V1, _v2("03O1"), _v2("0301\n"), _v2(end=0), array32, _v2()[:-3]):
        assert codec_counts.decode_all([*clean, odd]) is None
        assert codec_counts.decode_all([odd, *clean]) is None
