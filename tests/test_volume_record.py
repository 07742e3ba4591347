"""A ``volumes.hourly`` record made without the model is the model's, byte for byte; the
observations metric's counts."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from byflyt.models.base import Mode
from byflyt.models.codec_counts import Count
from byflyt.models.volumes import HourlyVolume
from byflyt.streams.cycling import by_mode_and_kommune, volume_key
from byflyt.streams.hourly import (
    PLAIN_FLOAT_MAX,
    PointState,
    VolumeRow,
    aggregate_counts,
    volume_record,
)

HOUR = datetime(2025, 3, 30, 1, tzinfo=UTC)


def model_record(
    kommune_nr: str, mode: str, hour: datetime, points: dict[str, PointState]
) -> tuple[bytes, bytes] | None:
    """The key and JSON as the model writes them (``aggregate_counts``, the ground truth)."""
    row = aggregate_counts(kommune_nr, mode, hour, points)
    return None if row is None else (row.key.encode(), row.to_bytes())


def fast_record(
    kommune_nr: str, mode: str, hour: datetime, points: dict[str, PointState]
) -> tuple[bytes, bytes] | None:
    record = volume_record(kommune_nr, mode, hour, points)
    if record is None:
        return None
    row, raw = record
    model = aggregate_counts(kommune_nr, mode, hour, points)
    assert model is not None
    assert {name: getattr(row, name) for name in HourlyVolume.model_fields} == dict(model)
    return volume_key(row.kommune_nr, row.mode, hour), raw


def test_the_json_has_the_models_fields_in_its_order() -> None:
    assert VolumeRow.__struct_fields__ == tuple(HourlyVolume.model_fields)


def test_every_coverage_and_value_is_written_as_the_model_writes_it() -> None:
    rng = random.Random(13)
    coverages = [i / 100 for i in range(10_001)]  # every coverage a row can have (0.00-100.00)
    for coverage in coverages:
        points = {"a:1": PointState(rng.randrange(1_000_000), coverage), "a:2": PointState(None, 0)}
        assert fast_record("0301", "bicycle", HOUR, points) == model_record(
            "0301", "bicycle", HOUR, points
        )
    values = [*range(200), *(rng.randrange(10**k) for k in range(3, 16) for _ in range(50))]
    values += [int(PLAIN_FLOAT_MAX) - 1, int(PLAIN_FLOAT_MAX), 10**16, 2**53 + 1, 10**20]
    for value in values:
        points = {"a:1": PointState(value, rng.choice(coverages))}
        assert fast_record("3403", "pedestrian", HOUR, points) == model_record(
            "3403", "pedestrian", HOUR, points
        )


@pytest.mark.parametrize(
    ("kommune_nr", "hour"),
    [
        ("0301\n", HOUR),  # the model strips it
        ("٠٣٠١", HOUR),  # Unicode digits: the model decides
        ("0301", HOUR.astimezone(timezone(timedelta(hours=2)))),  # not in UTC
    ],
)
def test_what_the_model_might_change_takes_the_model(kommune_nr: str, hour: datetime) -> None:
    points = {"a:1": PointState(5, 100.0), "a:2": PointState(None, 50.0)}
    try:
        expected = model_record(kommune_nr, "bicycle", hour, points)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            fast_record(kommune_nr, "bicycle", hour, points)
    else:
        assert fast_record(kommune_nr, "bicycle", hour, points) == expected


def test_no_volume_is_no_record() -> None:
    points = {"a:1": PointState(None, 100.0)}
    assert volume_record("0301", "bicycle", HOUR, points) is None
    assert model_record("0301", "bicycle", HOUR, points) is None


def test_the_observations_metric_counts_by_mode_and_kommune() -> None:
    def count(kommune_nr: str, mode: Mode) -> Count:
        return Count("s", "p", kommune_nr, mode, 0, 3600, 1, 100.0)

    one_mode = [count(k, "bicycle") for k in ("0301", "3403", "0301", "0301")]
    two_modes = [*one_mode, count("0301", "pedestrian"), count("3403", "pedestrian")]
    for counts in (one_mode, two_modes, one_mode[:1]):
        assert by_mode_and_kommune(counts) == Counter((c.mode, c.kommune_nr) for c in counts)
    assert by_mode_and_kommune(two_modes)[("bicycle", "0301")] == 3
