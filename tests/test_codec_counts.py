"""The counts wire format: version 2 round-trips, version 1 (today's JSON) still decodes."""

from __future__ import annotations

from datetime import UTC, datetime

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
