"""The cycling rules written out a second time, independently of the agents, for tests.

Given every observation in the order it was produced, keep each (source, point, hour)'s last
value; then per kommune, mode and hour: value = sum of non-null volumes, n_sources = how many,
coverage = mean coverage over the points seen that hour (null counts as 0), 2 decimals; no row
when no point has a volume. ``expected_csv_rows`` applies the same rules to a Trafikkdata dataset
and gives the rows ``byflyt query hourly --format csv`` prints for the Mjøsbyen week.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from byflyt.models.base import iso_z
from byflyt.models.counts import CountObservation
from byflyt.models.kommuner import get_region, kommune_name
from byflyt.samples.trafikkdata import TrafikkdataDataset

Row = tuple[str, str, str, datetime, float, float, int]
FROM, TO = "2025-10-22", "2025-10-29"
"""The Mjøsbyen week's query range (Europe/Oslo dates)."""
HEADER = "kommune_nr,kommune,mode,metric,hour_start,value,coverage,n_sources"


PointHours = dict[tuple[str, str, str, datetime], tuple[int | None, float]]
"""(kommune_nr, mode, point, UTC hour) → (volume or None, coverage): each point's latest value."""


def kommune_cells(points: PointHours) -> list[tuple[str, str, datetime, float, float, int]]:
    """Per kommune, mode and hour: ``(kommune_nr, mode, hour, value, coverage, n_sources)``
    by the rules, sorted; no row where no point has a volume."""
    cells: dict[tuple[str, str, datetime], list[tuple[int | None, float]]] = defaultdict(list)
    for (kommune, mode, _, hour), value in points.items():
        cells[(kommune, mode, hour)].append(value)
    rows = []
    for (kommune, mode, hour), members in sorted(cells.items()):
        volumes = [v for v, _ in members if v is not None]
        if not volumes:
            continue
        coverage = round(sum(c for _, c in members) / len(members), 2)
        rows.append((kommune, mode, hour, float(sum(volumes)), coverage, len(volumes)))
    return rows


def kommune_hours(points: PointHours) -> list[tuple[object, ...]]:
    """The CSV rows of ``byflyt query hourly`` (as :func:`parse` reads them) for these
    point-hours."""
    return [
        (kommune, kommune_name(kommune), mode, "volume", iso_z(hour), value, coverage, n)
        for kommune, mode, hour, value, coverage, n in kommune_cells(points)
    ]


def expected_rows(observations: list[CountObservation]) -> list[Row]:
    """``(kommune_nr, mode, metric, hour_start, value, coverage, n_sources)``, sorted."""
    latest: dict[tuple[str, str, datetime], CountObservation] = {}
    for obs in observations:
        hour = obs.start.replace(minute=0, second=0, microsecond=0)
        latest[(obs.source, obs.point_id, hour)] = obs
    points: PointHours = {
        (obs.kommune_nr, obs.mode, f"{source}:{point}", hour): (obs.volume, obs.coverage)
        for (source, point, hour), obs in latest.items()
    }
    return [
        (kommune, mode, "volume", hour, value, coverage, n)
        for kommune, mode, hour, value, coverage, n in kommune_cells(points)
    ]


def expected_csv_rows(dataset: TrafikkdataDataset) -> list[tuple[object, ...]]:
    """The rules, applied to the dataset (the last serving), hour by hour."""
    region = get_region("mjosbyen")
    window_start = datetime(2025, 10, 21, 22, tzinfo=UTC)  # 2025-10-22 00:00 Europe/Oslo
    window_end = datetime(2025, 10, 28, 23, tzinfo=UTC)  # 2025-10-29 00:00 Europe/Oslo
    points: PointHours = {}
    for point in dataset.points:
        kommune = f"{point.municipality_number:04d}"
        if point.traffic_type != "BICYCLE" or kommune not in region.kommuner:
            continue
        hour = max(window_start, point.first_data.astimezone(UTC))
        last = min(window_end - timedelta(hours=1), point.latest_data.astimezone(UTC))
        while hour <= last:
            value = dataset.hours.get(point.id, {}).get(hour)
            volume = (value.volume, value.coverage) if value is not None else (None, 0.0)
            points[(kommune, "bicycle", point.id, hour)] = volume
            hour += timedelta(hours=1)
    return kommune_hours(points)


def parse(csv_text: str) -> list[tuple[object, ...]]:
    reader = csv.reader(io.StringIO(csv_text))
    header = next(reader)
    assert ",".join(header) == HEADER
    return [
        (k, name, mode, metric, hour, float(value), float(coverage), int(n))
        for k, name, mode, metric, hour, value, coverage, n in reader
    ]
