"""The exact kommune-hour rule for counts, as a pure function (the agent's ground truth).

For one kommune, mode and UTC hour, given each registering point's *latest* observation:

* value = the sum of the points' volumes; a point whose latest volume is None adds nothing;
* n_sources = how many points contributed a volume;
* coverage = the mean of every registering point's coverage (a silent or null point counts 0),
  rounded to 2 decimals;
* no row at all when no point has a volume: missing is not zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from byflyt.models.base import iso_z
from byflyt.models.volumes import HourlyVolume, VolumeFields


class PointState(msgspec.Struct, frozen=True, gc=False):
    """One point's latest observation for the hour (as cheap to build as a list)."""

    volume: int | None
    """None: the point registered but published no volume (missing, not zero)."""
    coverage: float | None


def aggregate_counts(
    kommune_nr: str,
    mode: str,
    hour_start: datetime,
    points: Mapping[str, PointState],
    metric: str = "volume",
) -> HourlyVolume | None:
    """The kommune-hour value of ``points``, or None when no point has a volume."""
    found = totals(points)
    if found is None:
        return None
    value, coverage, n_sources = found
    return HourlyVolume(
        kommune_nr=kommune_nr,
        mode=mode,
        metric=metric,
        hour_start=hour_start,
        value=value,
        coverage=coverage,
        n_sources=n_sources,
    )


def totals(points: Mapping[str, PointState]) -> tuple[float, float, int] | None:
    """The sum of ``points``' volumes, their mean coverage (2 decimals) and how many had one.

    None when no point has a volume (no kommune-hour value).
    """
    value = 0
    n_sources = 0
    coverage = 0.0
    # One pass, in the points' order (the coverages add up in that order, as a sum would).
    for state in points.values():
        volume = state.volume
        if volume is not None:
            value += volume
            n_sources += 1
        if state.coverage:
            coverage += state.coverage
    if not n_sources:
        return None
    return float(value), round(coverage / len(points), 2), n_sources


class VolumeRow(msgspec.Struct, frozen=True, gc=False):
    """A kommune-hour value as the cycling flush makes it without the model.

    :class:`HourlyVolume`'s fields in its order (a test holds them alike), so msgspec writes
    the model's JSON from it; the store and the live gauge read it as they read the model
    (:class:`~byflyt.models.volumes.VolumeFields`). Made only from values the model would
    take unchanged (see :func:`volume_record`).
    """

    kommune_nr: str
    mode: str
    metric: str
    hour_start: datetime
    value: float
    coverage: float
    n_sources: int


_json = msgspec.json.Encoder()
PLAIN_FLOAT_MAX = 1e15
"""Below this, msgspec writes a float as pydantic does (at 1e16 pydantic writes ``1e+16``)."""
hour_text = lru_cache(maxsize=1 << 16)(iso_z)
""":func:`iso_z` of an hour (cached: a flush writes each hour once per kommune)."""


def volume_record(
    kommune_nr: str, mode: str, hour_start: datetime, points: Mapping[str, PointState]
) -> tuple[VolumeFields, bytes] | None:
    """:func:`aggregate_counts`'s row and the bytes of its ``to_bytes()``, or None when no volume.

    The row is a :class:`VolumeRow` and its JSON written by msgspec when nothing could
    differ: a plain kommune number, a whole UTC hour (msgspec writes it as :func:`iso_z`
    does), a coverage in 0–100 and a value pydantic writes without an exponent (``mode`` is
    a count's, checked when it was decoded). Anything else takes the model, so the row holds
    the model's values and the record is the model's bytes in every case.
    """
    found = totals(points)
    if found is None:
        return None
    value, coverage, n_sources = found
    if (
        len(kommune_nr) == 4
        and kommune_nr.isascii()
        and kommune_nr.isdigit()
        and hour_start.tzinfo is UTC
        and hour_start.microsecond == 0
        and hour_start.timestamp() % 3600 == 0
        and 0 <= coverage <= 100
        and value < PLAIN_FLOAT_MAX
    ):
        row = VolumeRow(kommune_nr, mode, "volume", hour_start, value, coverage, n_sources)
        return row, _json.encode(row)
    model = HourlyVolume(
        kommune_nr=kommune_nr,
        mode=mode,
        metric="volume",
        hour_start=hour_start,
        value=value,
        coverage=coverage,
        n_sources=n_sources,
    )
    return model, model.to_bytes()
