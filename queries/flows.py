"""Transit vehicle trips between kommuner, or in and out of a region (``query flows``, the API)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from byflyt.models.base import iso_z
from byflyt.models.kommuner import kommune_name

FLOWS_FIELDS = ("from", "from_name", "to", "to_name", "mode", "hour_start", "vehicle_trips")
"""The columns of ``query flows`` CSV and JSON. ``hour_start`` is empty when summed."""
FLOWS_NOTICE = (
    "Vehicle trips (kjøretøyturer), not passengers: the open feeds publish no passenger counts."
)
OUTSIDE = "outside"


class Level(StrEnum):
    """How ``query flows`` groups the ends of a crossing."""

    kommune = "kommune"
    region = "region"


def flow_records(
    flows: Iterable[Any], members: set[str] | None, level: Level, per_hour: bool
) -> list[dict[str, Any]]:
    """Rows of the flow matrix: kommune to kommune, or the region's in and out.

    At the region level a crossing with exactly one end in the region counts as in or out
    (``outside`` names the other side); crossings inside the region or wholly outside it are
    not region flows. Without ``per_hour`` the hours of the range are summed.
    """
    totals: Counter[tuple[str, str, str, str]] = Counter()
    for flow in flows:
        a, b = flow.from_kommune, flow.to_kommune
        if level is Level.region:
            if members is None or (a in members) == (b in members):
                continue
            a, b = ("region", OUTSIDE) if a in members else (OUTSIDE, "region")
        hour = iso_z(flow.hour_start) if per_hour else ""
        totals[(hour, a, b, flow.mode)] += flow.trips
    return [
        {
            "from": a,
            "from_name": _end_name(a),
            "to": b,
            "to_name": _end_name(b),
            "mode": mode,
            "hour_start": hour,
            "vehicle_trips": n,
        }
        for (hour, a, b, mode), n in sorted(totals.items())
    ]


def _end_name(end: str) -> str:
    if end in ("region", OUTSIDE):
        return end
    return kommune_name(end) or ""
