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
from datetime import datetime

import msgspec

from byflyt.models.volumes import HourlyVolume


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
    volumes = [int(state.volume) for state in points.values() if state.volume is not None]
    if not volumes:
        return None
    coverage = sum(float(state.coverage or 0.0) for state in points.values()) / len(points)
    return HourlyVolume(
        kommune_nr=kommune_nr,
        mode=mode,
        metric=metric,
        hour_start=hour_start,
        value=float(sum(volumes)),
        coverage=round(coverage, 2),
        n_sources=len(volumes),
    )
