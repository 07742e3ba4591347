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

from byflyt.models.counts import CountObservation
from byflyt.models.kommuner import get_region, kommune_name
from byflyt.samples.trafikkdata import TrafikkdataDataset

Row = tuple[str, str, str, datetime, float, float, int]
FROM, TO = "2025-10-22", "2025-10-29"
"""The Mjøsbyen week's query range (Europe/Oslo dates)."""
HEADER = "kommune_nr,kommune,mode,metric,hour_start,value,coverage,n_sources"


def expected_rows(observations: list[CountObservation]) -> list[Row]:
    """``(kommune_nr, mode, metric, hour_start, value, coverage, n_sources)``, sorted."""
    latest: dict[tuple[str, str, datetime], CountObservation] = {}
    for obs in observations:
        hour = obs.start.replace(minute=0, second=0, microsecond=0)
        latest[(obs.source, obs.point_id, hour)] = obs
    cells: dict[tuple[str, str, datetime], list[CountObservation]] = defaultdict(list)
    for (_, _, hour), obs in latest.items():
        cells[(obs.kommune_nr, obs.mode, hour)].append(obs)
    rows: list[Row] = []
    for (kommune, mode, hour), members in cells.items():
        volumes = [o.volume for o in members if o.volume is not None]
        if not volumes:
            continue
        coverage = round(sum(o.coverage for o in members) / len(members), 2)
        rows.append((kommune, mode, "volume", hour, float(sum(volumes)), coverage, len(volumes)))
    return sorted(rows)


def expected_csv_rows(dataset: TrafikkdataDataset) -> list[tuple[object, ...]]:
    """The rules, applied to the dataset (the last serving), hour by hour."""
    region = get_region("mjosbyen")
    window_start = datetime(2025, 10, 21, 22, tzinfo=UTC)  # 2025-10-22 00:00 Europe/Oslo
    window_end = datetime(2025, 10, 28, 23, tzinfo=UTC)  # 2025-10-29 00:00 Europe/Oslo
    cells: dict[tuple[str, datetime], list[tuple[int | None, float]]] = defaultdict(list)
    for point in dataset.points:
        kommune = f"{point.municipality_number:04d}"
        if point.traffic_type != "BICYCLE" or kommune not in region.kommuner:
            continue
        hour = max(window_start, point.first_data.astimezone(UTC))
        last = min(window_end - timedelta(hours=1), point.latest_data.astimezone(UTC))
        while hour <= last:
            value = dataset.hours.get(point.id, {}).get(hour)
            cells[(kommune, hour)].append(
                (value.volume, value.coverage) if value is not None else (None, 0.0)
            )
            hour += timedelta(hours=1)
    rows = []
    for (kommune, hour), members in sorted(cells.items()):
        volumes = [v for v, _ in members if v is not None]
        if not volumes:
            continue
        coverage = round(sum(c for _, c in members) / len(members), 2)
        rows.append(
            (
                kommune,
                kommune_name(kommune),
                "bicycle",
                "volume",
                hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
                float(sum(volumes)),
                coverage,
                len(volumes),
            )
        )
    return rows


def parse(csv_text: str) -> list[tuple[object, ...]]:
    reader = csv.reader(io.StringIO(csv_text))
    header = next(reader)
    assert ",".join(header) == HEADER
    return [
        (k, name, mode, metric, hour, float(value), float(coverage), int(n))
        for k, name, mode, metric, hour, value, coverage, n in reader
    ]
