"""The cycling (or transit) index's answer as records: the area row, the point rows, a summary.

``byflyt index`` prints them as CSV, JSON or tables; ``/api/v1/index`` returns them as JSON.
The method itself is :mod:`byflyt.queries.index` and :mod:`byflyt.queries.indicators`.
"""

from __future__ import annotations

from typing import Any

from byflyt.models.base import iso_z
from byflyt.models.kommuner import kommune_name
from byflyt.queries.indicators import IndexResult, round_or_none

INDEX_FIELDS = (
    "level",
    "id",
    "name",
    "kommune_nr",
    "kommune",
    "matched_hours",
    "base",
    "current",
    "index_pct",
    "weight",
    "ci_low",
    "ci_high",
    "n_points",
    "status",
)
"""The columns of ``byflyt index --format csv``: one ``area`` row, then one row per point."""


def area_record(result: IndexResult, name: str) -> dict[str, Any]:
    """The area's row: index, confidence interval, points and matched hours."""
    area = result.area
    return {
        "level": "area",
        "id": name,
        "name": name,
        "kommune_nr": result.kommuner[0] if len(result.kommuner) == 1 else "",
        "kommune": kommune_name(result.kommuner[0]) if len(result.kommuner) == 1 else "",
        "matched_hours": area.matched_hours,
        "base": area.base,
        "current": area.current,
        "index_pct": round_or_none(area.index, 3),
        "weight": 1.0 if area.n else None,
        "ci_low": round_or_none(area.ci_low, 3),
        "ci_high": round_or_none(area.ci_high, 3),
        "n_points": area.n,
        "status": "no points" if area.index is None else ("no CI: n < 2" if area.n < 2 else "ok"),
    }


def point_records(result: IndexResult) -> list[dict[str, Any]]:
    """One row per point considered, taking part or not (``status`` says which)."""
    records = []
    for p in result.matched:
        info = result.points[p.point]
        records.append(
            {
                "level": "point",
                "id": p.point,
                "name": info.name,
                "kommune_nr": info.kommune_nr,
                "kommune": kommune_name(info.kommune_nr),
                "matched_hours": p.matched_hours,
                "base": p.base,
                "current": p.current,
                "index_pct": round_or_none(p.index, 3),
                "weight": round_or_none(result.area.weights.get(p.point), 5),
                "ci_low": None,
                "ci_high": None,
                "n_points": None,
                "status": result.status(p.point),
            }
        )
    return records


def index_summary(result: IndexResult) -> dict[str, Any]:
    """What an index answer says about itself: mode, periods (UTC), thresholds, spread."""
    area = result.area
    start, end = result.period.bounds()
    base_start, base_end = result.period.base_bounds()
    return {
        "mode": result.mode,
        "period": result.period.label,
        "from": iso_z(start),
        "to": iso_z(end),
        "base_from": iso_z(base_start),
        "base_to": iso_z(base_end),
        "min_hours": result.min_hours,
        "min_coverage": result.min_coverage,
        "sd": round_or_none(area.sd, 3),
        "se": round_or_none(area.se, 3),
        "t": round_or_none(area.t, 4),
    }
